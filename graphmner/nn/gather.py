r"""The rows of a global batch that data-parallel ranks hold in shares, gathered
with gradients: what batch-level objectives (MAF's swapped text-image pairs,
the in-batch negatives of an InfoNCE) need to see the batch a 1-process run
sees.

Every rank computes the batch-level loss over all gathered rows; in the
backward each row's gradient is summed over the ranks and handed to the rank
that computed the row. :class:`~torch.nn.parallel.DistributedDataParallel`
averages the parameter gradients over the :math:`W` ranks, so as long as the
ranks' loss weights sum to :math:`W` (plain DDP: all 1; graphmner's trainer:
each rank's share of the global batch times :math:`W`) the step is the
gradient of the loss over the global batch:

.. math::
    \frac{1}{W} \sum_s \Big( \sum_r w_r \frac{\partial L}{\partial x_s} \Big)
    \frac{\partial x_s}{\partial \theta} = \frac{\partial L}{\partial \theta}
    \quad \text{for} \quad \sum_r w_r = W.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


class _AllGather(torch.autograd.Function):
    """``[W, *shape]``: every rank's equally shaped ``tensor``; the backward sums
    the ranks' gradients and returns this rank's slice (an all-reduce, which
    every backend has, unlike reduce-scatter)."""

    @staticmethod
    def forward(ctx, tensor: Tensor, group) -> Tensor:
        ctx.group = group
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, tensor.contiguous(), group=group)
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, group=ctx.group)
        return grad[dist.get_rank(ctx.group)], None


class _AllReduceSum(torch.autograd.Function):
    """The sum of every rank's equally shaped ``tensor``; the backward sums the
    ranks' gradients (the gradient of a sum over ranks, seen from each rank)."""

    @staticmethod
    def forward(ctx, tensor: Tensor, group) -> Tensor:
        ctx.group = group
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


def sum_over_ranks(tensor: Tensor, group) -> Tensor:
    r"""The element-wise sum of ``tensor`` over the ranks of ``group``, with
    gradients: what batch statistics (a batch norm's per-channel sums) need to
    be the global batch's. Every rank of ``group`` must call it with a tensor of
    the same shape at the same point of its forward, and, where the sum needs
    gradients on any rank, run the backward through it too.

    Args:
        tensor (Tensor): this rank's part of the sum.
        group (ProcessGroup): the ranks that share the batch.

    Shapes:
        - **input:** :math:`(*)`
        - **output:** :math:`(*)`
    """
    return _AllReduceSum.apply(tensor, group)


@dataclass
class GatheredRows:
    """What :func:`gather_rows` returns."""

    tensors: list[Tensor]  # each [sum of the ranks' rows, *largest trailing shape], in rank order
    rows: slice            # where this rank's own rows sit in them


def _padded(tensor: Tensor, shape: list[int]) -> Tensor:
    if list(tensor.shape) == shape:
        return tensor
    out = tensor.new_zeros(shape)
    out[tuple(slice(0, n) for n in tensor.shape)] = tensor
    return out


def gather_rows(tensors: Sequence[Tensor], group=None) -> GatheredRows:
    r"""Every rank's rows of ``tensors``, concatenated in rank order, with
    gradients flowing back to the rank that computed them.

    The ranks may hold different numbers of rows and different trailing sizes
    (tweets of other lengths): each tensor is zero-padded to the largest shape
    over the ranks before the exchange, and the result keeps that padding in
    the trailing dimensions. Floating-point tensors travel in one
    autograd-aware collective, the others (masks, labels) in one plain one.
    Every rank of ``group`` must call it with the same number of tensors, of
    the same dtypes and dimensions, at the same point of its forward.

    Args:
        tensors (Sequence[Tensor]): row-aligned tensors ``[B_r, ...]`` (this
            rank's share of the batch).
        group (ProcessGroup, optional): the ranks that share the batch;
            :obj:`None`: this process holds the whole batch, and ``tensors``
            come back as they are. (default: :obj:`None`)

    Returns:
        GatheredRows: the gathered tensors and this rank's rows in them.

    Shapes:
        - **input:** :math:`(B_r, *)` each
        - **output:** :math:`(\sum_r B_r, *)` each
    """
    if not tensors:
        raise ValueError('gather_rows needs at least one tensor')
    rows = tensors[0].shape[0] if tensors[0].dim() else -1
    if any(t.dim() == 0 or t.shape[0] != rows for t in tensors):
        raise ValueError(f'gather_rows needs row-aligned tensors [B, ...], got shapes '
                         f'{[tuple(t.shape) for t in tensors]}')
    if group is None:
        return GatheredRows(list(tensors), slice(0, rows))
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    device = tensors[0].device
    wants_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    meta = torch.tensor([int(wants_grad), *(n for t in tensors for n in t.shape)], device=device)
    metas = [torch.empty_like(meta) for _ in range(world)]
    dist.all_gather(metas, meta, group=group)
    table = torch.stack(metas).tolist()                               # [W, 1 + sum of ndims]
    # Once any rank's rows need gradients, every rank must run the backward's collective.
    grad_anywhere = any(line[0] for line in table)
    counts = [line[1] for line in table]                              # rows per rank
    shapes, offset = [], 1
    for t in tensors:
        shapes.append([max(line[offset + d] for line in table) for d in range(t.dim())])
        offset += t.dim()
    most = max(counts)
    padded = [_padded(t, [most, *shape[1:]]).reshape(most, -1) for t, shape in zip(tensors, shapes)]

    def exchange(indices: list[int], dtype: torch.dtype, differentiable: bool) -> dict[int, Tensor]:
        flat = torch.cat([padded[i].to(dtype) for i in indices], dim=1)  # [most, F]
        if differentiable:
            if grad_anywhere and torch.is_grad_enabled() and not flat.requires_grad:
                flat = flat.detach().requires_grad_()
            stacked = _AllGather.apply(flat, group)                   # [W, most, F]
        else:
            parts = [torch.empty_like(flat) for _ in range(world)]
            dist.all_gather(parts, flat.contiguous(), group=group)
            stacked = torch.stack(parts)
        out, start = {}, 0
        for i in indices:
            width = padded[i].shape[1]
            piece = stacked[:, :, start:start + width].reshape(world, most, *shapes[i][1:])
            out[i] = torch.cat([piece[r, :counts[r]] for r in range(world)]).to(tensors[i].dtype)
            start += width
        return out

    floats = [i for i, t in enumerate(tensors) if t.is_floating_point()]
    others = [i for i, t in enumerate(tensors) if not t.is_floating_point()]
    gathered: dict[int, Tensor] = {}
    if floats:
        dtype = tensors[floats[0]].dtype
        for i in floats[1:]:
            dtype = torch.promote_types(dtype, tensors[i].dtype)
        gathered.update(exchange(floats, dtype, differentiable=True))
    if others:
        gathered.update(exchange(others, torch.int64, differentiable=False))
    start = sum(counts[:rank])
    return GatheredRows([gathered[i] for i in range(len(tensors))], slice(start, start + rows))
