"""Scaling out on this machine: 1 vs 2 CPU processes on the same data, and graphs streamed from disk.

    flock /tmp/graphmner-heavy.lock python experiments/bench_scale.py --data-root ../shared/data \\
        --encoder ../shared/models/all-MiniLM-L6-v2

1. Training: ``graphmner train`` (experiments/run.py) on the first --tweets training tweets of
   Twitter-2017 (a folder dataset written to a temporary folder), bert-crf, one global batch
   size and seed, run as 1 process x 1 thread, 1 process x 2 threads and 2 processes x 1 thread
   (torchrun, DDP over gloo). Printed side by side: wall time of an epoch's training, tweets per
   second (from metrics.json), the whole command's wall time, and test F1.
2. Streaming: --graphs synthetic tweet graphs (the full schema: 20 words, 49 regions, 16 scale
   cells, 4 objects, caption words; 42-d features as the weight-free backend's) written to a
   graph file one at a time, then read back in the shuffled batches of 32 of the trainer's batch
   sampler (read, not collated: collation costs the same from memory or disk). The process's
   resident memory (RSS) is printed as it goes, beside the growth of holding the first graphs as
   a Python list, the in-memory alternative.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    """This process's resident memory now, in MB (Linux)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


# -- 1. one process against two ------------------------------------------------------------------
def subset(data_root: Path, tweets: int, folder: Path) -> Path:
    """The first ``tweets`` training tweets of Twitter-2017 (and a quarter as many dev / test)."""
    from graphmner.data.conll import read_conll, write_conll

    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (('train.txt', tweets), ('valid.txt', tweets // 4), ('test.txt', tweets // 4)):
        write_conll(read_conll(data_root / 'twitter2017' / name)[:count], folder / name)
    return folder


def train(dataset: Path, encoder: str, processes: int, threads: int, args, out: Path) -> dict:
    command = [sys.executable, str(ROOT / 'experiments' / 'run.py')]
    if processes > 1:
        command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node',
                   str(processes), str(ROOT / 'experiments' / 'run.py')]
    command += ['--model', 'bert-crf', '--dataset', str(dataset), '--encoder', encoder, '--epochs',
                str(args.epochs), '--batch-size', str(args.batch_size), '--seed', '1', '--out', str(out),
                '--cache-dir', str(out.parent / 'cache')]
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'HF_HUB_OFFLINE': '1', 'YOLO_OFFLINE': 'true'}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f'{processes} process(es) x {threads} thread(s) failed:\n{done.stdout[-3000:]}'
                         f'{done.stderr[-3000:]}')
    metrics = json.loads((out / 'metrics.json').read_text())
    plural = lambda n, word: f"{n} {word}{'es' if word == 'process' else 's'}" if n > 1 else f'{n} {word}'
    return {'setup': f"{plural(processes, 'process')} x {plural(threads, 'thread')}",
            'epoch_s': metrics['train_seconds'] / args.epochs,
            'tweets_per_s': metrics['tweets_per_second'], 'wall_s': wall, 'test_f1': metrics['test']['f1']}


def bench_processes(args) -> None:
    with tempfile.TemporaryDirectory(prefix='bench-scale-') as tmp:
        dataset = subset(Path(args.data_root), args.tweets, Path(tmp) / 'twitter2017-subset')
        rows = [train(dataset, args.encoder, p, t, args, Path(tmp) / f'run-{p}x{t}')
                for p, t in ((1, 1), (1, 2), (2, 1))]
    print(f'\nbert-crf, {Path(args.encoder).name}, first {args.tweets} Twitter-2017 training tweets, '
          f'global batch {args.batch_size}, {args.epochs} epoch(s), seed 1, {os.cpu_count()} CPU cores')
    print(f"{'setup':<24}{'s / epoch':>10}{'tweets/s':>10}{'wall s':>9}{'test F1':>9}")
    for r in rows:
        print(f"{r['setup']:<24}{r['epoch_s']:>10.1f}{r['tweets_per_s']:>10.1f}{r['wall_s']:>9.1f}"
              f"{100 * r['test_f1']:>9.2f}")


