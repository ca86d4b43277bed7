import os
from pathlib import Path

import pytest
import torch
from conftest import SHARED

from graphmner.features.phrases import SYNONYMS, NounPhrase, PhraseExtractor, ground, load_spacy

SPACY_MODEL = SHARED / 'models' / 'en_core_web_sm-3.8.0'

# "Two dogs and a man playing in the park with his kids"
WORDS = ['Two', 'dogs', 'and', 'a', 'man', 'playing', 'in', 'the', 'park',
         'with', 'his', 'kids']
PHRASES = [
    NounPhrase(0, 2, 1, 'dog'),
    NounPhrase(3, 5, 4, 'man'),
    NounPhrase(7, 9, 8, 'park'),
    NounPhrase(10, 12, 11, 'kid'),
]


def edges(grounding):
    return sorted(map(tuple, grounding.edge_index.t().tolist()))


def test_grounding_rule_by_hand():
    objects = ['dog', 'person', 'frisbee']
    g = ground(WORDS, PHRASES, objects)
    assert g.edge_index.dtype == torch.long and g.edge_index.size(0) == 2
    assert g.matches == [[0], [1, 3], []]
    assert g.matched.tolist() == [True, True, False]
    expected = ([(0, 0), (0, 1)] +                       # dog -> "Two dogs"
                [(1, 3), (1, 4), (1, 10), (1, 11)] +     # person -> man, kids
                [(2, i) for i in range(len(WORDS))])     # frisbee: general
    assert edges(g) == expected


def test_edge_index_sorted_by_object():
    g = ground(WORDS, PHRASES, ['frisbee', 'dog'])
    src = g.edge_index[0]
    assert (src[1:] >= src[:-1]).all()
    assert edges(g)[-2:] == [(1, 0), (1, 1)]


def test_lemma_lowercase_and_hashtag():
    words = ['#Puppy', 'loves', 'DOGS']
    phrases = [NounPhrase(0, 1, 0, '#puppy'), NounPhrase(2, 3, 2, 'dog')]
    assert ground(words, phrases, ['dog']).matches == [[0, 1]]
    assert ground(words, phrases, ['Dog']).matches == [[0, 1]]


def test_multiword_class_and_custom_synonyms():
    words = ['my', 'new', 'cell', 'phone', 'and', 'mobile']
    phrases = [NounPhrase(0, 4, 3, 'phone'), NounPhrase(5, 6, 5, 'mobile')]
    assert ground(words, phrases, ['cell phone']).matches == [[0, 1]]
    assert ground(words, phrases, ['cell phone'],
                  synonyms={}).matches == [[0]]  # by the name's words only


def test_similarity_callable():
    calls = []

    def similarity(text, name):
        calls.append((text, name))
        return 0.9 if (text, name) == ('the park', 'bench') else 0.1

    g = ground(WORDS, PHRASES, ['bench'], similarity=similarity,
               threshold=0.5)
    assert g.matches == [[2]]
    assert ('Two dogs', 'bench') in calls
    assert ground(WORDS, PHRASES, ['bench'], similarity=similarity,
                  threshold=0.95).matches == [[]]


def test_no_objects_or_no_words():
    g = ground(WORDS, PHRASES, [])
    assert g.edge_index.shape == (2, 0) and g.matched.shape == (0, )
    g = ground([], [], ['person'])
    assert g.edge_index.shape == (2, 0) and g.matches == [[]]


def test_pronouns():
    assert 'he' in SYNONYMS['person'] and 'i' not in SYNONYMS['person']
    words = ['I', 'saw', 'her']
    phrases = [NounPhrase(0, 1, 0, 'I'.lower()), NounPhrase(2, 3, 2, 'she')]
    assert ground(words, phrases, ['person']).matches == [[1]]


def test_invalid_phrases():
    with pytest.raises(ValueError, match='root'):
        NounPhrase(2, 3, 5, 'x')
    with pytest.raises(ValueError, match='ends past'):
        ground(['a'], [NounPhrase(0, 2, 1, 'x')], ['person'])


def test_missing_model_names_option(tmp_path):
    pytest.importorskip('spacy')
    with pytest.raises(OSError, match='--spacy-model'):
        load_spacy(tmp_path / 'no_such_model')
    with pytest.raises(OSError, match='--spacy-model'):
        PhraseExtractor('en_core_web_nonexistent')


@pytest.fixture(scope='module')
def extractor():
    if not SPACY_MODEL.is_dir():
        pytest.skip(f'spaCy model not found at {SPACY_MODEL}')
    return PhraseExtractor(SPACY_MODEL)


def test_noun_chunks_real_model(extractor):
    assert 'ner' not in extractor.nlp.pipe_names
    assert 'lemmatizer' in extractor.nlp.pipe_names
    phrases = extractor(WORDS)
    spans = [(p.start, p.end, p.lemma) for p in phrases]
    assert (0, 2, 'dog') in spans
    assert (3, 5, 'man') in spans
    assert (10, 12, 'kid') in spans
    g = ground(WORDS, phrases, ['dog', 'person', 'frisbee'])
    assert g.matched.tolist() == [True, True, False]


def test_tweet_tokens_stay_aligned(extractor):
    # CoNLL tokens that spaCy's own tokenizer would split differently.
    tweets = [
        ['RT', '@nytimes', ':', 'Obama', "'s", 'dog', 'Bo', 'meets',
         'the', 'Pope', 'http://t.co/abc'],
        ['New', 'Post', ':', 'Kansas', 'City', 'Royals', 'win', '!'],
        [],
        ['a', '', 'cat'],
    ]
    out = extractor.batch(tweets)
    assert len(out) == 4
    for words, phrases in zip(tweets, out):
        for p in phrases:
            assert 0 <= p.start <= p.root < p.end <= len(words)
    assert out[2] == []
    heads = {tweets[0][p.root] for p in out[0]}
    assert 'Pope' in heads
    assert any(tweets[3][p.root] == 'cat' for p in out[3])


def test_pipeline_loaded_once_per_process(extractor):
    # A warm graph build loads the pipeline for every chunk of tweets: the second load is the first's.
    relative = Path(os.path.relpath(SPACY_MODEL))
    assert PhraseExtractor(relative).nlp is extractor.nlp
    assert load_spacy(str(SPACY_MODEL)) is extractor.nlp
