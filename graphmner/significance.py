r"""Paired bootstrap test of the span-F1 difference between two systems on
the same test tweets (Efron & Tibshirani, 1993, ch. 16; as used for NLP by
Koehn, 2004 and Berg-Kirkpatrick et al., 2012).

Span F1 is not a mean over tweets, but it is a function of three sums over
tweets: correct, predicted and gold spans. Each tweet's three counts are
computed once (with :func:`graphmner.metrics.get_spans`, so the chunking is
exactly :func:`graphmner.metrics.span_scores`'); a resample draws tweet
indices with replacement, the same indices for both systems (the test is
paired), and sums the counts. 1,000 resamples of 723 tweets take a few
milliseconds.

The null distribution is the bootstrap distribution of the difference
shifted to mean zero: the two-sided p-value is the share of resamples whose
difference lies at least as far from the observed one as the observed one
lies from zero, with the usual +1 correction so that it is never 0:

.. math::
    p = \frac{1 + \#\{b : |\delta^*_b - \delta| \geq |\delta|\}}{1 + B}

Two identical systems get :math:`p = 1`.

Example:
    >>> result = paired_bootstrap(gold, pred_umgf, pred_bert_crf, resamples=1000, seed=1)
    >>> result.difference, result.p_value
    (0.0123, 0.031)
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .metrics import get_spans


def span_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                scheme: str = 'conlleval') -> np.ndarray:
    r"""Per-tweet span counts, the sufficient statistics of span F1.

    Args:
        gold (Sequence[Sequence[str]]): gold BIO labels, one list per tweet.
        pred (Sequence[Sequence[str]]): predicted BIO labels, aligned with
            :obj:`gold` tweet by tweet and word by word.
        scheme (str, optional): ``'conlleval'`` or ``'strict'`` chunking.
            (default: :obj:`'conlleval'`)

    Shapes:
        - **output:** :math:`(N, 3)` integers: correct, predicted and gold
          spans of each of the :math:`N` tweets.
    """
    if len(gold) != len(pred):
        raise ValueError(f'Expected as many predicted as gold tweets, got {len(gold)} gold and '
                         f'{len(pred)} predicted')
    counts = np.zeros((len(gold), 3), dtype=np.int64)
    for i, (gold_labels, pred_labels) in enumerate(zip(gold, pred)):
        if len(gold_labels) != len(pred_labels):
            raise ValueError(f'Tweet {i} has {len(gold_labels)} gold labels but {len(pred_labels)} '
                             'predicted labels')
        gold_spans = set(get_spans(gold_labels, scheme))
        pred_spans = set(get_spans(pred_labels, scheme))
        counts[i] = len(gold_spans & pred_spans), len(pred_spans), len(gold_spans)
    return counts


def f1_of_counts(counts: np.ndarray) -> np.ndarray:
    r"""Micro span F1 of summed counts (``[..., 3]`` -> ``[...]``), 0 where
    undefined (no predicted or no gold span, or nothing correct), as
    :func:`graphmner.metrics.span_scores`."""
    correct, predicted, gold = (counts[..., k].astype(np.float64) for k in range(3))
    # 2PR / (P + R) = 2 correct / (predicted + gold) whenever both ratios are defined
    total = predicted + gold
    f1 = np.divide(2 * correct, total, out=np.zeros_like(correct), where=total > 0)
    return np.where((predicted > 0) & (gold > 0), f1, 0.0)


@dataclass
class BootstrapResult:
    f1_a: float           # span F1 of system A on the whole test set
    f1_b: float           # span F1 of system B
    difference: float     # f1_a - f1_b
    p_value: float        # two-sided, for "A and B have the same F1"
    resamples: int
    seed: int

    def significant(self, level: float = 0.05) -> bool:
        return self.p_value < level


def paired_bootstrap(gold: Sequence[Sequence[str]], pred_a: Sequence[Sequence[str]],
                     pred_b: Sequence[Sequence[str]], resamples: int = 1000, seed: int = 0,
                     scheme: str = 'conlleval') -> BootstrapResult:
    r"""Paired bootstrap test of span F1 of system A minus system B.

    Args:
        gold (Sequence[Sequence[str]]): gold BIO labels, one list per tweet.
        pred_a (Sequence[Sequence[str]]): system A's labels, aligned with :obj:`gold`.
        pred_b (Sequence[Sequence[str]]): system B's labels, aligned with :obj:`gold`.
        resamples (int, optional): bootstrap resamples :math:`B`. (default: :obj:`1000`)
        seed (int, optional): seed of the resampled tweet indices. (default: :obj:`0`)
        scheme (str, optional): ``'conlleval'`` or ``'strict'`` chunking.
            (default: :obj:`'conlleval'`)
    """
    if resamples < 1:
        raise ValueError(f'resamples must be at least 1, got {resamples}')
    if len(gold) == 0:
        raise ValueError('No tweets to compare')
    counts_a = span_counts(gold, pred_a, scheme)  # [N, 3]
    counts_b = span_counts(gold, pred_b, scheme)
    f1_a, f1_b = float(f1_of_counts(counts_a.sum(0))), float(f1_of_counts(counts_b.sum(0)))
    observed = f1_a - f1_b
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(gold), size=(resamples, len(gold)))  # [B, N], shared: paired
    # one-hot counting of the drawn indices is a [B, N] @ [N, 3] product, not a [B, N, 3] gather
    weight = np.zeros((resamples, len(gold)), dtype=np.int64)
    np.add.at(weight, (np.arange(resamples)[:, None], index), 1)
    deltas = f1_of_counts(weight @ counts_a) - f1_of_counts(weight @ counts_b)  # [B]
    # Exact ties (identical systems) must count as "as extreme", whatever rounding does.
    extreme = np.abs(deltas - observed) >= abs(observed) - 1e-12
    p_value = (1 + int(extreme.sum())) / (1 + resamples)
    return BootstrapResult(f1_a=f1_a, f1_b=f1_b, difference=observed, p_value=p_value,
                           resamples=resamples, seed=seed)