# -- 2. graphs streamed from disk ------------------------------------------------------------------
def synthetic_graphs(count: int, seed: int = 0):
    """``count`` distinct full-schema tweet graphs (random words, labels and features)."""
    import torch

    from graphmner.data.conll import Tweet
    from graphmner.features.types import ImageFeatures, NodeFeatures, VisualWidths
    from graphmner.graph import build_graph

    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    vocabulary = [f'w{i}' for i in range(5000)]
    labels = ['O', 'B-PER', 'I-PER', 'B-LOC', 'B-ORG', 'B-MISC']
    for _ in range(count):
        words = rng.choices(vocabulary, k=20)
        features = ImageFeatures({
            'image': NodeFeatures(torch.rand(1, 42, generator=g)),
            'region': NodeFeatures(torch.rand(49, 42, generator=g), {'box': torch.rand(49, 4, generator=g)}),
            'scale': NodeFeatures(torch.rand(16, 42, generator=g),
                                  {'level': torch.arange(4).repeat_interleave(4),
                                   'box': torch.rand(16, 4, generator=g)}),
            'object': NodeFeatures(torch.rand(4, 42, generator=g),
                                   {'box': torch.rand(4, 4, generator=g), 'cls': torch.arange(4),
                                    'score': torch.rand(4, generator=g)}, ['person', 'dog', 'car', 'cup'])})
        tweet = Tweet(f'img{rng.randrange(10**9)}', words, rng.choices(labels, k=20))
        yield build_graph(tweet, features, aux=[(w, 'caption') for w in rng.choices(vocabulary, k=12)],
                          widths=VisualWidths.uniform(42))


def bench_streaming(args) -> None:
    from graphmner.graph.storage import GraphFile, GraphFileWriter
    from graphmner.train.distributed import GlobalBatchSampler

    pool = list(synthetic_graphs(256))  # distinct graphs, written over and over
    with tempfile.TemporaryDirectory(prefix='bench-stream-', dir=args.stream_dir) as tmp:
        path = Path(tmp) / 'synthetic.graphs'
        before = rss_mb()
        start = time.perf_counter()
        with GraphFileWriter(path) as writer:
            for i in range(args.graphs):
                writer.append(pool[i % len(pool)])
        write_s = time.perf_counter() - start
        print(f'\n{args.graphs:,} synthetic tweet graphs: written in {write_s:.0f} s '
              f'({path.stat().st_size / 2**30:.2f} GiB, RSS {before:.0f} -> {rss_mb():.0f} MB while writing)')

        graphs = GraphFile(path)
        sampler = GlobalBatchSampler(len(graphs), 32, seed=1, epoch=0)
        marks = {round(args.graphs * k / 4) for k in range(1, 5)}
        samples, seen, peak = [], 0, 0.0
        start = time.perf_counter()
        print(f"{'graphs read':>12}{'RSS MB':>9}{'seconds':>9}")
        base = rss_mb()
        print(f"{0:>12,}{base:>9.0f}{0:>9.0f}")
        for indices in sampler:
            batch = [graphs[i] for i in indices]  # what the trainer's loader reads, before collation
            seen += len(batch)
            now = rss_mb()
            peak = max(peak, now)
            samples.append(now)
            if any(seen - len(batch) < m <= seen for m in marks):
                print(f'{seen:>12,}{now:>9.0f}{time.perf_counter() - start:>9.0f}')
        read_s = time.perf_counter() - start
        settled = samples[len(samples) // 10:]  # after the first tenth (allocator warm-up)
        print(f'read in shuffled batches of 32: {seen / read_s:,.0f} graphs/s; peak RSS {peak:.0f} MB, '
              f'{max(settled) - min(settled):.0f} MB between the lowest and highest RSS after the first '
              f'tenth (start {base:.0f} MB)')

        held = []
        start_rss = rss_mb()
        for i in range(args.list_graphs):
            held.append(graphs[i])
        grown = rss_mb() - start_rss
        print(f'in memory instead: a list of the first {args.list_graphs:,} graphs adds {grown:.0f} MB '
              f'({grown / args.list_graphs * args.graphs / 1024:.1f} GB at {args.graphs:,})')


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data-root', default=str(ROOT.parent / 'shared' / 'data'))
    p.add_argument('--encoder', default=str(ROOT.parent / 'shared' / 'models' / 'all-MiniLM-L6-v2'))
    p.add_argument('--tweets', type=int, default=512, help='training tweets (default: 512)')
    p.add_argument('--batch-size', type=int, default=16, help='global batch (default: 16)')
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--graphs', type=int, default=100_000, help='synthetic graphs streamed (default: 100,000)')
    p.add_argument('--list-graphs', type=int, default=10_000, help='graphs held as a list for comparison')
    p.add_argument('--stream-dir', help='where the graph file goes (default: the temporary folder)')
    p.add_argument('--skip', choices=('processes', 'streaming'), action='append', default=[])
    args = p.parse_args(argv)
    if 'processes' not in args.skip:
        bench_processes(args)
    if 'streaming' not in args.skip:
        bench_streaming(args)


if __name__ == '__main__':
    main()
