"""experiments/bench_memory.py's readings: the memory lines of /proc/self/status and the growth per tweet."""
from __future__ import annotations

import subprocess
import sys
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


# In a fresh process: in this long-lived one the block may be carved from memory freed earlier and
# still resident (glibc serves a large request from a free heap chunk before asking for new pages).
PEAK_FOLLOWS_BLOCK = """
import runpy, sys
memory_mb = runpy.run_path(sys.argv[1])['memory_mb']
resident, peak = memory_mb('VmRSS'), memory_mb('VmHWM')
assert 0 < resident <= peak, (resident, peak)
grown = peak - resident + 64  # MB: past the old peak whatever it was
block = b'\\x01' * int(grown * 2**20)  # written, so resident
assert memory_mb('VmHWM') >= resident + 0.95 * grown, (memory_mb('VmHWM'), resident, grown)
assert memory_mb('VmRSS') >= resident + 0.95 * grown, (memory_mb('VmRSS'), resident, grown)
"""


@pytest.mark.skipif(not Path('/proc/self/status').is_file(), reason='reads Linux /proc')
def test_the_peak_follows_a_block_that_outgrows_it(bench):
    script = Path(bench.__file__)
    done = subprocess.run([sys.executable, '-c', PEAK_FOLLOWS_BLOCK, str(script)], capture_output=True,
                          text=True, cwd=script.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]


def test_growth_per_tweet_is_the_slope_over_the_batch_sizes(bench):
    assert bench.growth_per_tweet([4, 8, 16, 32], [1000 + 3 * b for b in (4, 8, 16, 32)]) == pytest.approx(3)
    # Least squares over every point, not the last point against the first (32 / 12 MB).
    assert bench.growth_per_tweet([4, 8, 16], [1000, 1040, 1032]) == pytest.approx(15 / 7)
