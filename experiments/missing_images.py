"""Missing-image robustness: each trained model's test F1 with all, half and none of the images usable.

    # the visual-dependence probe's runs (experiments/probe_visual.py, run folders <probe>/<model>/)
    python experiments/missing_images.py --name probe --probe runs/probe --models bert-crf umgf maf gmf
    # a grid's finished runs (experiments/reproduce.py), each on its own dataset's test split
    python experiments/missing_images.py --name twitter2017-minilm --grid runs/twitter2017-minilm

At a fraction f, exactly round(f * n) of the n test tweets with an image keep it; the others lose it
(``graphmner.graph.transforms.DropImage``): their graphs become exactly the ones the builder makes for a
missing image. Which tweets lose it is decided by a hash of the seed and the tweet (the smallest draws
go first), so every model loses the same tweets, and a tweet without its image at 0.5 is without it at
0. Each run's best.pt is scored on its test graphs (built as in training) at each fraction; the results
go to results/<name>-missing-images.md, .json and .png. A test set in which no tweet has a usable image
(Twitter here: the images are not on this machine) gives a flat curve by construction: it is scored
once and the table says so.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXPERIMENTS = Path(__file__).resolve().parent
sys.path.insert(0, str(EXPERIMENTS.parent))
sys.path.insert(0, str(EXPERIMENTS))  # reproduce.py and probe_visual.py are scripts beside this one

from graphmner.cli import quiet_third_parties  # noqa: E402

quiet_third_parties()  # before torch_geometric's import warns about torch.jit

import probe_visual  # noqa: E402
import reproduce  # noqa: E402

from graphmner.cli import offline_environment  # noqa: E402
from graphmner.graph import schema  # noqa: E402
from graphmner.graph.transforms import DropImage  # noqa: E402
from graphmner.train import experiment  # noqa: E402

FRACTIONS = (1.0, 0.5, 0.0)
FLAT = 'no test tweet has a usable image: flat by construction'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--name', required=True, help='results/<name>-missing-images.md, .json, .png')
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument('--probe', type=Path, metavar='DIR',
                        help="probe_visual.py's --out: one <model>/best.pt per model (e.g. runs/probe)")
    source.add_argument('--grid', type=Path, metavar='DIR',
                        help="a reproduce.py grid's runs folder (e.g. runs/twitter2017-minilm)")
    p.add_argument('--models', nargs='+', help='only these models (default: every run found)')
    p.add_argument('--fractions', nargs='+', type=float, default=list(FRACTIONS),
                   help='shares of the images kept usable (default: 1 0.5 0)')
    p.add_argument('--seed', type=int, default=1, help='which tweets lose their image (default: 1)')
    p.add_argument('--data-seed', type=int, default=0, help="the probe dataset's seed (probe_visual.py's)")
    p.add_argument('--captions', action='store_true', help='the probe was built with --captions')
    p.add_argument('--cache-dir', type=Path, help='graph and feature cache (default: graphs/cache)')
    p.add_argument('--results-dir', type=Path, default=reproduce.REPOSITORY / 'results',
                   help='where the table goes')
    args = p.parse_args(argv)
    bad = [f for f in args.fractions if not 0.0 <= f <= 1.0]
    if bad:
        p.error(f'--fractions are shares in [0, 1], got {bad}')
    return args


# -- the runs and their test graphs -------------------------------------------------------------


def probe_runs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The probe's runs (one folder per model) with the probe's test graphs."""
    results = args.probe / 'results.json'  # written when the probe script finishes: its sizes, its F1
    trained = json.loads(results.read_text()) if results.exists() else {}
    sizes = trained.get('sizes', probe_visual.SIZES)
    cache = args.cache_dir or probe_visual.DEFAULT_CACHE
    name = probe_visual.probe_name(args.data_seed, args.captions)
    if 'probe' in trained and Path(trained['probe']).name != name:
        raise SystemExit(f"missing_images.py: the runs under {args.probe} were trained on the probe "
                         f"{trained['probe']}, not {name}: give its --data-seed (and --captions)")
    folder = probe_visual.build_probe(cache / 'probe' / name, sizes, args.data_seed, captions=args.captions)
    graphs = probe_visual.probe_graphs(folder, probe_visual.PROBE_OPTIONS, cache / 'features',
                                       ('test',))['test']
    rows = {row['model']: row for row in trained.get('models', [])}
    runs = []
    for checkpoint in sorted(args.probe.glob('*/best.pt')):
        model = checkpoint.parent.name
        scheme, batch_size = reproduce.evaluation_settings(rows.get(model, {}))
        seed = rows.get(model, {}).get('settings', {}).get('train', {}).get('seed')
        runs.append({'method': model, 'dataset': f'probe ({folder.name})', 'seed': seed,
                     'run': str(checkpoint.parent), 'graphs': graphs, 'scheme': scheme,
                     'batch_size': batch_size, 'trained_test_f1': rows.get(model, {}).get('test_f1')})
    return runs


