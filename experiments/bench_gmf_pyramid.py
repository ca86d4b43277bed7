"""GMF's two pyramid orders side by side: what CSA at each stage's own resolution costs.

    python experiments/bench_gmf_pyramid.py --arch descriptors
    python experiments/bench_gmf_pyramid.py --arch resnet50 --weights imagenet --device cuda

``pyramid='pooled'`` (the default) runs CSA on every stage pooled to
``scale_grid x scale_grid`` (7, the Twitter configs') at graph building;
``pyramid='native'`` (the paper's order) caches each stage at its own resolution
(``scale_grid=0``: 56 / 28 / 14 / 7 cells a side at 224 px) and runs CSA there,
pooling afterwards. On --photos of scikit-image's sample photos (in its wheel),
for each order:

1. extraction: seconds per photo of the vision backend's features, no cache
   (the detector is off: both orders crop and encode objects alike);
2. cache: bytes per photo of the feature cache's entry (float16, as stored), and
   of the ``scale`` nodes held in memory by a built graph (float32);
3. training step: seconds of one GMF forward + backward over --batch graphs
   (tweets of the demo, each with one of the photos), in training mode, for
   the whole model and for the visual part alone (standardisers, CSA, pooling,
   1x1 maps: :meth:`GMF.pyramid`).

Rounds alternate between the two orders so that load drifts on a shared
machine hit both alike; medians are printed. The vision weights do not change
the cost: ``--weights none`` (random) times a ResNet where none is at hand.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphmner.cli import quiet_third_parties  # noqa: E402

quiet_third_parties()  # before torch_geometric's import warns about torch.jit

from torch_geometric.data import Batch  # noqa: E402

from graphmner import models  # noqa: E402
from graphmner.data import read_conll  # noqa: E402
from graphmner.data.demo import demo_split_path  # noqa: E402
from graphmner.features.backends import vision_backend  # noqa: E402
from graphmner.features.detector import DetectorConfig  # noqa: E402
from graphmner.features.extract import FeatureExtractor  # noqa: E402
from graphmner.features.vision import VisionConfig  # noqa: E402
from graphmner.graph.builder import build_graph  # noqa: E402
from graphmner.models.gmf import GMFConfig  # noqa: E402

PHOTOS = ('astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'motorcycle_left.png', 'camera.png')
ORDERS = {'pooled': 7, 'native': 0}  # pyramid -> the scale_grid its graphs are built with


def photo_paths(count: int) -> list[Path]:
    import skimage.data

    root = Path(skimage.data.__file__).parent
    return [root / name for name in PHOTOS[:count]]


def extraction(vision: VisionConfig, paths: list[Path]) -> tuple[float, list]:
    extractor = FeatureExtractor(vision, DetectorConfig(weights=None), progress=False)
    start = time.perf_counter()
    features = extractor.extract(paths)
    return (time.perf_counter() - start) / len(paths), features


def cache_bytes(vision: VisionConfig, paths: list[Path]) -> float:
    with tempfile.TemporaryDirectory() as cache:
        FeatureExtractor(vision, DetectorConfig(weights=None), cache_dir=cache, progress=False).extract(paths)
        entries = [p for p in Path(cache).rglob('*.pt')]
        return sum(p.stat().st_size for p in entries) / len(entries)


def step(model, batch: Batch) -> tuple[float, float]:
    """Seconds of a training forward + backward: the whole loss, and the pyramid alone."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    loss, _ = model.loss(batch)
    loss.backward()
    whole = time.perf_counter() - start
    start = time.perf_counter()
    levels, _ = model.pyramid(batch)
    levels.sum().backward()
    return whole, time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='descriptors', help="vision backend (default: descriptors)")
    parser.add_argument('--weights', default='none', help="'imagenet', a state dict, or 'none' (random)")
    parser.add_argument('--encoder', default=str(ROOT.parent / 'shared' / 'models' / 'all-MiniLM-L6-v2'))
    parser.add_argument('--photos', type=int, default=len(PHOTOS))
    parser.add_argument('--batch', type=int, default=8, help='graphs per training step (default: 8)')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    if not 1 <= args.photos <= len(PHOTOS):
        parser.error(f'--photos must be between 1 and {len(PHOTOS)}, got {args.photos}')
    weights = None if args.weights == 'none' else args.weights
    paths = photo_paths(args.photos)
    tweets = read_conll(demo_split_path('train'))[:args.batch]
    torch.manual_seed(0)
    visions, built = {}, {}
    for order, grid in ORDERS.items():
        visions[order] = VisionConfig(arch=args.arch, weights=weights, scale_grid=grid, device=args.device)
        widths = vision_backend(visions[order]).widths
        config = GMFConfig(encoder=args.encoder, pyramid=order).fit_visual_widths(widths)
        kept = ('encoder', 'pyramid', 'visual_dim', 'scale_dims')
        built[order] = models.build('gmf', **{k: getattr(config, k) for k in kept}).to(args.device)
    timings = {order: {'extract': [], 'step': [], 'pyramid': []} for order in ORDERS}
    graphs = {}
    for _ in range(args.rounds):
        for order in ORDERS:
            seconds, features = extraction(visions[order], paths)
            timings[order]['extract'].append(seconds)
            if order not in graphs:
                graphs[order] = [build_graph(t, features[i % len(features)]) for i, t in enumerate(tweets)]
                built[order].fit_feature_statistics(graphs[order])
                built[order].train()
            batch = Batch.from_data_list([built[order].graph_transform()(g) for g in graphs[order]])
            whole, pyramid = step(built[order], batch.to(args.device))
            timings[order]['step'].append(whole)
            timings[order]['pyramid'].append(pyramid)
    print(f'{args.arch} ({args.weights} weights), {len(paths)} photos, batches of {args.batch}, '
          f'{args.rounds} rounds, device {args.device}; medians')
    print(f"{'pyramid':8} {'extract s/photo':>16} {'cache KB/photo':>15} {'scale nodes MB/graph':>21} "
          f"{'step s':>8} {'visual part s':>14}")
    for order in ORDERS:
        t = {k: statistics.median(v) for k, v in timings[order].items()}
        memory = graphs[order][0]['scale'].x.numel() * 4 / 2**20
        print(f'{order:8} {t["extract"]:16.3f} {cache_bytes(visions[order], paths) / 1024:15.0f} '
              f'{memory:21.2f} {t["step"]:8.3f} {t["pyramid"]:14.3f}')


if __name__ == '__main__':
    main()
