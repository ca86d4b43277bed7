"""Export tweet graphs for Gephi, yEd, Cytoscape, d3 or a browser, and as PNG drawings.

Examples:
    graphmner export --dataset demo --count 2 --out graphs/gallery
    graphmner export --dataset twitter2017 --split test --data-root ../shared/data \\
        --count 5 --format graphml,html --out /tmp/graphs

The demo runs offline with its weight-free descriptors and OpenCV's Haar cascades
(:data:`graphmner.data.demo.DEMO_OPTIONS`). Each graph ``i`` is written as
``<out>/<dataset>_<split>_<i>_<image_id>.<format>``.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from .common import Parser, UsageError, run_guarded

FORMATS = ('graphml', 'gexf', 'json', 'cyjs', 'html', 'png')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    parser.add_argument('--count', type=int, default=2, help='number of graphs to export (default: 2)')
    parser.add_argument('--start', type=int, default=0, help='index of the first graph (default: 0)')
    parser.add_argument('--format', dest='formats', type=format_list, default=list(FORMATS),
                        help=f'comma-separated subset of {",".join(FORMATS)} (default: all; '
                        'e.g. --format graphml,html)')
    parser.add_argument('--out', default='graphs/gallery', help='output folder (e.g. --out /tmp/graphs)')
    parser.add_argument('--fake-visual', action='store_true',
                        help='give graphs without visual nodes random image features (49 regions, '
                             '16 pyramid cells, 3 objects) to show the layout; for pictures only')


def format_list(text: str) -> list[str]:
    """``'graphml,.HTML'`` -> ``['graphml', 'html']``; an unknown format is an argument error."""
    formats = [f.strip().lstrip('.').lower() for f in text.split(',') if f.strip()]
    bad = sorted(set(formats) - set(FORMATS))
    if bad or not formats:
        raise argparse.ArgumentTypeError(f'unknown format(s) {bad}; valid: {list(FORMATS)}')
    return formats


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that pick a split of a dataset (shared by export and inspect)."""
    parser.add_argument('--dataset', default='demo', metavar='NAME_OR_FOLDER',
                        help='demo, twitter2015, twitter2017 or a dataset folder (default: demo)')
    parser.add_argument('--split', default='train', choices=['train', 'dev', 'test'])
    parser.add_argument('--data-root', default=None, help='folder holding twitter2015/ and twitter2017/ '
                        '(e.g. --data-root ../shared/data)')
    parser.add_argument('--image-root', default=None, help="folder of the tweets' images")
    parser.add_argument('--captions', default=None, help='BLIP-2 caption file (aux caption words)')
    parser.add_argument('--cache-dir', default=None, help='graph/feature cache folder')


def parse_args(argv=None) -> argparse.Namespace:
    parser = Parser(prog='export_graphs.py', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser.parse_args(argv)


def load_split(args: argparse.Namespace):
    """The split ``args`` name, with its errors as :class:`UsageError`."""
    from ..data import split_path
    from ..graph import load_dataset

    try:
        split_path(args.dataset, args.split, args.data_root)
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    options = {'cache_dir': args.cache_dir} if args.cache_dir else {}
    return load_dataset(args.dataset, args.split, data_root=args.data_root, image_root=args.image_root,
                        captions=args.captions, **options)


def run(args: argparse.Namespace) -> list[Path]:
    return run_guarded('graphmner export', lambda: export_graphs(args))


def with_fake_visual(g, seed: int = 0, num_objects: int = 3, dim: int = 8):
    """Rebuilds ``g`` with random visual features (keeps words, labels, aux)."""
    import torch

    from ..data.conll import Tweet
    from ..features.types import ImageFeatures, NodeFeatures
    from ..graph import schema
    from ..graph.builder import build_graph

    gen = torch.Generator().manual_seed(seed)

    def boxes(n):
        xy = torch.rand(n, 2, generator=gen) * 0.6
        return torch.cat([xy, xy + 0.1 + torch.rand(n, 2, generator=gen) * 0.3], 1)

    grid = torch.arange(7) / 7
    cells = torch.stack([grid.repeat(7), grid.repeat_interleave(7)], 1)
    names = ['person', 'dog', 'car', 'bottle', 'chair']
    features = ImageFeatures({
        'image': NodeFeatures(torch.randn(1, dim, generator=gen)),
        'region': NodeFeatures(torch.randn(49, dim, generator=gen),
                               {'box': torch.cat([cells, cells + 1 / 7], 1)}),
        'scale': NodeFeatures(torch.randn(16, dim, generator=gen),
                              {'level': torch.arange(4).repeat_interleave(4), 'box': boxes(16)}),
        'object': NodeFeatures(torch.randn(num_objects, dim, generator=gen),
                               {'box': boxes(num_objects), 'cls': torch.arange(num_objects),
                                'score': 0.3 + 0.7 * torch.rand(num_objects, generator=gen)},
                               [names[i % len(names)] for i in range(num_objects)])})
    source = g[schema.AUX].source.tolist() if schema.AUX in g.node_types else []
    aux = [(w, schema.AUX_SOURCES[s]) for w, s in zip(getattr(g, 'aux_words', []) or [], source)]
    tweet = Tweet(str(g.image_id), list(g.words), list(g.labels))
    return build_graph(tweet, features, aux=aux)


def main(argv=None) -> list[Path]:
    """``experiments/export_graphs.py``: the same command under its historical name."""
    args = parse_args(argv)
    return run_guarded('export_graphs.py', lambda: export_graphs(args))


def export_graphs(args: argparse.Namespace) -> list[Path]:
    formats = args.formats
    if args.count < 1 or args.start < 0:
        raise UsageError(f'--count must be at least 1 and --start at least 0, got {args.count} and '
                         f'{args.start}')
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from ..graph.export import export
    from ..graph.inspect import draw, summary

    dataset = load_split(args)
    if args.start >= len(dataset):
        raise UsageError(f'--start {args.start} is past the end of the {args.split} split, which has '
                         f'{len(dataset)} graphs (--start 0 to {len(dataset) - 1})')
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot write to --out '{out}': {error.strerror}") from None
    written = []
    stop = min(len(dataset), args.start + args.count)
    if stop - args.start < args.count:
        print(f'note: the {args.split} split has {len(dataset)} graphs: --count {args.count} from --start '
              f'{args.start} exports the {stop - args.start} up to its end', file=sys.stderr)
    for i in range(args.start, stop):
        g = dataset[i]
        fake = args.fake_visual and g['region'].num_nodes == 0
        if fake:
            g = with_fake_visual(g, seed=i)
        image_id = re.sub(r'[^A-Za-z0-9_.-]+', '_', str(getattr(g, 'image_id', '') or 'none'))
        name = Path(args.dataset).name if args.dataset not in ('demo', 'twitter2015', 'twitter2017') \
            else args.dataset
        stem = out / f"{name}_{args.split}_{i}_{image_id}{'_fake_visual' if fake else ''}"
        print(summary(g), end='\n\n')
        for fmt in formats:
            path = stem.with_suffix(f'.{fmt}')
            if fmt == 'png':
                ax = draw(g)
                ax.figure.savefig(path, dpi=100)
                plt.close(ax.figure)
            else:
                export(g, path)
            written.append(path)
    graphs = stop - args.start
    print(f"wrote {len(written)} file{'s' * (len(written) != 1)} for {graphs} graph{'s' * (graphs != 1)} "
          f'to {out}')
    return written
