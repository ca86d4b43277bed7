"""Recovery with real processes: ``experiments/run.py`` killed with SIGKILL in the middle of
an epoch and again in the middle of writing its checkpoint, ``graphmner train`` stopped by
Ctrl-C (SIGINT), each then run with ``--resume``, ends with the scores and the time accounting
of a run that was never interrupted, and leaves no cut-off file behind.

The kills are real (SIGKILL to the run's process group, SIGINT to its process, from this process);
a small runner only makes their moment deterministic: it wraps the model's loss (or the atomic file
writer) so that the run stops at a chosen batch (or halfway through writing ``last.pt``), says so
in a marker file and waits there to be killed.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT

from graphmner.graph import load_dataset

PAUSING_RUN = r'''
import os, runpy, signal, sys, time
from pathlib import Path

marker, pause = Path(os.environ['PAUSE_MARKER']), os.environ.get('PAUSE', '')
sys.path.insert(0, os.environ['REPO'])
# Ctrl-C raises KeyboardInterrupt, as in a terminal, even where the tests run in the background (a shell
# without job control starts them ignoring SIGINT, and Python then installs no handler of its own).
signal.signal(signal.SIGINT, signal.default_int_handler)


def wait_to_be_killed():
    marker.write_text(str(os.getpid()))
    while True:
        time.sleep(1)


if pause.startswith('loss:'):  # stop before training batch N (counted from 1 in this process)
    from graphmner.models.base import MNERModel
    loss, calls, stop = MNERModel.loss, [0], int(pause.split(':')[1])

    def pausing_loss(self, batch):
        calls[0] += 1
        if calls[0] == stop:
            wait_to_be_killed()
        return loss(self, batch)
    MNERModel.loss = pausing_loss
elif pause.startswith('write:'):  # stop halfway through writing that file the first time
    import io
    import graphmner.io
    atomic_write, name = graphmner.io.atomic_write, pause.split(':')[1]

    def pausing_write(path, write):
        if Path(path).name != name:
            return atomic_write(path, write)

        def half_then_wait(f):
            buffer = io.BytesIO()
            write(buffer)
            f.write(buffer.getvalue()[:buffer.tell() // 2])
            f.flush()
            os.fsync(f.fileno())
            wait_to_be_killed()
        return atomic_write(path, half_then_wait)
    graphmner.io.atomic_write = pausing_write

if os.environ['RUN_PY'] == 'graphmner':  # python -m graphmner
    sys.argv = [sys.argv[0], *sys.argv[1:]]
    runpy.run_module('graphmner', run_name='__main__', alter_sys=True)
else:
    sys.argv = [os.environ['RUN_PY'], *sys.argv[1:]]
    runpy.run_path(os.environ['RUN_PY'], run_name='__main__')
'''


def launch(tmp_path, argv, processes=1, pause='', script=ROOT / 'experiments' / 'run.py'):
    """``experiments/run.py`` (or ``script='graphmner'``: ``python -m graphmner``, ``argv`` naming the
    command) in ``processes`` processes (torchrun, when more than one), in a session of its own (a
    kill reaches every process), paused at ``pause`` as PAUSING_RUN reads it."""
    folder = tmp_path / f'launch-{time.monotonic_ns()}'  # this launch's runner: its processes are found by it
    folder.mkdir()
    runner, marker = folder / 'pausing_run.py', folder / 'paused'
    runner.write_text(PAUSING_RUN)
    # One thread: equal arithmetic in every process, and no thread contention on a busy machine.
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'YOLO_OFFLINE': 'true', 'OMP_NUM_THREADS': '1',
           'PAUSE': pause, 'PAUSE_MARKER': str(marker), 'REPO': str(ROOT),
           'RUN_PY': str(script)}
    launcher = ([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node',
                 str(processes)] if processes > 1 else [sys.executable])
    process = subprocess.Popen([*launcher, str(runner), *map(str, argv)], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    return process, marker


def finish(process):
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out[-4000:]
    return out


def wait_for_pause(process, marker):
    deadline = time.monotonic() + 600
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(f'the run ended before pausing:\n{process.stdout.read()[-3000:]}')
        assert time.monotonic() < deadline, 'the run never reached its pause'
        time.sleep(0.05)


def kill_when_paused(process, marker):
    """SIGKILL to every process of ``process``'s run once it has paused (``marker`` exists)."""
    wait_for_pause(process, marker)
    os.killpg(process.pid, signal.SIGKILL)
    kill_every_process_running(marker.parent / 'pausing_run.py')
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def kill_every_process_running(script: Path) -> None:
    """torchrun's workers outlive a kill of the launcher's process group (elastic starts them in
    sessions of their own); left paused, each held about 900 MB after the suite ended."""
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / 'cmdline').read_bytes().split(b'\0')
        except OSError:
            continue
        if str(script).encode() in argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def whole(run_dir):
    """Every file of the run folder reads back completely; no temporary file is left."""
    names = sorted(p.name for p in run_dir.iterdir())
    assert not [n for n in names if n.startswith('.')], names
    for name in names:
        path = run_dir / name
        if name.endswith('.pt'):
            torch.load(path, weights_only=True)
        elif name.endswith('.json'):
            json.loads(path.read_text())
        elif name.endswith('.png'):
            data = path.read_bytes()
            assert data[:8] == b'\x89PNG\r\n\x1a\n' and data[-8:] == b'IEND\xaeB`\x82', name
    return names