def grid_runs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """A grid's finished runs, each with its own test graphs (loaded when scored)."""
    runs = []
    for metrics_path in sorted(args.grid.glob('*/metrics.json')):
        metrics = json.loads(metrics_path.read_text())
        scheme, batch_size = reproduce.evaluation_settings(metrics)
        # a grid's folder is <method>-<dataset>-seed<seed>, the method an ablation's name where it is one
        suffix = f"-{Path(metrics['dataset']).name}-seed{metrics['seed']}"
        folder = metrics_path.parent.name
        runs.append({'method': folder.removesuffix(suffix) if folder.endswith(suffix) else metrics['model'],
                     'dataset': metrics['dataset'], 'seed': metrics['seed'], 'run': str(metrics_path.parent),
                     'metrics': metrics, 'scheme': scheme, 'batch_size': batch_size,
                     'trained_test_f1': metrics['test']['f1']})
    return runs


# -- scoring ------------------------------------------------------------------------------------------


def has_image(g) -> bool:
    return not bool(g[schema.IMAGE].missing.any())


def exact_drop(graphs: list[Any], fraction: float, seed: int) -> DropImage:
    """The :class:`DropImage` that leaves exactly ``round(fraction * n)`` of the ``n`` tweets with an
    image their image: its ``p`` is the draw of the first tweet kept, so the others' draws lie below."""
    draws = sorted(DropImage(0.0, seed).draw(g) for g in graphs if has_image(g))
    dropped = len(draws) - round(fraction * len(draws))
    return DropImage(draws[dropped] if dropped < len(draws) else 1.0, seed)


