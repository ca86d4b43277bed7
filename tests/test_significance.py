"""Paired bootstrap on hand-made predictions."""
import random

import numpy as np
import pytest

from graphmner.metrics import span_scores
from graphmner.significance import f1_of_counts, paired_bootstrap, span_counts

GOLD = [['B-PER', 'I-PER', 'O', 'B-LOC'], ['O', 'B-ORG'], ['O', 'O'], ['B-MISC', 'I-MISC', 'O']]


def test_counts_are_the_sufficient_statistics_of_span_scores():
    pred = [['B-PER', 'O', 'O', 'B-LOC'], ['O', 'I-ORG'], ['B-PER', 'O'], ['O', 'O', 'O']]
    counts = span_counts(GOLD, pred)
    # tweet 0: LOC right, PER cut short; tweet 1: conlleval reads I-ORG as a chunk start
    assert counts.tolist() == [[1, 2, 2], [1, 1, 1], [0, 1, 0], [0, 0, 1]]
    scores = span_scores(GOLD, pred)
    assert f1_of_counts(counts.sum(0)) == pytest.approx(scores['f1'])
    assert f1_of_counts(np.array([0, 0, 3])) == 0.0 and f1_of_counts(np.array([0, 2, 0])) == 0.0


def _tweets(n, seed=0):
    rng = random.Random(seed)
    return [['B-PER', 'I-PER', 'O', rng.choice(['B-LOC', 'O'])] for _ in range(n)]


def test_identical_systems_have_p_one():
    gold = _tweets(723)
    pred = [['B-PER', 'O', 'O', 'B-LOC'] if i % 3 else list(t) for i, t in enumerate(gold)]
    result = paired_bootstrap(gold, pred, [list(t) for t in pred], resamples=1000, seed=1)
    assert result.difference == 0.0 and result.p_value == 1.0 and not result.significant()


def test_a_system_better_on_every_tweet_is_significant():
    gold = _tweets(723)
    better = [list(t) for t in gold]                               # every span right
    worse = [['B-PER', 'O', 'O', 'O'] for _ in gold]               # every PER cut short, LOC missed
    result = paired_bootstrap(gold, better, worse, resamples=1000, seed=1)
    assert result.p_value < 0.01 and result.significant()
    # the observed difference is the plain F1 difference
    plain = span_scores(gold, better)['f1'] - span_scores(gold, worse)['f1']
    assert result.difference == pytest.approx(plain)
    assert result.f1_a == pytest.approx(1.0)
    reverse = paired_bootstrap(gold, worse, better, resamples=1000, seed=1)
    assert reverse.difference == pytest.approx(-result.difference) and reverse.p_value == result.p_value


def _reference_p_value(gold, pred_a, pred_b, resamples, seed):
    """The test written out: draw the same indices, score each resample with span_scores."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(gold), size=(resamples, len(gold)))
    observed = span_scores(gold, pred_a)['f1'] - span_scores(gold, pred_b)['f1']
    extreme = 0
    for row in index:
        delta = (span_scores([gold[i] for i in row], [pred_a[i] for i in row])['f1']
                 - span_scores([gold[i] for i in row], [pred_b[i] for i in row])['f1'])
        extreme += abs(delta - observed) >= abs(observed) - 1e-12
    return (1 + extreme) / (1 + resamples)


def test_p_value_matches_a_resample_by_resample_computation():
    rng = random.Random(3)
    gold = _tweets(60, seed=2)

    def noisy(tweet):
        return [label if rng.random() < 0.8 else rng.choice(['O', 'B-PER', 'I-LOC']) for label in tweet]

    pred_a, pred_b = [noisy(t) for t in gold], [noisy(t) for t in gold]
    result = paired_bootstrap(gold, pred_a, pred_b, resamples=200, seed=7)
    assert 0.01 < result.p_value < 1.0  # a case that is neither extreme
    assert result.p_value == pytest.approx(_reference_p_value(gold, pred_a, pred_b, 200, 7))
    assert paired_bootstrap(gold, pred_a, pred_b, resamples=200, seed=7) == result  # seeded


@pytest.mark.parametrize('pred, message', [
    ([['O']], 'as many predicted as gold tweets, got 4 gold and 1 predicted'),
    ([['O'], ['O', 'O'], ['O', 'O'], ['O', 'O', 'O']], 'Tweet 0 has 4 gold labels but 1 predicted'),
])
def test_misaligned_predictions_are_refused(pred, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(GOLD, GOLD, pred)
