"""Data-parallel training over processes started by ``torchrun`` (PyTorch's own
launcher and :class:`~torch.nn.parallel.DistributedDataParallel`).

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in each process;
:meth:`Distributed.from_environment` reads them, joins the process group
(``nccl`` when the run is on CUDA, ``gloo`` on a CPU) and places the process on
its own GPU. Without those variables the run is one process and nothing here
does anything.

Batches are cut from one permutation of the training split per epoch that
depends only on the seed and the epoch (:class:`GlobalBatchSampler`): the
``train.batch_size`` setting is the global batch, and each rank takes its share
of every global batch. A 1-process and an N-process run with the same settings
therefore train on the same examples per step, and ``--resume`` reproduces the
batches of an uninterrupted run at any world size.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


def backend_for(device: torch.device) -> str:
    """The process-group backend for training on ``device``: ``nccl`` between
    GPUs, ``gloo`` between CPU processes."""
    return 'nccl' if device.type == 'cuda' else 'gloo'


def per_rank_batch(global_batch: int, world_size: int) -> int:
    """``global_batch / world_size``, or a :class:`ValueError` when it does
    not divide (every rank takes an equal share of each global batch)."""
    if global_batch % world_size:
        nearest = world_size * max(1, global_batch // world_size)
        raise ValueError(f"'train.batch_size' is the global batch and must divide by the {world_size} "
                         f'processes, got {global_batch} (e.g. {nearest})')
    return global_batch // world_size


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a data-parallel run.

    Args:
        rank (int): this process's rank, 0 to ``world_size - 1``.
        world_size (int): the number of processes (1: no process group).
        device (torch.device): this process's device.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device('cpu')

    @property
    def is_main(self) -> bool:
        """Rank 0 alone evaluates, logs, checkpoints and writes the run folder."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environment(cls, device: str | torch.device = 'cpu') -> Distributed:
        """Joins the process group ``torchrun`` announced in the environment,
        or returns the single-process setting when there is none.

        ``device='cuda'`` puts rank ``LOCAL_RANK`` on GPU ``LOCAL_RANK``; a
        device with an index (``cuda:1``) is refused under ``torchrun``, which
        chooses the GPU itself.
        """
        device = torch.device(device)
        world_size = int(os.environ.get('WORLD_SIZE', '1'))
        if world_size == 1:
            return cls(device=device)
        if device.type == 'cuda':
            if device.index is not None:
                raise ValueError(f"under torchrun give --device cuda, not '{device}': each process takes "
                                 'the GPU of its LOCAL_RANK')
            device = torch.device('cuda', int(os.environ['LOCAL_RANK']))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend_for(device))
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)

    def barrier(self) -> None:
        """Waits until every rank got here (nothing to wait for in one process)."""
        if self.active:
            # nccl needs the device to sync on; gloo takes none.
            dist.barrier(device_ids=[self.device.index] if self.device.type == 'cuda' else None)

    def gather(self, value: Any) -> list[Any]:
        """``value`` of every rank, in rank order (picklable values)."""
        if not self.active:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


class GlobalBatchSampler(torch.utils.data.Sampler[list[int]]):
    r"""This rank's share of every global training batch of one epoch.

    The epoch's order is ``torch.randperm(size)`` under a generator seeded
    with ``seed * 1000 + epoch`` (the batches of the trainer's earlier
    ``DataLoader(shuffle=True)``), cut into global batches of ``global_batch``; rank ``r``
    takes the ``r``-th of ``world_size`` contiguous, equal parts of each. A
    last global batch that does not divide is split as evenly as it goes; one
    smaller than ``world_size`` is topped up with the epoch's first examples,
    so that no rank is left without a batch (DDP steps all ranks together).
    :attr:`global_sizes` gives each step's global batch size, from which the
    trainer weighs a rank's share of the loss.

    Args:
        size (int): the number of training examples.
        global_batch (int): examples per optimisation step over all ranks.
        seed (int): the run's seed.
        epoch (int): the epoch (counted from 0).
        rank (int, optional): this process's rank. (default: :obj:`0`)
        world_size (int, optional): the number of processes. (default: :obj:`1`)
    """

    def __init__(self, size: int, global_batch: int, seed: int, epoch: int, rank: int = 0,
                 world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f'rank must be in [0, {world_size}), got {rank}')
        if size < 1 or global_batch < 1:
            raise ValueError(f'need at least one example and a batch of at least 1, got {size} and '
                             f'{global_batch}')
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        # Runs before this class shuffled with DataLoader(shuffle=True, generator=...) wrapped in
        # tqdm.auto, which starts one extra iterator: two workers' base seeds were drawn from the
        # generator before the order. The same draws keep those runs' batches.
        for _ in range(2):
            torch.empty((), dtype=torch.int64).random_(generator=generator)
        order = torch.randperm(size, generator=generator).tolist()
        batches = [order[start:start + global_batch] for start in range(0, size, global_batch)]
        if len(batches[-1]) < world_size:
            batches[-1] += order[:world_size - len(batches[-1])]
        self.global_sizes = [len(batch) for batch in batches]
        self.batches = [batch[len(batch) * rank // world_size:len(batch) * (rank + 1) // world_size]
                        for batch in batches]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
