r"""Overhead of :class:`FeatureExtractor` over the bare networks.

Times ``FeatureExtractor.extract`` (no cache) against the minimum any pipeline
must do on the same photos: decode, ``Resize -> CenterCrop -> Normalize``, one
ResNet forward over the batch and one YOLO ``predict`` over the batch. Both
sides use the same, already built networks, are warmed up once, and are timed
alternately; the medians are reported. ``ratio = bare / ours`` (1.0 means no
overhead). With ``--conf`` low enough to yield detections, ``ours`` also
encodes the object crops, which the bare side does not do.

Default photos: four of scikit-image's bundled sample photos. Without
``--vision-weights``/``--detector-weights`` the networks have random weights:
fine for timing, meaningless as features.

Example:
    python experiments/bench_features.py --repeat 5 --conf 0.25 1e-4
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from functools import partial
from pathlib import Path

import torch
from PIL import Image

from graphmner.features.detector import DetectorConfig, ObjectDetector
from graphmner.features.extract import FeatureExtractor
from graphmner.features.vision import VisionBackbone, VisionConfig

DEFAULT_PHOTOS = ('astronaut.png', 'coffee.png', 'chelsea.png', 'rocket.jpg')


def skimage_photos() -> list[Path]:
    import skimage
    root = Path(skimage.__file__).parent / 'data'
    return [root / name for name in DEFAULT_PHOTOS]


def bare(paths, backbone: VisionBackbone, detector: ObjectDetector) -> None:
    images = [Image.open(p).convert('RGB') for p in paths]
    with torch.no_grad():
        pixels, _ = backbone.preprocess(images)
        backbone(pixels)
    cfg = detector.config
    detector.model.predict(images, device=cfg.device, conf=cfg.conf,
                           iou=cfg.iou, imgsz=cfg.imgsz, max_det=cfg.top_k,
                           verbose=False)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', nargs='*', type=Path,
                        help='photos to time (default: 4 skimage photos)')
    parser.add_argument('--vision-weights', default=None)
    parser.add_argument('--detector-weights', default='yolov8n.yaml')
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--imgsz', type=int, default=640)
    parser.add_argument('--conf', type=float, nargs='+', default=[0.25])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--out', type=Path, help='write the results as JSON')
    args = parser.parse_args()

    paths = args.images or skimage_photos()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # random weights
        backbone = VisionBackbone(VisionConfig(
            weights=args.vision_weights, image_size=args.image_size,
            device=args.device))
    results = []
    for conf in args.conf:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)
            detector = ObjectDetector(DetectorConfig(
                weights=args.detector_weights, conf=conf, imgsz=args.imgsz,
                device=args.device))
        extractor = FeatureExtractor(backbone, detector, cache_dir=None,
                                     batch_size=len(paths), progress=False)
        ours_fn = partial(extractor.extract, paths)
        bare_fn = partial(bare, paths, backbone, detector)
        ours_fn(), bare_fn()  # warm-up: predictor setup, allocations
        ours, plain = [], []
        for _ in range(args.repeat):  # alternate, so load changes hit both
            ours.append(seconds(ours_fn))
            plain.append(seconds(bare_fn))
        objects = sum(f.objects.size(0) for f in ours_fn())
        row = {
            'conf': conf, 'images': len(paths), 'objects': objects,
            'ours_s': statistics.median(ours),
            'bare_s': statistics.median(plain),
            'steps_s': dict(extractor.report.seconds),
            'threads': torch.get_num_threads(), 'device': args.device,
        }
        row['ratio'] = row['bare_s'] / row['ours_s']
        results.append(row)
        print(f"conf={conf:g}: {len(paths)} images, {objects} objects | "
              f"ours {row['ours_s']:.3f}s  bare {row['bare_s']:.3f}s  "
              f"ratio {row['ratio']:.2f}x | steps of the last call: " +
              ', '.join(f'{k} {v:.3f}s' for k, v in row['steps_s'].items()))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
