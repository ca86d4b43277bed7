r"""Span-level precision, recall and F1 for BIO-tagged sentences.

Two chunking schemes are offered:

- ``'conlleval'`` (default): the lenient chunker of the CoNLL ``conlleval``
  script, which is also what ``seqeval``'s default mode and the UMT / UMGF / MAF
  evaluation code implement. ``B-X`` always starts a chunk; ``I-X`` continues a
  chunk of type ``X`` and otherwise (after ``O`` or after another type) starts
  a new one.
- ``'strict'``: IOB2, as ``seqeval`` with ``mode='strict', scheme=IOB2``. A
  chunk is ``B-X`` followed by ``I-X`` tokens of the same type; an ``I-X``
  that does not continue such a chunk belongs to no entity.

Sentences are chunked one at a time, so no span crosses a sentence boundary
(``seqeval`` gets the same effect by joining sentences with an ``'O'``).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .data.labels import repair_iob2, split_label

Span = tuple[str, int, int]  # (type, start, end), end exclusive

SCHEMES = ('conlleval', 'strict')


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown chunking scheme {scheme!r}; valid schemes "
                         f"are {', '.join(map(repr, SCHEMES))}")


def get_spans(labels: Sequence[str], scheme: str = 'conlleval') -> list[Span]:
    r"""Returns the entity spans of one BIO-tagged sentence.

    Args:
        labels (Sequence[str]): one label per token: ``'O'``, ``'B-X'`` or
            ``'I-X'``.
        scheme (str, optional): ``'conlleval'`` (lenient: an ``I-X`` that does
            not continue a chunk of type ``X`` starts one) or ``'strict'``
            (IOB2: such an ``I-X`` is no entity). (default: :obj:`'conlleval'`)

    Returns:
        List[Tuple[str, int, int]]: ``(type, start, end)`` per span, ``end``
        exclusive, in sentence order.

    Example:
        >>> get_spans(['B-PER', 'I-PER', 'O', 'I-LOC'])
        [('PER', 0, 2), ('LOC', 3, 4)]
        >>> get_spans(['B-PER', 'I-PER', 'O', 'I-LOC'], scheme='strict')
        [('PER', 0, 2)]
    """
    _check_scheme(scheme)
    if scheme == 'conlleval':
        # conlleval reads a chunk-starting I-X as B-X: exactly what repair_iob2 writes.
        labels = repair_iob2(labels)
    spans: list[Span] = []
    open_type, open_start = None, 0  # the chunk being read, if any
    for i, label in enumerate(labels):
        prefix, type_ = split_label(label)
        if prefix == 'I' and type_ == open_type:
            continue
        if open_type is not None:
            spans.append((open_type, open_start, i))
            open_type = None
        if prefix == 'B':
            open_type, open_start = type_, i
    if open_type is not None:
        spans.append((open_type, open_start, len(labels)))
    return spans


def _prf(correct: int, predicted: int, support: int) -> dict[str, float]:
    # 0.0 where a ratio is undefined, as seqeval does with zero_division=0.
    precision = correct / predicted if predicted else 0.0
    recall = correct / support if support else 0.0
    total = precision + recall
    f1 = 2 * precision * recall / total if total else 0.0
    return {'precision': precision, 'recall': recall, 'f1': f1}


def span_scores(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    scheme: str = 'conlleval',
) -> dict[str, Any]:
    r"""Micro-averaged span-level precision, recall and F1, overall and per
    entity type, as computed by ``conlleval`` (default) or ``seqeval``'s
    strict IOB2 mode.

    A predicted span is correct when its type, start and end all equal those
    of a gold span in the same sentence.

    Args:
        gold (Sequence[Sequence[str]]): gold BIO labels, one list per sentence.
        pred (Sequence[Sequence[str]]): predicted BIO labels, aligned with
            :obj:`gold` sentence by sentence and token by token.
        scheme (str, optional): chunking scheme, ``'conlleval'`` or
            ``'strict'`` (see :func:`get_spans`).
            (default: :obj:`'conlleval'`)

    Returns:
        Dict[str, Any]: ``precision``, ``recall`` and ``f1`` (fractions in
        :math:`[0, 1]`, :obj:`0.0` where undefined), ``support`` (gold spans),
        ``predicted`` (predicted spans) and ``per_type``: for every type found
        in :obj:`gold` or :obj:`pred`, sorted by name, a dict with the same
        five keys.
    """
    _check_scheme(scheme)
    if len(gold) != len(pred):
        raise ValueError(f"Expected as many predicted as gold sentences, got "
                         f"{len(gold)} gold and {len(pred)} predicted")
    for name, sentences in (('gold', gold), ('pred', pred)):
        if len(sentences) > 0 and isinstance(sentences[0], str):
            raise ValueError(f"Expected '{name}' to be a list of sentences "
                             f"(lists of labels), got a flat list of str")
    for i, (gold_labels, pred_labels) in enumerate(zip(gold, pred)):
        if len(gold_labels) != len(pred_labels):
            raise ValueError(f"Sentence {i} has {len(gold_labels)} gold "
                             f"labels but {len(pred_labels)} predicted labels")

    correct: dict[str, int] = defaultdict(int)
    predicted: dict[str, int] = defaultdict(int)
    support: dict[str, int] = defaultdict(int)
    for gold_labels, pred_labels in zip(gold, pred):
        gold_spans = set(get_spans(gold_labels, scheme))
        pred_spans = set(get_spans(pred_labels, scheme))
        for type_, _, _ in gold_spans:
            support[type_] += 1
        for type_, _, _ in pred_spans:
            predicted[type_] += 1
        for type_, _, _ in gold_spans & pred_spans:
            correct[type_] += 1

    per_type = {}
    for type_ in sorted(set(support) | set(predicted)):
        per_type[type_] = _prf(correct[type_], predicted[type_],
                               support[type_])
        per_type[type_].update(support=support[type_],
                               predicted=predicted[type_])

    n_correct = sum(correct.values())
    n_predicted = sum(predicted.values())
    n_support = sum(support.values())
    scores: dict[str, Any] = _prf(n_correct, n_predicted, n_support)
    scores.update(support=n_support, predicted=n_predicted, per_type=per_type)
    return scores


def format_scores(scores: dict[str, Any]) -> str:
    r"""Renders the output of :func:`span_scores` as an aligned table, one row
    per entity type and an ``overall`` row, with percentages to two decimals.

    Example:
        >>> print(format_scores(span_scores([['B-PER', 'O']], [['B-PER', 'O']])))
        type     precision  recall      f1  support  predicted
        PER         100.00  100.00  100.00        1          1
        overall     100.00  100.00  100.00        1          1
    """
    rows = list(scores['per_type'].items()) + [('overall', scores)]
    width = max(len('type'), *(len(name) for name, _ in rows))
    lines = [f"{'type':<{width}}  precision  recall      f1  support  predicted"]
    for name, row in rows:
        lines.append(f"{name:<{width}}  {100 * row['precision']:>9.2f}"
                     f"  {100 * row['recall']:>6.2f}  {100 * row['f1']:>6.2f}"
                     f"  {row['support']:>7d}  {row['predicted']:>9d}")
    return '\n'.join(lines)