def curve(run: dict[str, Any], fractions: list[float], seed: int, cache_dir: Path | None) -> dict[str, Any]:
    """``run``'s test scores at each usable fraction of the images."""
    from graphmner.models import load

    model = load(Path(run['run']) / 'best.pt')
    graphs = run.get('graphs')
    if graphs is None:
        m = run['metrics']
        graphs = experiment.graphs_as_trained(model, m['dataset'], 'test', m['data_root'], m['image_root'],
                                              m['captions'], str(cache_dir) if cache_dir else None)
    with_image = sum(map(has_image, graphs))
    points, flat_scores = [], None
    for fraction in fractions:
        drop = exact_drop(graphs, fraction, seed)
        kept = sum(has_image(g) and not drop.drops(g) for g in graphs)
        if with_image == 0:  # every graph is the same at every fraction: score it once
            flat_scores = flat_scores or experiment.evaluate_graphs(model, graphs, run['scheme'],
                                                                    run['batch_size'])
            scores = flat_scores
        else:
            scores = experiment.evaluate_graphs(model, graphs, run['scheme'], run['batch_size'], drop)
        points.append({'usable_fraction': fraction, 'drop_probability': drop.p, 'tweets_with_image': kept,
                       'tweets': len(graphs),
                       **{key: scores[key] for key in ('precision', 'recall', 'f1', 'predicted', 'support')}})
        print(f"{run['method']} ({run['dataset']}): {100 * fraction:.0f} % of the images usable "
              f"({kept}/{len(graphs)} tweets with one): F1 {100 * scores['f1']:.2f}", flush=True)
    reads_images = model.needs_image_features(model.config)
    return {key: value for key, value in run.items() if key not in ('graphs', 'metrics')} | {
        'run': reproduce.shown_path(run['run']), 'reads_images': reads_images, 'points': points,
        'note': 'reads no image' if not reads_images else FLAT if with_image == 0 else ''}


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    fractions = args.fractions
    columns = ('model', 'dataset', 'seed', *(f'F1, {100 * f:.0f} % images' for f in fractions),
               f'{100 * fractions[0]:.0f} % - {100 * fractions[-1]:.0f} %', 'tweets with an image',
               'F1 as trained', 'note')
    source = reproduce.shown_path(args.probe or args.grid)
    lines = [f'# {args.name}: missing images', '',
             f'Generated by `experiments/missing_images.py` from the runs under `{source}` (listed in '
             f'`results/{args.name}-missing-images.json`); do not edit by hand.', '',
             "Test span F1 (percent, conlleval) of each run's best dev checkpoint when the given share of "
             'the test tweets with an image keep it and the others get the graph the builder makes for a '
             f'missing image (seeded draw, seed {args.seed}: the same tweets for every model). '
             '"F1 as trained": the run\'s own test F1, which the 100 % column reproduces. A model that reads '
             'no image is the flat reference.', '',
             '| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        f1 = [100 * p['f1'] for p in row['points']]
        trained = '' if row['trained_test_f1'] is None else f"{100 * row['trained_test_f1']:.2f}"
        lines.append('| ' + ' | '.join([
            row['method'], Path(row['dataset']).name, '' if row['seed'] is None else str(row['seed']),
            *(f'{v:.2f}' for v in f1), f'{f1[0] - f1[-1]:+.2f}',
            ' / '.join(str(p['tweets_with_image']) for p in row['points'])
            + f" of {row['points'][0]['tweets']}",
            trained, row['note']]) + ' |')
    return '\n'.join(lines) + '\n'


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """F1 against the share of usable images, one line per run."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for row in rows:
        x = [100 * p['usable_fraction'] for p in row['points']]
        label = row['method'] + ('' if row['seed'] is None else f" seed {row['seed']}")
        label += {FLAT: ' (no image: flat by construction)', 'reads no image': ' (reads no image)'}.get(
            row['note'], '')
        ax.plot(x, [100 * p['f1'] for p in row['points']], marker='o', label=label,
                linestyle='--' if row['note'] else '-')
    ax.set(xlabel='test tweets that keep their image (%)', ylabel='test F1 (%)', title=title)
    ax.invert_xaxis()  # left to right: images taken away
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    offline_environment()
    args = parse_args(argv)
    runs = probe_runs(args) if args.probe else grid_runs(args)
    if args.models:
        runs = [run for run in runs if run['method'] in args.models]
    if not runs:
        raise SystemExit(f'missing_images.py: no finished run under {args.probe or args.grid}')
    rows = [curve(run, args.fractions, args.seed, args.cache_dir) for run in runs]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    base = args.results_dir / f'{args.name}-missing-images'
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    base.with_suffix('.json').write_text(json.dumps({'name': args.name, 'settings': settings, 'rows': rows},
                                                    indent=2, default=str))
    base.with_suffix('.md').write_text(markdown(rows, args))
    plot(rows, base.with_suffix('.png'), f'{args.name}: missing images')
    print(f'wrote {base}.md, .json, .png ({len(rows)} runs)')
    return rows


if __name__ == '__main__':
    main()
