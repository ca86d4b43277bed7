r"""MAF's cross-modal matching (CM) module (Xu et al., WSDM 2022, "MAF: A
General Matching and Alignment Framework for Multimodal Named Entity
Recognition", § Cross-Modal Matching Module): swapped text-image pairs as
negatives, a matched / mismatched classifier, and its matched probability
scaling the visual part of every word (:math:`M = \hat{y}_m \odot C`).

Under data-parallel training the negatives are the global batch's: the ranks
gather their :math:`C` and candidates (:func:`~graphmner.nn.gather.gather_rows`)
and swap exactly the rows a 1-process run over the same batch swaps.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .gather import gather_rows


def swap_order(candidates: Tensor, num_negatives: int) -> Tensor:
    r"""The row each tweet takes its visual states from when ``num_negatives``
    (:math:`2k`) of the ``candidates`` are swapped as negatives.

    The last :math:`2k` candidates (in batch order; the training batches are
    shuffled, so this is a random choice, as the official code's "last 16 of the
    batch") are split into two halves, and row :math:`i` of the first half swaps
    with row :math:`i` of the second. With :math:`2k` or fewer candidates
    nothing is swapped (the official code swaps only when the batch is larger
    than :math:`2k`, so that positives remain).

    Args:
        candidates (Tensor): bool :math:`(B)`, the rows that may be swapped
            (tweets with a usable image).
        num_negatives (int): :math:`2k`, even and :math:`\geq 0`.

    Returns:
        Tensor: long :math:`(B)`; ``order[i] == i`` where nothing is swapped.
    """
    if num_negatives < 0 or num_negatives % 2:
        raise ValueError(f"'num_negatives' (2k) must be even and >= 0, got {num_negatives}")
    order = torch.arange(candidates.numel(), device=candidates.device)
    rows = candidates.nonzero().view(-1)
    if num_negatives == 0 or rows.numel() <= num_negatives:
        return order
    k = num_negatives // 2
    first, second = rows[-num_negatives:-k], rows[-k:]
    order[first], order[second] = second, first
    return order


@dataclass
class MatchingOutput:
    """What :class:`CrossModalMatching` returns."""

    visual: Tensor   # [B, T, d] M = P(matched) * C (C swapped for negatives)
    logits: Tensor   # [B, 2] mismatched / matched scores
    target: Tensor   # [B] long: 1 matched, 0 swapped (the CM label y_m)


class CrossModalMatching(nn.Module):
    r"""The cross-modal matching module of MAF (Xu et al., WSDM 2022).

    In training, :math:`2k` tweets of the batch swap their interaction outputs
    :math:`C` pairwise (:func:`swap_order`) and become mismatched examples;
    the swapped :math:`C` is also what their words carry on to the fusion, as
    in the official code. A classifier over :math:`[T; C]` gives the matched
    probability :math:`\hat{y}_m`; by default (see below for the paper's flattened
    form) the module returns

    .. math::
        \mathbf{F}_i = \frac{1}{n_i} \sum_{w=1}^{n_i} [\mathbf{t}_w ; \mathbf{c}_w],
        \qquad
        \hat{y}_{m,i} = \mathrm{softmax}(\mathbf{W}_f \mathbf{F}_i + \mathbf{b}_f)_{\text{matched}},
        \qquad
        \mathbf{M}_i = \hat{y}_{m,i} \, \mathbf{C}_i

    with the cross-entropy against the labels :math:`y_m` left to the caller
    (:attr:`MatchingOutput.logits`, :attr:`MatchingOutput.target`). Nothing is
    swapped in evaluation mode, so decoding is deterministic.

    The paper flattens the pair, :math:`\mathbf{F}_i = \mathrm{Flatten}([T; C])`
    with :math:`\hat{y}_{m,i} = \sigma(\mathbf{W}_f^\top \mathbf{F}_i)`, and the
    official code sizes :math:`\mathbf{W}_f` for its 128 padded subword
    positions (``Linear(768 * 2 * 128, 2)`` and a softmax over the two
    classes, which is the sigmoid of the difference of the two logits).
    ``positions=L`` is that form over word slots: :math:`[T; C]` of the first
    :math:`L` word slots, zero-padded, flattened into one :math:`2dL` vector
    (``positions=128`` the official size; the official slots are subwords
    with ``[CLS]``, ``[SEP]`` and ``##`` pieces, which the word graph does not
    have, and here words past :math:`L` are not read).

    The default (``positions=None``, the equations above) is graphmner's: the
    same linear classifier on the mean over each tweet's words. A mean needs
    no cap on the number of words, shares its weights across positions rather
    than learning late positions from the few long tweets, and has
    :math:`1/L` of the parameters. It stays the default because every MAF
    result of this repository was measured with it; the two have not been
    compared on Twitter. Both forms are linear in :math:`[T; C]`, as the
    paper's is, so a pair's score is a text term plus a visual term: the two
    swapped pairs :math:`(T_i, C_j), (T_j, C_i)` score in sum exactly as the
    two matched ones, and the classifier cannot tell a swap from a match
    beyond what a length difference leaves in the cut or zero-padded
    :math:`C`; in training it mostly learns the share of negatives.

    With ``group`` (the ranks of a data-parallel run, each holding its share of
    the batch in rank order), the swap is chosen over the gathered global
    batch, and a row may take its :math:`C` from another rank, with the
    gradient going back there: the rows swapped, the count of negatives and the
    outputs equal those of one process holding the whole batch. Without it a
    rank would swap only within its own share, and none at all once the share
    holds :math:`2k` or fewer image tweets.

    Args:
        channels (int): width :math:`d` of the text and visual word states.
        num_negatives (int, optional): :math:`2k`, the tweets swapped per
            training batch when more than :math:`2k` candidates are present
            (the official ``negative_rate``). (default: :obj:`16`)
        positions (int, optional): :math:`L`, flatten :math:`L` padded word
            slots (the official form, :math:`L = 128`); :obj:`None`: the mean
            over each tweet's words. (default: :obj:`None`)

    Shapes:
        - **input:** text :math:`(B, T, d)`, visual :math:`(B, T, d)`, mask
          :math:`(B, T)` bool, candidates :math:`(B)` bool, group (optional
          ``ProcessGroup``, read in training only)
        - **output:** :class:`MatchingOutput` with visual :math:`(B, T, d)`,
          logits :math:`(B, 2)`, target :math:`(B)`
    """

    def __init__(self, channels: int, num_negatives: int = 16, positions: int | None = None):
        super().__init__()
        if channels <= 0:
            raise ValueError(f"'channels' must be positive, got {channels}")
        if positions is not None and positions <= 0:
            raise ValueError(f"'positions' must be positive or None, got {positions}")
        if num_negatives < 0 or num_negatives % 2:
            raise ValueError(f"'num_negatives' (2k) must be even and >= 0, got {num_negatives}")
        self.channels = channels
        self.num_negatives = num_negatives
        self.positions = positions
        self.classifier = nn.Linear(2 * channels * (positions or 1), 2)  # W_f over [T ; C]
        self.reset_parameters()

    def reset_parameters(self):
        self.classifier.reset_parameters()

    def forward(self, text: Tensor, visual: Tensor, mask: Tensor, candidates: Tensor,
                group=None) -> MatchingOutput:
        if text.dim() != 3 or text.shape[-1] != self.channels or visual.shape != text.shape:
            raise ValueError(f'{type(self).__name__} expects text and visual states of shape '
                             f'[B, T, {self.channels}], got {tuple(text.shape)} and {tuple(visual.shape)}')
        if mask.shape != text.shape[:2] or candidates.shape != text.shape[:1]:
            raise ValueError(f"'mask' must be [B, T] and 'candidates' [B] for states of shape "
                             f'{tuple(text.shape)}, got {tuple(mask.shape)} and {tuple(candidates.shape)}')
        keep = mask.unsqueeze(-1).to(text.dtype)                            # [B, T, 1]
        if not self.training:
            group = None  # no swap, nothing to share (evaluation may run on one rank alone)
        shared = gather_rows([visual, candidates], group)
        every_visual, every_candidate = shared.tensors                      # [B_all, T_all, d], [B_all]
        order = swap_order(every_candidate, self.num_negatives if self.training else 0)[shared.rows]  # [B]
        rows = torch.arange(shared.rows.start, shared.rows.stop, device=order.device)
        target = (order == rows).long()
        # A swapped-in C is cut or zero-padded to this tweet's words.
        visual = every_visual[order, :text.shape[1]] * keep                 # [B, T, d]
        pairs = torch.cat([text, visual], dim=-1) * keep                    # [B, T, 2d]
        if self.positions is None:
            pooled = pairs.sum(1) / keep.sum(1).clamp(min=1)                # [B, 2d]
        else:
            L = self.positions
            pairs = F.pad(pairs[:, :L], (0, 0, 0, L - min(L, pairs.shape[1])))  # [B, L, 2d]
            pooled = pairs.flatten(1)                                       # [B, 2dL]
        logits = self.classifier(pooled)                                    # [B, 2]
        matched = logits.softmax(-1)[:, 1]                                  # y_m hat
        return MatchingOutput(matched.view(-1, 1, 1) * visual, logits, target)

    def extra_repr(self) -> str:
        return f'{self.channels}, num_negatives={self.num_negatives}, positions={self.positions}'
