r"""Per-dimension standardisation of frozen visual features, fitted once on
the training split.

Frozen backbone features can carry a large component common to every photo
(post-ReLU ResNet features are all non-negative; random-weight ResNet-50
features of different photos have a mean pairwise cosine of 0.998). Fed raw,
the fusion layers silently learn to ignore them. Centring and scaling each
dimension with training-set statistics removes that component, so a
ResNet-152 feature of norm 2e9 trains like one of norm 10.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


class FeatureStandardizer(nn.Module):
    r""":math:`(\mathbf{x} - \boldsymbol{\mu}) / \boldsymbol{\sigma}` per
    dimension, with :math:`\boldsymbol{\mu}, \boldsymbol{\sigma}` estimated by
    :meth:`fit` on the training split's visual nodes and stored as persistent
    buffers, so they are saved and loaded with the model. Until fitted it is
    the identity (:math:`\mu = 0, \sigma = 1`).

    Dimensions that never vary in the fitted data (for example the zero
    padding of a narrow pyramid level) keep :math:`\sigma = 1`, so they stay
    zero instead of being blown up by :math:`1/\epsilon`.

    Args:
        channels (int): feature width.
        node_types (tuple[str, ...]): the graph node types whose ``x`` it is
            fitted on (read by
            :meth:`~graphmner.models.base.MNERModel.fit_feature_statistics`).
        eps (float, optional): a standard deviation at or below it counts as
            constant. (default: :obj:`1e-5`)
        level (int, optional): fit only on the rows of this pyramid level
            (``scale.level``), each cut to its first ``channels`` columns (a
            level narrower than ``x``, which is zero-padded to the widest).
            (default: :obj:`None`: every row)
        packed (bool, optional): with ``level``, each row packs several cells
            of ``channels`` values (a stage map at its own resolution,
            :func:`~graphmner.features.grid.pack_cells`): fit on every cell,
            not on the first ``channels`` columns. (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(*, C)`
        - **output:** :math:`(*, C)`
    """

    def __init__(self, channels: int, node_types: tuple[str, ...], eps: float = 1e-5,
                 level: int | None = None, packed: bool = False):
        super().__init__()
        if channels <= 0:
            raise ValueError(f"'channels' must be positive, got {channels}")
        if not node_types:
            raise ValueError("'node_types' must name at least one node type to fit on")
        self.channels = channels
        self.node_types = tuple(node_types)
        self.eps = eps
        self.level = level
        self.packed = packed
        self.register_buffer('mean', torch.zeros(channels))
        self.register_buffer('std', torch.ones(channels))
        self.register_buffer('fitted', torch.tensor(False))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.mean.zero_()
        self.std.fill_(1.0)
        self.fitted.fill_(False)

    @torch.no_grad()
    def fit(self, chunks: Tensor | Iterable[Tensor]) -> None:
        """Estimates the statistics from ``[N, C]`` rows, given as one tensor
        or as an iterable of tensors (summed in float64, never concatenated,
        so a training split's regions need no second copy). No rows: nothing
        changes."""
        if isinstance(chunks, Tensor):
            chunks = [chunks]
        count, total, squares = 0, torch.zeros(self.channels, dtype=torch.float64), \
            torch.zeros(self.channels, dtype=torch.float64)
        for x in chunks:
            if x.dim() != 2 or x.shape[-1] != self.channels:
                raise ValueError(f'{type(self).__name__} expects rows of shape [N, {self.channels}], '
                                 f'got {tuple(x.shape)}')
            x = x.detach().to('cpu', torch.float64)
            count += x.shape[0]
            total += x.sum(0)
            squares += (x * x).sum(0)
        if count == 0:
            return
        mean = total / count
        std = (squares / count - mean * mean).clamp(min=0).sqrt()
        std = torch.where(std > self.eps, std, torch.ones_like(std))
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.to(self.std.dtype))
        self.fitted.fill_(True)

    def rows_of(self, store) -> Tensor:
        """The rows of one graph's node store (``x``, and ``level`` with
        :attr:`level` set) that :meth:`fit` reads: ``[N, channels]``."""
        if self.level is None:
            return store.x
        rows = store.x[store.level == self.level]
        return rows.reshape(-1, self.channels) if self.packed else rows[:, :self.channels]

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.channels:
            raise ValueError(f'{type(self).__name__} expects features of width {self.channels}, '
                             f'got {tuple(x.shape)}')
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        level = '' if self.level is None else f', level={self.level}'
        return f'{self.channels}, node_types={self.node_types}{level}, fitted={bool(self.fitted)}'
