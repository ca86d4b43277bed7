"""Print the summary of one tweet's graph (and draw it).

Examples:
    graphmner inspect --dataset demo --split train --index 0
    graphmner inspect --dataset twitter2017 --split test --data-root ../shared/data --index 5 --draw g.png
"""
from __future__ import annotations

import argparse

from .common import UsageError, run_guarded
from .export import add_dataset_arguments, load_split


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    parser.add_argument('--index', type=int, default=0, help='which tweet of the split (default: 0)')
    parser.add_argument('--draw', metavar='PNG',
                        help='also draw the graph to this PNG file (e.g. --draw g.png)')


def run(args: argparse.Namespace) -> str:
    return run_guarded('graphmner inspect', lambda: inspect(args))


def inspect(args: argparse.Namespace) -> str:
    from ..graph.inspect import draw, summary

    dataset = load_split(args)
    if not 0 <= args.index < len(dataset):
        raise UsageError(f'--index must be in [0, {len(dataset) - 1}] for {args.dataset}/{args.split}, '
                         f'got {args.index}')
    g = dataset[args.index]
    text = summary(g)
    print(text)
    if args.draw:
        import matplotlib
        matplotlib.use('Agg')
        ax = draw(g)
        ax.figure.savefig(args.draw, dpi=100)
        print(f'drawn to {args.draw}')
    return text
