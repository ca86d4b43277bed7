"""Peak memory of training and of prediction with images, and its growth with the batch size.

    python experiments/bench_memory.py --corpus /tmp/bench-corpus --plot memory.png
    python experiments/bench_memory.py --corpus /tmp/bench-corpus --models bert-crf umgf --batch-sizes 4 8

The tweets are the first ``--tweets`` of the benchmark corpus
(``experiments/bench_corpus.py``): each with a photo and every visual node in
its graph (a random ResNet-152's regions and pyramid, the cascade detector's
objects, the real photos' BLIP-2 captions, object tags and RapidOCR words as
aux words). Each model is built as ``graphmner train`` builds it on
Twitter-2017 (the package's config, the MiniLM encoder of ``--encoder``, the
visual widths of the corpus's backend), bert-crf as it is and every visual
method reading every aux source (``model.aux_sources=[caption,tag,ocr]``),
untrained: the weights do not change the memory.

Every measurement runs in a fresh Python process and is that process's peak
resident memory (``VmHWM`` of ``/proc/self/status``, Linux), imports included:

* training: one epoch of graphmner's :class:`Trainer` over the tweets' graphs
  (held in memory, the same graphs at every batch size, so that only the
  batch grows; at least two steps at the largest batch, since the first step
  has no optimizer moments yet);
* prediction: ``Tagger.predict`` of the same tweets with their photos' paths
  (graph building, batching, forward, Viterbi, marginals). The features come
  from a warm feature cache (what a second call on the same photos costs);
  with ``--extract`` each process extracts them itself from an empty cache,
  so the ResNet-152, the cascades and the OCR engine load in it.

Printed: a table of the peaks (MB) with the growth per +1 tweet in the batch
(the least-squares slope over the batch sizes), and with ``--plot`` the same
as curves in a PNG.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphmner.cli import MODEL_NAMES, Parser, fail, quiet_third_parties  # noqa: E402

quiet_third_parties()  # before torch_geometric's import warns about torch.jit

from experiments.bench_corpus import ALL_EVIDENCE, BENCH_OPTIONS, corpus_builder, corpus_graphs  # noqa: E402

#: What is measured, in the table's order.
KINDS = ('train', 'predict')
#: The marker of the child process's result line on its standard output.
RESULT = 'bench_memory result: '


def memory_mb(field: str, status: str | None = None) -> float:
    """A memory line of ``/proc/self/status`` in MB: ``VmHWM`` (the peak resident memory) or
    ``VmRSS`` (resident now).

    Args:
        field (str): the line's name.
        status (str, optional): the file's text. (default: :obj:`None`, this process's)

    Raises:
        KeyError: the text has no such line.
    """
    if status is None:
        status = Path('/proc/self/status').read_text()
    for line in status.splitlines():
        name, _, value = line.partition(':')
        if name == field:
            return int(value.split()[0]) / 1024  # the kernel writes kB
    raise KeyError(f'no {field} line in /proc/self/status')


def growth_per_tweet(batch_sizes: list[int], peaks: list[float]) -> float:
    """MB per +1 tweet in the batch: the least-squares slope of the peaks over the batch sizes."""
    return statistics.linear_regression(batch_sizes, peaks).slope


# -- the child: one measurement --------------------------------------------------------------------
def measure(job: dict[str, Any]) -> dict[str, float]:
    """Runs one measurement (``job`` from :func:`run_measurement`) in this process and returns its
    resident memory before the work (``ready_mb``: imports, model, graphs) and its peak."""
    import warnings

    from experiments.bench_train import train_one_epoch
    from graphmner import Tagger
    from graphmner.data.labels import BIO_LABELS
    from graphmner.data.paths import image_path
    from graphmner.graph import GraphOptions, backend_widths
    from graphmner.graph.data_config import DataConfig
    from graphmner.graph.storage import GraphFile
    from graphmner.train.experiment import build_model, load_spec

    warnings.filterwarnings('ignore', message='.*RANDOM weights', category=UserWarning)  # timing only
    overrides = [f"model.encoder={job['encoder']}"] + ([ALL_EVIDENCE] if job['model'] != 'bert-crf' else [])
    spec = load_spec(job['model'], 'twitter2017', overrides=overrides,
                     values={'train': {'batch_size': job['batch_size'], 'epochs': 1}})
    model = build_model(spec, BIO_LABELS, backend_widths(GraphOptions(**BENCH_OPTIONS)))
    if job['kind'] == 'train':
        graphs = list(GraphFile(job['graphs']))
        ready = memory_mb('VmRSS')
        train_one_epoch(model, graphs, spec.train)
    else:
        tweets, builder = corpus_builder(job['corpus'], data_root=job['data_root'], progress=False)
        tweets = tweets[:job['tweets']]
        model.data_config = DataConfig(options=builder.options, captions=str(builder.captions))
        tagger = Tagger(model, cache_dir=job['cache'], batch_size=job['batch_size'])
        ready = memory_mb('VmRSS')
        tagger.predict([t.words for t in tweets],
                       images=[image_path(builder.image_root, t.image_id) for t in tweets])
    return {'ready_mb': ready, 'peak_mb': memory_mb('VmHWM')}


def run_measurement(job: dict[str, Any]) -> dict[str, float]:
    """:func:`measure` in a fresh Python process (this script with ``--child``)."""
    done = subprocess.run([sys.executable, __file__, '--corpus', job['corpus'], '--child', json.dumps(job)],
                          capture_output=True, text=True)
    results = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not results:
        raise RuntimeError(f"the {job['kind']} measurement of {job['model']} at batch {job['batch_size']} "
                           f'failed (exit status {done.returncode}):\n{done.stderr[-3000:]}')
    return json.loads(results[-1][len(RESULT):])


# -- the parent: every measurement, the table, the plot ------------------------------------------
def print_table(peaks: dict[tuple[str, str], list[float]], batch_sizes: list[int], tweets: int) -> None:
    print(f'\npeak RSS in MB, each a fresh process ({tweets} corpus tweets with every visual node)')
    print(f"{'':<18}" + ''.join(f'{f"batch {b}":>11}' for b in batch_sizes) + f"{'MB per +1 tweet':>17}")
    for (kind, model), values in peaks.items():
        print(f'{kind:<8}{model:<10}' + ''.join(f'{v:>11.0f}' for v in values)
              + f'{growth_per_tweet(batch_sizes, values):>17.1f}')


def plot(peaks: dict[tuple[str, str], list[float]], batch_sizes: list[int], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(KINDS), figsize=(11, 4.2), sharey=True)
    for ax, kind in zip(axes, KINDS):
        for (k, model), values in peaks.items():
            if k == kind:
                slope = growth_per_tweet(batch_sizes, values)
                ax.plot(batch_sizes, values, marker='o', label=f'{model} ({slope:+.1f} MB/tweet)')
        ax.set(title={'train': 'training (Trainer, one epoch)',
                      'predict': 'prediction (Tagger.predict)'}[kind],
               xlabel='batch size (tweets)', xscale='log', xticks=batch_sizes)
        ax.set_xticklabels([str(b) for b in batch_sizes])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    axes[0].set_ylabel('peak RSS (MB)')
    figure.suptitle('graphmner peak memory with every visual node (fresh process per point)')
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    p = Parser(prog='bench_memory.py', description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--corpus', type=Path, required=True,
                   help="the benchmark corpus's folder (experiments/bench_corpus.py --out DIR)")
    p.add_argument('--models', nargs='+', default=['bert-crf', 'umgf', 'maf', 'gmf', 'ita'],
                   choices=MODEL_NAMES)
    p.add_argument('--batch-sizes', type=int, nargs='+', default=[4, 8, 16, 32])
    p.add_argument('--tweets', type=int, default=64, help='corpus tweets trained on and tagged (default: 64)')
    p.add_argument('--encoder', default=str(ROOT.parent / 'shared' / 'models' / 'all-MiniLM-L6-v2'))
    p.add_argument('--data-root', default=str(ROOT.parent / 'shared' / 'data'))
    p.add_argument('--cache-dir', type=Path,
                   help='feature cache root, features in <cache-dir>/features as Tagger reads them '
                        '(default: <corpus>/tagger-cache)')
    p.add_argument('--extract', action='store_true',
                   help='prediction extracts the features itself (an empty cache per process)')
    p.add_argument('--plot', type=Path, help='also draw the curves into this PNG')
    p.add_argument('--child', help=argparse.SUPPRESS)  # one measurement, run by the parent
    args = p.parse_args(argv)
    if args.child is not None:
        print(RESULT + json.dumps(measure(json.loads(args.child))))
        return
    sizes = sorted(set(args.batch_sizes))
    if sizes[0] < 1 or len(sizes) < 2:
        fail(p.prog, f'--batch-sizes needs two or more different sizes of at least 1 (the growth is a '
                     f'slope), got {args.batch_sizes}')
    if args.tweets < 2 * sizes[-1]:
        fail(p.prog, f'--tweets {args.tweets} is fewer than two of the largest batch ({sizes[-1]}): every '
                     f'batch size needs two training steps (the second is the steady state, the optimizer '
                     f'moments allocated)')
    if not (args.corpus / 'corpus.json').is_file():
        fail(p.prog, f"--corpus: '{args.corpus}' holds no benchmark corpus (no corpus.json); write one "
                     f'with: python experiments/bench_corpus.py --out {args.corpus}')
    if args.plot is not None and not args.plot.parent.is_dir():
        fail(p.prog, f"--plot: the folder '{args.plot.parent}' does not exist")
    if not Path(args.encoder).is_dir():
        fail(p.prog, f"--encoder: '{args.encoder}' is not a folder (a local Hugging Face model)")
    cache = args.cache_dir or args.corpus / 'tagger-cache'

    from graphmner.graph.storage import GraphFileWriter

    graphs = corpus_graphs(args.corpus, args.tweets, data_root=args.data_root,
                           cache_dir=cache / 'features', progress=False)
    peaks: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix='bench-memory-') as work:
        graph_file = Path(work) / 'corpus.graphs'
        with GraphFileWriter(graph_file) as writer:
            for g in graphs:
                writer.append(g)
        for model in args.models:
            for kind in KINDS:
                for size in sizes:
                    job = {'kind': kind, 'model': model, 'batch_size': size, 'tweets': args.tweets,
                           'encoder': args.encoder, 'graphs': str(graph_file), 'corpus': str(args.corpus),
                           'data_root': args.data_root, 'cache': str(cache)}
                    if kind == 'predict' and args.extract:
                        job['cache'] = tempfile.mkdtemp(prefix='extract-', dir=work)
                    result = run_measurement(job)
                    peaks.setdefault((kind, model), []).append(result['peak_mb'])
                    print(f"{kind:<8}{model:<10}batch {size:>3}: peak {result['peak_mb']:7.0f} MB "
                          f"({result['ready_mb']:.0f} MB before the work)", flush=True)
    print_table(peaks, sizes, args.tweets)
    if args.plot is not None:
        plot(peaks, sizes, args.plot)
        print(f'plot: {args.plot}')


if __name__ == '__main__':
    main()
