r"""Symmetric InfoNCE between two views of the same tweets, with in-batch
negatives: MAF's cross-modal alignment (Xu et al., WSDM 2022, Eq. of
:math:`\mathcal{L}_{CA}`) and GMF's consistency matching (He et al., Applied
Sciences 2024, Eqs. 14-16).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def symmetric_info_nce(a: Tensor, b: Tensor, temperature: float, weight: float = 0.5,
                       mask: Tensor | None = None) -> Tensor:
    r"""Weighted symmetric InfoNCE over cosine similarities.

    .. math::
        s_{ij} = \cos(\mathbf{a}_i, \mathbf{b}_j) / \tau, \qquad
        \mathcal{L}_{a \to b} = \frac{1}{N} \sum_i -\log
            \frac{e^{s_{ii}}}{\sum_j e^{s_{ij}}}, \qquad
        \mathcal{L} = w \, \mathcal{L}_{a \to b} + (1 - w) \, \mathcal{L}_{b \to a}

    The denominator includes the positive (MAF's official code). Rows whose
    ``mask`` is :obj:`False` (tweets without a usable image) take no part,
    neither as anchor nor as negative.

    Args:
        a (Tensor): first view, e.g. the text vectors.
        b (Tensor): second view, row-aligned with ``a``, e.g. the image vectors.
        temperature (float): :math:`\tau > 0`.
        weight (float, optional): :math:`w`, the weight of the :math:`a \to b`
            direction. (default: :obj:`0.5`)
        mask (Tensor, optional): bool, which rows take part. (default: all)

    Returns:
        Tensor: a scalar; :obj:`0` (still attached to the graph) when fewer
        than two rows take part, since a single pair has no negative.

    Shapes:
        - **input:** :math:`(B, d)`, :math:`(B, d)`, mask :math:`(B)`
        - **output:** :math:`()`
    """
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"'a' and 'b' must both be [B, d], got {tuple(a.shape)} and {tuple(b.shape)}")
    if temperature <= 0:
        raise ValueError(f"'temperature' must be positive, got {temperature}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"'weight' must be in [0, 1], got {weight}")
    if mask is not None:
        a, b = a[mask], b[mask]
    if a.shape[0] < 2:
        return (a.sum() + b.sum()) * 0.0
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t() / temperature  # [N, N]
    target = torch.arange(a.shape[0], device=a.device)
    return weight * F.cross_entropy(logits, target) + (1 - weight) * F.cross_entropy(logits.t(), target)
