"""Graph building and feature extraction speed, each against its bare floor.

    python experiments/bench_graphs.py                     # demo photos, random weights
    python experiments/bench_graphs.py --graphs 5000 --conf 0.25 1e-5

1. Graphs per second from cached features, on one core: ``build_graph`` over
   tweets whose image features are already in memory (what a cached rebuild
   does per tweet), and the whole :class:`GraphBuilder` call with a warm feature
   cache (cache reads, spaCy grounding, captions included).
2. Feature extraction, images per second: :class:`FeatureExtractor` (cache off)
   against the bare network passes on the same photos: decode, preprocess, one
   ResNet forward over the batch, one YOLO ``predict``, and one ResNet forward
   over the detected crops (the object features need it on both sides). The
   ratio is bare seconds / our seconds; 1.0 means no overhead.
Rounds alternate between contenders so machine load hits both alike.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphmner.cli import quiet_third_parties  # noqa: E402

quiet_third_parties()  # before torch_geometric's import warns about torch.jit

from graphmner.data import read_conll  # noqa: E402
from graphmner.data.demo import DEMO_CAPTIONS, DEMO_OPTIONS, demo_image_root, demo_split_path  # noqa: E402
from graphmner.data.paths import image_path  # noqa: E402
from graphmner.features.backends import vision_backend  # noqa: E402
from graphmner.features.detector import DetectorConfig, ObjectDetector  # noqa: E402
from graphmner.features.extract import FeatureExtractor  # noqa: E402
from graphmner.features.vision import VisionBackbone, VisionConfig  # noqa: E402
from graphmner.graph import GraphOptions  # noqa: E402
from graphmner.graph.builder import GraphBuilder, build_graph  # noqa: E402


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bare_passes(paths, backbone: VisionBackbone, detector: ObjectDetector) -> None:
    images = [Image.open(p).convert('RGB') for p in paths]
    with torch.no_grad():
        backbone(backbone.preprocess(images)[0])
    cfg = detector.config
    results = detector.model.predict(images, device=cfg.device, conf=cfg.conf, iou=cfg.iou,
                                     imgsz=cfg.imgsz, max_det=cfg.top_k, verbose=False)
    crops = [image.crop(tuple(box)) for image, r in zip(images, results)
             for box in r.boxes.xyxy.round().int().tolist()]
    if crops:
        with torch.no_grad():
            backbone(backbone.preprocess(crops)[0])


def bench_building(args, tweets, image_root) -> None:
    options = GraphOptions(**DEMO_OPTIONS)
    with tempfile.TemporaryDirectory() as cache:
        builder = GraphBuilder(options, image_root=image_root, captions=DEMO_CAPTIONS, feature_cache=cache)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)  # random weights, announced once above
            builder(tweets)  # fills the feature cache
        extractor = FeatureExtractor(builder.vision, builder.detector, cache_dir=cache, progress=False)
        features = extractor.extract([image_path(image_root, t.image_id) for t in tweets])
        assert extractor.report.computed == 0, 'the feature cache should have answered every image'
        pairs = [(tweets[i % len(tweets)], features[i % len(tweets)]) for i in range(args.graphs)]
        torch.set_num_threads(1)
        rates_build, rates_builder = [], []
        for _ in range(args.repeat):
            rates_build.append(len(pairs) / seconds(lambda: [build_graph(t, f) for t, f in pairs]))
            rates_builder.append(len(tweets) / seconds(lambda: builder(tweets)))
        torch.set_num_threads(args.threads)
    print(f'graph building, 1 thread: build_graph from in-memory features '
          f'{statistics.median(rates_build):8.0f} graphs/s ({len(pairs)} graphs)')
    print(f'                          GraphBuilder with a warm feature cache '
          f'{statistics.median(rates_builder):8.0f} graphs/s '
          f'({len(tweets)} tweets, reads + spaCy + captions)')


def bench_extraction(args, paths) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        resnet = vision_backend(VisionConfig(weights=args.vision_weights))
        backbone = resnet.network
    for conf in args.conf:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)
            detector = ObjectDetector(DetectorConfig(weights=args.detector_weights, conf=conf))
            _ = detector.model  # loads it here, where its random-weights warning is silenced
        extractor = FeatureExtractor(resnet, detector, cache_dir=None, batch_size=len(paths),
                                     progress=False)
        ours_fn = functools.partial(extractor.extract, paths)
        bare_fn = functools.partial(bare_passes, paths, backbone, detector)
        ours_fn(), bare_fn()  # warm-up: predictor set-up, allocations
        ours, bare = [], []
        for _ in range(args.repeat):
            ours.append(seconds(ours_fn))
            bare.append(seconds(bare_fn))
        objects = sum(len(f['object']) for f in ours_fn())
        o, b = statistics.median(ours), statistics.median(bare)
        print(f'extraction, conf={conf:g}: {len(paths)} images, {objects} objects | '
              f'ours {len(paths) / o:.2f} img/s, bare passes {len(paths) / b:.2f} img/s | ratio {b / o:.2f}x')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--graphs', type=int, default=3000, help='graphs built per timing round')
    p.add_argument('--images', type=int, default=8, help='demo photos for the extraction timing')
    p.add_argument('--vision-weights', default=None, help='default: random (no pretrained weights offline)')
    p.add_argument('--detector-weights', default='yolov8n.yaml')
    p.add_argument('--conf', type=float, nargs='+', default=[0.25, 1e-5],
                   help='detector thresholds (random YOLO weights find objects only below ~1e-4)')
    p.add_argument('--repeat', type=int, default=3)
    args = p.parse_args()
    args.threads = torch.get_num_threads()

    tweets = read_conll(demo_split_path('train'))
    image_root = demo_image_root()
    print('Random vision and detector weights unless given: timings only, the features mean nothing.\n')
    bench_building(args, tweets, image_root)
    paths = sorted({image_path(image_root, t.image_id) for t in tweets})[:args.images]
    bench_extraction(args, paths)


if __name__ == '__main__':
    main()
