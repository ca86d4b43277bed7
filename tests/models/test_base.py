"""The shared plumbing of graphmner.models.base: gold labels into CRF tags."""
import random

import pytest
from torch_geometric.data import Batch

from graphmner import models
from graphmner.data.conll import Tweet
from graphmner.data.labels import BIO_LABELS, bio_to_bioes, repair_iob2
from graphmner.graph.builder import build_graph


def random_tweets(count: int, seed: int) -> list[Tweet]:
    rng = random.Random(seed)
    tweets = []
    for i in range(count):
        length = rng.randint(1, 9)
        tweets.append(Tweet(f'img{i}', [f'w{j}' for j in range(length)],
                            [rng.choice(BIO_LABELS) for _ in range(length)]))
    return tweets


@pytest.mark.parametrize('tag_scheme', ['bio', 'bioes'])
def test_target_tags_equal_the_string_conversion(tiny_encoder, tag_scheme):
    model = models.build('bert-crf', encoder=tiny_encoder, tag_scheme=tag_scheme)
    tweets = random_tweets(40, seed=3)  # I- after O, type changes, one-word tweets
    batch = Batch.from_data_list([build_graph(tweet, None) for tweet in tweets])
    tags = model.target_tags(batch)
    for row, tweet in zip(tags.tolist(), tweets):
        gold = repair_iob2(tweet.labels)  # what word.y holds
        if tag_scheme == 'bioes':
            gold = bio_to_bioes(gold)
        assert [model.tags[i] for i in row[:len(gold)]] == gold
        assert all(i == 0 for i in row[len(gold):])  # padding


def test_bioes_model_tags_and_repr(tiny_encoder):
    model = models.build('bert-crf', encoder=tiny_encoder, tag_scheme='bioes')
    assert model.labels == BIO_LABELS and len(model.tags) == 17
    assert model.emission.out_features == 17 and model.crf.num_tags == 17
    assert 'tags=17 (bioes)' in repr(model)


def test_unknown_tag_scheme_is_refused(tiny_encoder):
    with pytest.raises(ValueError, match=r"tag_scheme must be one of \('bio', 'bioes'\), got 'bilou'"):
        models.build('bert-crf', encoder=tiny_encoder, tag_scheme='bilou')


def test_without_repair_the_targets_are_the_files_labels(tiny_encoder):
    """repair_targets=False (the BIO official codes): stray I- labels train as written, and an
    unconstrained CRF scores them like any other path."""
    model = models.build('bert-crf', encoder=tiny_encoder, constrained_decoding=False, repair_targets=False)
    repaired = models.build('bert-crf', encoder=tiny_encoder, constrained_decoding=False)
    tweets = random_tweets(40, seed=3)
    assert any(repair_iob2(t.labels) != list(t.labels) for t in tweets)  # the check sees stray I-
    batch = Batch.from_data_list([build_graph(tweet, None) for tweet in tweets])
    rows = zip(model.target_tags(batch).tolist(), repaired.target_tags(batch).tolist(), tweets)
    for got, want, tweet in rows:
        n = len(tweet.labels)
        assert [model.tags[i] for i in got[:n]] == list(tweet.labels) and all(i == 0 for i in got[n:])
        assert [model.tags[i] for i in want[:n]] == repair_iob2(tweet.labels)
    _, parts = model.loss(batch)
    assert parts['nll'] < 100  # a constrained CRF would charge about 10000 per stray I-


@pytest.mark.parametrize('settings, got', [({}, "True and 'bio'"),
                                           ({'constrained_decoding': False, 'tag_scheme': 'bioes'},
                                            "False and 'bioes'")])
def test_unrepaired_targets_need_an_unconstrained_bio_crf(tiny_encoder, settings, got):
    with pytest.raises(ValueError, match=rf"repair_targets=False .* \(got {got}\)"):
        models.build('bert-crf', encoder=tiny_encoder, repair_targets=False, **settings)