def epochs_in(path):
    return torch.load(path, weights_only=True)['epoch']


def epoch_seconds(path):
    """Each finished epoch's training seconds as ``last.pt`` records them."""
    return [h['train_seconds'] for h in json.loads(torch.load(path, weights_only=True)['history'])]


@pytest.mark.slow
def test_sigkill_mid_epoch_and_mid_checkpoint_and_ctrl_c_then_resume_give_the_uninterrupted_run(
        tiny_encoder, graph_cache, tmp_path):
    # 24 training tweets in batches of 4: 6 steps an epoch; learning rates at which the tiny model learns
    argv = ['--model', 'bert-crf', '--encoder', tiny_encoder, '--epochs', '3', '--batch-size', '4',
            '--seed', '3', '--cache-dir', graph_cache, '--set', 'train.encoder_lr=0.01',
            '--set', 'train.head_lr=0.01']
    for split in ('train', 'dev', 'test'):  # the demo graphs are built once, here, not by one of the runs
        load_dataset('demo', split, cache_dir=graph_cache)
    full, killed = tmp_path / 'uninterrupted', tmp_path / 'killed'
    reference, _ = launch(tmp_path, [*argv, '--out', full])

    # 1. SIGKILL in the middle of epoch 2 (before its third batch)
    process, marker = launch(tmp_path, [*argv, '--out', killed], pause='loss:9')
    kill_when_paused(process, marker)
    assert epochs_in(killed / 'last.pt') == 1 and not (killed / 'metrics.json').exists()
    assert whole(killed)
    first_epoch = epoch_seconds(killed / 'last.pt')

    # 2. --resume, SIGKILL halfway through writing last.pt after epoch 2
    process, marker = launch(tmp_path, [*argv, '--out', killed, '--resume'], pause='write:last.pt')
    kill_when_paused(process, marker)
    [partial] = [p for p in killed.iterdir() if p.name.startswith('.last.pt.')]
    assert 0 < partial.stat().st_size
    assert epochs_in(killed / 'last.pt') == 1  # the previous state, untouched

    # 3. graphmner train --resume, Ctrl-C in epoch 3 (before its third batch; this process redoes epoch 2)
    process, marker = launch(tmp_path, ['train', *argv, '--out', killed, '--resume'], pause='loss:9',
                             script='graphmner')
    wait_for_pause(process, marker)
    process.send_signal(signal.SIGINT)
    try:
        out, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f'Ctrl-C did not stop the run:\n{process.communicate()[0][-3000:]}')
    assert process.returncode == 130, out[-3000:]
    assert 'Removed 1 partial file(s) left by an interrupted write' in out
    assert 'Traceback' not in out and 'KeyboardInterrupt' not in out, out[-3000:]
    assert out.splitlines()[-1] == (
        f"graphmner train: interrupted in epoch 3 of 3: {killed / 'last.pt'} keeps epoch 2 (best dev F1 so "
        f"far {torch.load(killed / 'last.pt', weights_only=True)['best_f1']:.4f}, in best.pt), and --resume "
        f"continues from it; continue with: graphmner train {' '.join(map(str, argv))} --out {killed} "
        '--resume')
    assert epochs_in(killed / 'last.pt') == 2 and not (killed / 'metrics.json').exists()
    two_epochs = epoch_seconds(killed / 'last.pt')
    assert two_epochs[0] == first_epoch[0]  # epoch 1 as the killed process timed it
    assert whole(killed)

    # 4. --resume to the end
    log = finish(launch(tmp_path, [*argv, '--out', killed, '--resume'])[0])
    assert 'Resumed from' in log and 'after epoch 2' in log
    finish(reference)

    got, want = (json.loads((run / 'metrics.json').read_text()) for run in (killed, full))
    assert got['dev'] == want['dev'] and got['test'] == want['test']
    drop_timing = lambda history: [{k: v for k, v in h.items() if 'second' not in k} for h in history]
    assert drop_timing(got['history']) == drop_timing(want['history'])
    assert got['history'][-1]['loss'] < got['history'][0]['loss']
    # Time and throughput over every part of the run: each epoch timed by the process that finished it.
    seconds = [h['train_seconds'] for h in got['history']]
    assert seconds[:2] == two_epochs and all(s > 0 for s in seconds)
    for run in (got, want):
        tweets = sum(h['tweets'] for h in run['history'])
        assert tweets == 3 * 24 and [h['tweets'] for h in run['history']] == [24, 24, 24]
        total = sum(h['train_seconds'] for h in run['history'])
        assert run['train_seconds'] == pytest.approx(total, abs=0.01)
        # metrics.json rounds train_seconds to 0.01 s: over a run of a few tenths of a second that alone
        # moves tweets / train_seconds by more than 1 %, so the bound is the rounding's own
        low, high = tweets / (run['train_seconds'] + 0.005), tweets / (run['train_seconds'] - 0.005)
        assert low - 0.01 <= run['tweets_per_second'] <= high + 0.01
    assert whole(killed) == whole(full)
    # A finished run keeps its weights once: last.pt is a small record, best.pt the model.
    assert (killed / 'last.pt').stat().st_size < 0.01 * (killed / 'best.pt').stat().st_size
