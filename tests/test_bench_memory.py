"""experiments/bench_memory.py's readings: the memory lines of /proc/self/status and the growth per tweet."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_experiment

STATUS = 'Name:\tpython\nVmPeak:\t 4096000 kB\nVmHWM:\t 1536000 kB\nVmRSS:\t 1024000 kB\nThreads:\t2\n'


@pytest.fixture(scope='module')
def bench():
    return load_experiment('bench_memory')


def test_memory_mb_reads_the_named_line_in_mb(bench):
    assert bench.memory_mb('VmHWM', STATUS) == 1500.0
    assert bench.memory_mb('VmRSS', STATUS) == 1000.0
    with pytest.raises(KeyError, match='VmSwap'):
        bench.memory_mb('VmSwap', STATUS)


@pytest.mark.skipif(not Path('/proc/self/status').is_file(), reason='reads Linux /proc')
def test_the_peak_follows_a_block_that_outgrows_it(bench):
    resident, peak = bench.memory_mb('VmRSS'), bench.memory_mb('VmHWM')
    assert 0 < resident <= peak
    grown = peak - resident + 64  # MB: past the old peak whatever it was
    block = b'\x01' * int(grown * 2**20)  # written, so resident
    assert bench.memory_mb('VmHWM') >= resident + 0.95 * grown
    assert bench.memory_mb('VmRSS') >= resident + 0.95 * grown
    del block


def test_growth_per_tweet_is_the_slope_over_the_batch_sizes(bench):
    assert bench.growth_per_tweet([4, 8, 16, 32], [1000 + 3 * b for b in (4, 8, 16, 32)]) == pytest.approx(3)
    # Least squares over every point, not the last point against the first (32 / 12 MB).
    assert bench.growth_per_tweet([4, 8, 16], [1000, 1040, 1032]) == pytest.approx(15 / 7)
