"""gather_rows: every rank's rows in rank order, zero-padded to the largest shape, and
gradients that make the ranks' step the gradient over the whole batch (real gloo processes)."""
from datetime import timedelta

import pytest
import torch

from graphmner.nn.gather import gather_rows


def test_without_a_group_the_rows_come_back_as_they_are():
    x, mask = torch.randn(3, 2), torch.tensor([True, False, True])
    shared = gather_rows([x, mask])
    assert shared.tensors[0] is x and shared.tensors[1] is mask and shared.rows == slice(0, 3)


def test_refuses_tensors_that_are_not_row_aligned():
    message = r'row-aligned tensors \[B, \.\.\.\], got shapes \[\(3, 2\), \(2,\)\]'
    with pytest.raises(ValueError, match=message):
        gather_rows([torch.zeros(3, 2), torch.zeros(2)])
    with pytest.raises(ValueError, match='at least one tensor'):
        gather_rows([])


# Rank r holds rows of its own count and length; the 1-process batch is their zero-padded concatenation.
ROWS, LENGTHS = (2, 3), (4, 2)


def shares():
    torch.manual_seed(0)
    x = [torch.randn(n, t, 3, dtype=torch.float64) for n, t in zip(ROWS, LENGTHS)]
    labels = [torch.arange(n) + 10 * r for r, n in enumerate(ROWS)]
    return x, labels


def objective(x):
    """A batch-level loss that couples the rows (like an InfoNCE's denominator)."""
    weights = torch.linspace(-1, 1, x.shape[0] * x.shape[1], dtype=x.dtype).view(x.shape[:2] + (1, ))
    return (x * weights).sum().pow(2) + x.pow(3).sum()


def rank_main(rank, init_file, out, grad_on_rank1):
    import torch.distributed as dist

    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))
    x, labels = shares()
    mine = x[rank].clone().requires_grad_(rank == 0 or grad_on_rank1)
    shared = gather_rows([mine, labels[rank], labels[rank] > 10], dist.group.WORLD)
    gathered, got_labels, got_mask = shared.tensors
    # The trainer's weights: each rank's share of the 5-row batch times the 2 ranks (sum 2).
    share = 2 * ROWS[rank] / sum(ROWS)
    (share * objective(gathered)).backward()
    torch.save({'gathered': gathered.detach(), 'labels': got_labels, 'mask': got_mask,
                'rows': (shared.rows.start, shared.rows.stop), 'grad': mine.grad}, f'{out}-{rank}.pt')
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize('grad_on_rank1', [True, False])
def test_two_ranks_gather_the_batch_and_step_with_its_gradient(tmp_path, grad_on_rank1):
    """With rank 1's rows detached, rank 1 still takes part in the backward's collective
    (a rank skipping it would leave rank 0 waiting until the 60 s timeout)."""
    import torch.multiprocessing as mp

    mp.spawn(rank_main, args=(tmp_path / 'rendezvous', tmp_path / 'out', grad_on_rank1), nprocs=2)
    x, labels = shares()
    batch = torch.zeros(sum(ROWS), max(LENGTHS), 3, dtype=torch.float64)
    batch[:2, :4], batch[2:, :2] = x
    batch.requires_grad_()
    objective(batch).backward()
    for rank, (start, stop) in enumerate(((0, 2), (2, 5))):
        got = torch.load(tmp_path / f'out-{rank}.pt', weights_only=True)
        assert torch.equal(got['gathered'], batch.detach())
        assert got['labels'].tolist() == [0, 1, 10, 11, 12] and got['labels'].dtype == torch.int64
        assert got['mask'].tolist() == [False, False, False, True, True] and got['mask'].dtype == torch.bool
        assert got['rows'] == (start, stop)
        if rank == 1 and not grad_on_rank1:
            assert got['grad'] is None
            continue
        # DDP averages over the 2 ranks: half of each rank's gradient is the 1-process one.
        torch.testing.assert_close(got['grad'] / 2, batch.grad[start:stop, :LENGTHS[rank]])
