"""Raw tweet text into words, as the Twitter releases split it."""
import pytest

from graphmner.data.tokenize import tokenize_tweet


@pytest.mark.parametrize('text, words', [
    ('RT @JayKenMinaj_: Me outside of where George Zimmerman got shot at. http://t.co/Z3neVBQ7vF',
     ['RT', '@JayKenMinaj_', ':', 'Me', 'outside', 'of', 'where', 'George', 'Zimmerman', 'got', 'shot', 'at',
      '.', 'http://t.co/Z3neVBQ7vF']),
    ('see https://t.co/abc.', ['see', 'https://t.co/abc', '.']),
    ('Smash Shiba is stoked for #NWM7 Melee Grand Finals!!',
     ['Smash', 'Shiba', 'is', 'stoked', 'for', '#NWM7', 'Melee', 'Grand', 'Finals', '!', '!']),
    ("Kawhi's T-Mobile deal 😂😂 ❤️ (www.nba.com)",
     ['Kawhi', "'", 's', 'T-Mobile', 'deal', '😂', '😂', '❤', '\ufe0f', '(', 'www.nba.com', ')']),
    ('RT : Barack Obama visits Paris with the Lakers',
     ['RT', ':', 'Barack', 'Obama', 'visits', 'Paris', 'with', 'the', 'Lakers']),
    ('   ', []),
])
def test_twitter2015_style(text, words):
    assert tokenize_tweet(text) == words


def test_twitter2017_style_splits_hashtags_and_mentions():
    assert tokenize_tweet('# NBA : Kawhi wins the fan vote ! #NBAAwards @nba', style='twitter2017') == \
        ['#', 'NBA', ':', 'Kawhi', 'wins', 'the', 'fan', 'vote', '!', '#', 'NBAAwards', '@', 'nba']
    assert tokenize_tweet('http://t.co/x#frag', style='twitter2017') == ['http://t.co/x#frag']


def test_errors():
    with pytest.raises(ValueError, match="Unknown tokenizer style 'ud'"):
        tokenize_tweet('x', style='ud')
    with pytest.raises(TypeError, match='must be a str, got list'):
        tokenize_tweet(['x'])
