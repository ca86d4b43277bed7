import random

import pytest

from graphmner.metrics import format_scores, get_spans, span_scores

TYPES = ['PER', 'LOC', 'ORG', 'MISC']


def test_get_spans_conlleval():
    labels = ['B-PER', 'I-PER', 'O', 'I-LOC', 'I-LOC', 'I-ORG', 'B-ORG',
              'B-ORG', 'I-ORG']
    assert get_spans(labels) == [('PER', 0, 2), ('LOC', 3, 5), ('ORG', 5, 6),
                                 ('ORG', 6, 7), ('ORG', 7, 9)]
    assert get_spans(['I-PER']) == [('PER', 0, 1)]
    assert get_spans([]) == []
    assert get_spans(['O', 'O']) == []


def test_get_spans_strict():
    labels = ['B-PER', 'I-PER', 'O', 'I-LOC', 'I-LOC', 'B-ORG', 'I-LOC',
              'I-LOC', 'B-MISC']
    assert get_spans(labels, 'strict') == [('PER', 0, 2), ('ORG', 5, 6),
                                           ('MISC', 8, 9)]
    assert get_spans(['B-PER', 'I-PER', 'I-LOC'], 'strict') == [('PER', 0, 2)]


def test_get_spans_keeps_hyphenated_types():
    assert get_spans(['B-GPE-LOC', 'I-GPE-LOC']) == [('GPE-LOC', 0, 2)]


def test_span_scores_hand_example():
    gold = [['B-PER', 'I-PER', 'O', 'B-LOC'], ['B-ORG', 'O', 'B-PER']]
    pred = [['B-PER', 'I-PER', 'O', 'B-ORG'], ['B-ORG', 'O', 'O']]
    scores = span_scores(gold, pred)
    # gold: PER, LOC, ORG, PER; predicted: PER, ORG, ORG; correct: PER, ORG
    assert scores['support'] == 4 and scores['predicted'] == 3
    assert scores['precision'] == pytest.approx(2 / 3)
    assert scores['recall'] == pytest.approx(2 / 4)
    assert scores['f1'] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert list(scores['per_type']) == ['LOC', 'ORG', 'PER']
    assert scores['per_type']['LOC'] == {'precision': 0.0, 'recall': 0.0,
                                         'f1': 0.0, 'support': 1,
                                         'predicted': 0}
    assert scores['per_type']['ORG']['precision'] == pytest.approx(0.5)
    assert scores['per_type']['ORG']['recall'] == 1.0
    assert scores['per_type']['PER']['recall'] == 0.5


def test_span_scores_schemes_differ_on_invalid_chunks():
    # The seqeval README example: I- without B- is an entity only when lenient.
    gold = [['B-NP', 'I-NP', 'O']]
    pred = [['I-NP', 'I-NP', 'O']]
    assert span_scores(gold, pred)['f1'] == 1.0
    assert span_scores(gold, pred, scheme='strict')['f1'] == 0.0


def test_span_scores_type_only_in_prediction_and_empty_input():
    scores = span_scores([['O', 'O']], [['B-MISC', 'O']])
    assert scores['per_type'] == {'MISC': {'precision': 0.0, 'recall': 0.0,
                                           'f1': 0.0, 'support': 0,
                                           'predicted': 1}}
    assert scores['precision'] == scores['recall'] == scores['f1'] == 0.0
    empty = span_scores([], [])
    assert empty['f1'] == 0.0 and empty['per_type'] == {}


def test_span_scores_errors():
    with pytest.raises(ValueError, match="Sentence 1 has 2 gold labels but "
                       "1 predicted"):
        span_scores([['O'], ['O', 'O']], [['O'], ['O']])
    with pytest.raises(ValueError, match="got 2 gold and 1 predicted"):
        span_scores([['O'], ['O']], [['O']])
    with pytest.raises(ValueError, match="Malformed label 'E-PER'"):
        span_scores([['E-PER']], [['O']])
    with pytest.raises(ValueError, match="Malformed label 'B-'"):
        get_spans(['B-'])
    with pytest.raises(ValueError, match="'conlleval', 'strict'"):
        span_scores([['O']], [['O']], scheme='iobes')
    with pytest.raises(ValueError, match="flat list of str"):
        span_scores(['B-PER', 'O'], ['B-PER', 'O'])


def random_corpus(rng, num_sentences):
    """Gold labels, including ill-formed I- starts, and predictions that
    agree with gold on most tokens so that spans overlap in every way."""
    def label():
        roll = rng.random()
        if roll < 0.5:
            return 'O'
        return ('B-' if roll < 0.75 else 'I-') + rng.choice(TYPES)

    gold, pred = [], []
    for _ in range(num_sentences):
        sentence = [label() for _ in range(rng.randint(1, 12))]
        gold.append(sentence)
        pred.append([tag if rng.random() < 0.7 else label()
                     for tag in sentence])
    return gold, pred


@pytest.mark.parametrize('scheme', ['conlleval', 'strict'])
def test_span_scores_match_seqeval(scheme):
    # Only this test needs seqeval (the reference); the hand-written ones run without it.
    seqeval_metrics = pytest.importorskip('seqeval.metrics')
    seqeval_scheme = pytest.importorskip('seqeval.scheme')
    rng = random.Random(12345)
    kwargs = {'zero_division': 0}
    if scheme == 'strict':
        kwargs.update(mode='strict', scheme=seqeval_scheme.IOB2)
    for _ in range(5):
        gold, pred = random_corpus(rng, 60)
        ours = span_scores(gold, pred, scheme=scheme)
        assert ours['precision'] == pytest.approx(
            seqeval_metrics.precision_score(gold, pred, **kwargs))
        assert ours['recall'] == pytest.approx(
            seqeval_metrics.recall_score(gold, pred, **kwargs))
        assert ours['f1'] == pytest.approx(
            seqeval_metrics.f1_score(gold, pred, **kwargs))

        report = seqeval_metrics.classification_report(
            gold, pred, output_dict=True, **kwargs)
        types = {key for key in report if not key.endswith(' avg')}
        assert set(ours['per_type']) == types
        for type_, row in ours['per_type'].items():
            expected = report[type_]
            assert row['precision'] == pytest.approx(expected['precision'])
            assert row['recall'] == pytest.approx(expected['recall'])
            assert row['f1'] == pytest.approx(expected['f1-score'])
            assert row['support'] == expected['support']
        assert ours['support'] == report['micro avg']['support']


def test_format_scores():
    gold = [['B-PER', 'I-PER', 'O', 'B-LOC']]
    pred = [['B-PER', 'I-PER', 'O', 'O']]
    lines = format_scores(span_scores(gold, pred)).splitlines()
    assert lines[0].split() == ['type', 'precision', 'recall', 'f1',
                                'support', 'predicted']
    assert lines[1].split() == ['LOC', '0.00', '0.00', '0.00', '1', '0']
    assert lines[2].split() == ['PER', '100.00', '100.00', '100.00', '1', '1']
    assert lines[3].split() == ['overall', '100.00', '50.00', '66.67', '2',
                                '1']
    assert len({len(line) for line in lines}) == 1
