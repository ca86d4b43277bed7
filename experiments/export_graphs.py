"""Export tweet graphs for outside viewers (Gephi, yEd, Cytoscape, d3, a browser)
and as PNG drawings.

    python experiments/export_graphs.py --dataset demo --count 2 --out graphs/gallery
    python experiments/export_graphs.py --dataset twitter2017 --split test \\
        --data-root ../shared/data --count 5 --format graphml,html --out /tmp/graphs

The demo runs offline with its declared random ResNet and YOLO weights
(:data:`graphmner.data.demo.DEMO_OPTIONS`). Each graph ``i`` is written as
``<out>/<dataset>_<split>_<i>_<image_id>.<format>``.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

os.environ.setdefault('YOLO_OFFLINE', 'true')
os.environ.setdefault('HF_HUB_OFFLINE', '1')

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMATS = ('graphml', 'gexf', 'json', 'cyjs', 'html', 'png')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', default='demo', choices=['demo', 'twitter2015', 'twitter2017'])
    parser.add_argument('--split', default='train', choices=['train', 'dev', 'test'])
    parser.add_argument('--data-root', default=None, help='folder holding twitter2015/ and twitter2017/')
    parser.add_argument('--image-root', default=None, help="folder of the tweets' images")
    parser.add_argument('--captions', default=None, help='BLIP-2 caption file (aux caption words)')
    parser.add_argument('--count', type=int, default=2, help='number of graphs to export')
    parser.add_argument('--start', type=int, default=0, help='index of the first graph')
    parser.add_argument('--format', default=','.join(FORMATS),
                        help=f'comma-separated subset of {",".join(FORMATS)}')
    parser.add_argument('--out', default='graphs/gallery', help='output folder')
    parser.add_argument('--cache-dir', default=None, help='graph/feature cache folder')
    parser.add_argument('--fake-visual', action='store_true',
                        help='give graphs without visual nodes random image features (49 regions, '
                             '16 pyramid cells, 3 objects) to show the layout; for pictures only')
    args = parser.parse_args(argv)
    args.formats = [f.strip().lstrip('.').lower() for f in args.format.split(',') if f.strip()]
    bad = sorted(set(args.formats) - set(FORMATS))
    if bad:
        parser.error(f'unknown format(s) {bad}; valid: {list(FORMATS)}')
    return args


def with_fake_visual(g, seed: int = 0, num_objects: int = 3, dim: int = 8):
    """Rebuilds ``g`` with random visual features (keeps words, labels, aux)."""
    import torch

    from graphmner.data.conll import Tweet
    from graphmner.features.types import ImageFeatures
    from graphmner.graph import schema
    from graphmner.graph.builder import build_graph

    gen = torch.Generator().manual_seed(seed)

    def boxes(n):
        xy = torch.rand(n, 2, generator=gen) * 0.6
        return torch.cat([xy, xy + 0.1 + torch.rand(n, 2, generator=gen) * 0.3], 1)

    grid = torch.arange(7) / 7
    cells = torch.stack([grid.repeat(7), grid.repeat_interleave(7)], 1)
    names = ['person', 'dog', 'car', 'bottle', 'chair']
    features = ImageFeatures(
        image=torch.randn(dim, generator=gen), regions=torch.randn(49, dim, generator=gen),
        region_boxes=torch.cat([cells, cells + 1 / 7], 1),
        scales=torch.randn(16, dim, generator=gen), scale_levels=torch.arange(4).repeat_interleave(4),
        scale_boxes=boxes(16), objects=torch.randn(num_objects, dim, generator=gen),
        object_boxes=boxes(num_objects), object_classes=torch.arange(num_objects),
        object_scores=0.3 + 0.7 * torch.rand(num_objects, generator=gen),
        object_names=[names[i % len(names)] for i in range(num_objects)])
    source = g[schema.AUX].source.tolist() if schema.AUX in g.node_types else []
    aux = [(w, schema.AUX_SOURCES[s]) for w, s in zip(getattr(g, 'aux_words', []) or [], source)]
    tweet = Tweet(str(g.image_id), list(g.words), list(g.labels))
    return build_graph(tweet, features, aux=aux)


def main(argv=None) -> list[Path]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from graphmner.graph import load_dataset
    from graphmner.graph.export import export
    from graphmner.graph.inspect import draw, summary

    options = {}  # the demo's own defaults declare its random vision weights
    if args.cache_dir:
        options['cache_dir'] = args.cache_dir
    dataset = load_dataset(args.dataset, args.split, data_root=args.data_root,
                           image_root=args.image_root, captions=args.captions, **options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    stop = min(len(dataset), args.start + args.count)
    for i in range(args.start, stop):
        g = dataset[i]
        fake = args.fake_visual and g['region'].num_nodes == 0
        if fake:
            g = with_fake_visual(g, seed=i)
        image_id = re.sub(r'[^A-Za-z0-9_.-]+', '_', str(getattr(g, 'image_id', '') or 'none'))
        stem = out / f"{args.dataset}_{args.split}_{i}_{image_id}{'_fake_visual' if fake else ''}"
        print(summary(g), end='\n\n')
        for fmt in args.formats:
            path = stem.with_suffix(f'.{fmt}')
            if fmt == 'png':
                ax = draw(g)
                ax.figure.savefig(path, dpi=100)
                plt.close(ax.figure)
            else:
                export(g, path)
            written.append(path)
    print(f'wrote {len(written)} files for {stop - args.start} graphs to {out}')
    return written


if __name__ == '__main__':
    main()
