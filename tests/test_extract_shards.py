"""experiments/extract.py: shards of the demo photos into one feature cache, the final
pass that reports what is missing, the graphs built from the cache, one shard per rank
under torchrun."""
import os
import subprocess
import sys

import pytest
from conftest import ROOT, load_experiment

from graphmner.graph import load_dataset


@pytest.fixture(scope='module')
def extract():
    return load_experiment('extract')


def test_shards_split_the_photos_and_the_last_pass_finds_what_is_missing(extract, tmp_path, capsys):
    cache = ['--cache-dir', str(tmp_path)]
    assert extract.main([*cache, '--shard', '0/2']) == 0  # a shard alone does not check: others may run
    assert extract.main([*cache, '--check']) == 1  # the other half is still missing
    first = capsys.readouterr().out
    assert '11 photos: 6 with features' in first and '5 missing' in first
    assert 'missing (run their shards again): brick, chelsea, coffee, gravel, retina' in first
    assert extract.main([*cache, '--shard', '1/2']) == 0
    assert extract.main([*cache, '--check']) == 0
    done = capsys.readouterr().out
    assert '11 photos: 11 with features' in done and '0 unusable, 0 missing' in done

    assert extract.main([*cache, '--check', '--graphs']) == 0
    assert 'train: 24 graphs (built)' in capsys.readouterr().out
    graphs = load_dataset('demo', 'train', cache_dir=tmp_path)  # what graphmner train --model umgf loads
    assert not graphs.built  # the graphs extract.py built, under the key training reads
    assert graphs.report['extraction'] == '24 images: 24 cached, 0 computed, 0 missing or unusable'


def test_cuda_under_torchrun_is_the_gpu_of_the_local_rank(extract, monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    assert extract.extraction_device('cuda') == 'cuda' and extract.extraction_device('cpu') == 'cpu'
    monkeypatch.setenv('LOCAL_RANK', '3')
    assert extract.extraction_device('cuda') == 'cuda:3' and extract.extraction_device('cuda:1') == 'cuda:1'


@pytest.mark.parametrize('shard', ['2/2', '1', 'a/b', '3/2'])
def test_a_bad_shard_is_one_line_and_exit_2(extract, shard, capsys):
    with pytest.raises(SystemExit) as exit_:
        extract.main(['--shard', shard])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1
    assert f"--shard takes I/N with 0 <= I < N (e.g. --shard 0/4), got '{shard}'" in err


@pytest.mark.slow
def test_torchrun_gives_each_rank_a_shard_and_rank_0_the_last_pass(tmp_path):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'YOLO_OFFLINE': 'true', 'OMP_NUM_THREADS': '1'}
    done = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node',
                           '2', str(ROOT / 'experiments' / 'extract.py'), '--cache-dir', str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert 'shard 0/2: 6 images: 0 cached, 6 computed' in log
    assert 'shard 1/2: 5 images: 0 cached, 5 computed' in log
    assert log.count('11 photos: 11 with features') == 1  # rank 0 alone, after both shards
