"""Train several models under the same encoder, seed and data, and print one table.

    python experiments/compare.py --models bert-crf umgf ita --dataset twitter2017 \\
        --data-root ../shared/data --captions ../shared/data/captions/blip2_twitter2017.txt \\
        --encoder ../shared/models/all-MiniLM-L6-v2 --epochs 3 --seed 1 --out runs/compare
    python experiments/compare.py --runs runs/bert-crf-twitter2017-seed1 runs/ita-twitter2017-seed1

Each model trains into ``<out>/<model>`` as a run spec of the experiment API
(graphmner/train/experiment.py), with the flags of ``graphmner train`` (``--help``
lists them); every spec is validated before the first model trains. ``--runs`` only
tabulates run folders that already hold a ``metrics.json``. Columns: dev and
test span F1 of the best dev epoch, test F1 per type, training tweets/s, and the
test F1 of each view of a multi-view model (ITA).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphmner.cli import MODEL_NAMES, Parser, offline_environment, quiet_third_parties, run_guarded
from graphmner.cli.train import add_arguments, spec_from_args
from graphmner.data.labels import ENTITY_TYPES as TYPES


def table(rows: list[dict[str, Any]]) -> str:
    """One line per run: model, dataset, dev F1, test F1, per-type test F1, tweets/s, views."""
    views = sorted({view for m in rows for view in m.get('test_views', {})})
    header = ['model', 'dataset', 'dev F1', 'test F1', *TYPES, 'tweets/s', *(f'test F1 {v}' for v in views)]
    lines = []
    for m in rows:
        per_type = m['test'].get('per_type', {})
        cells = [m['model'], m['dataset'], f"{100 * m['dev']['f1']:.2f}", f"{100 * m['test']['f1']:.2f}",
                 *(f"{100 * per_type[t]['f1']:.2f}" if t in per_type else '-' for t in TYPES),
                 f"{m['tweets_per_second']:.1f}",
                 *(f"{100 * m['test_views'][v]['f1']:.2f}" if v in m.get('test_views', {}) else '-'
                   for v in views)]
        lines.append(cells)
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    render = lambda row: '  '.join(str(cell).rjust(w) if i > 1 else str(cell).ljust(w)
                                   for i, (cell, w) in enumerate(zip(row, widths)))
    return '\n'.join([render(header), *(render(row) for row in lines)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = Parser(prog='compare.py', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--runs', nargs='+', help='tabulate these run folders instead of training')
    p.add_argument('--models', nargs='+', default=['bert-crf', 'umgf', 'ita'], choices=MODEL_NAMES)
    p.add_argument('--out', default='runs/compare', help='parent folder of the runs (one per model)')
    add_arguments(p, exclude=('model', 'out', 'resume'))
    return p.parse_args(argv)


def train(args: argparse.Namespace) -> list[Path]:
    """Trains each model into ``<out>/<model>`` (every spec validated first); their folders."""
    from graphmner.train import experiment

    folders = [Path(args.out) / model for model in args.models]
    specs = [spec_from_args(argparse.Namespace(**{**vars(args), 'model': model, 'out': str(folder),
                                                  'resume': False}))
             for model, folder in zip(args.models, folders)]
    for spec in specs:
        spec.validate()
    for spec in specs:
        print(experiment.run(spec).summary())
    return folders


def main(argv: list[str] | None = None) -> str:
    offline_environment()
    args = parse_args(argv)
    quiet_third_parties(args.verbose)
    if args.runs:
        folders = [Path(r) for r in args.runs]
        missing = [str(f) for f in folders if not (f / 'metrics.json').exists()]
        if missing:
            raise SystemExit(f"No metrics.json in: {', '.join(missing)}")
    else:
        folders = run_guarded('compare.py', lambda: train(args))
    rendered = table([json.loads((f / 'metrics.json').read_text()) for f in folders])
    print(rendered)
    return rendered


if __name__ == '__main__':
    main()
