r"""Splitting raw tweet text into words the way the Twitter MNER releases do.

Both releases split punctuation (apostrophes and full stops included) from
words but keep hyphenated words whole (``T-Mobile``, ``re-election``), and
keep each emoji code point as its own token; they differ on hashtags and
mentions:

- ``'twitter2015'`` keeps them whole (``@JayKenMinaj``, ``#NWM7``),
- ``'twitter2017'`` splits the sign off (``#``, ``NBA``; ``@``, ``user``).

URLs stay one token in both; ``RT`` and the ``:`` after a retweeted name are
separate tokens, as in the files.

Example:
    >>> tokenize_tweet('RT @washingtonpost: Obama visits #Paris... http://t.co/x1')
    ['RT', '@washingtonpost', ':', 'Obama', 'visits', '#Paris', '.', '.', '.', 'http://t.co/x1']
    >>> tokenize_tweet('#NBA: Kawhi wins!', style='twitter2017')
    ['#', 'NBA', ':', 'Kawhi', 'wins', '!']
"""
from __future__ import annotations

import re

STYLES = ('twitter2015', 'twitter2017')

_URL = r'''(?:https?://|www\.)\S*[^\s.,;:!?)\]'"]'''  # no trailing punctuation
_HANDLE = r'[@#][^\W_]\w*|[@#]_\w+'
_WORD = r'[^\W_](?:\w|-(?=[^\W_]))*'  # T-Mobile, re-election
_TOKEN = re.compile(rf'{_URL}|{_HANDLE}|{_WORD}|\S', re.UNICODE)


def tokenize_tweet(text: str, style: str = 'twitter2015') -> list[str]:
    """The words of one tweet.

    Args:
        text: the raw tweet text.
        style: ``'twitter2015'`` (hashtags and mentions whole) or
            ``'twitter2017'`` (``#`` and ``@`` split off). (default:
            ``'twitter2015'``)

    Returns:
        The tokens, in order; empty for a blank text.

    Raises:
        ValueError: an unknown style.
        TypeError: ``text`` is not a string.
    """
    if style not in STYLES:
        raise ValueError(f'Unknown tokenizer style {style!r}; expected one of {STYLES}')
    if not isinstance(text, str):
        raise TypeError(f'A tweet must be a str, got {type(text).__name__}')
    tokens = _TOKEN.findall(text)
    if style == 'twitter2017':
        tokens = [part for token in tokens
                  for part in ((token[0], token[1:]) if re.fullmatch(_HANDLE, token) else (token, ))]
    return tokens
