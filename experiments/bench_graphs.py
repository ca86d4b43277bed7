"""Graph building and feature extraction speed, each against its bare floor.

    python experiments/bench_graphs.py                     # demo photos, random weights
    python experiments/bench_graphs.py --graphs 5000 --conf 0.25 1e-5
    python experiments/bench_graphs.py --corpus /tmp/bench-corpus --tweets 64 --images 16

Demo mode (the default): the demo's tweets and photos with the demo's graph
options (descriptors, OpenCV cascades).

1. Graphs per second, on one core: the whole :class:`GraphBuilder` call on a
   first pass (an empty feature cache: the backends load and every photo is
   extracted), the same call with a warm feature cache (cache reads, spaCy
   grounding, captions included), and ``build_graph`` alone over tweets whose
   features, aux words and grounding edges are already in memory (what a
   cached rebuild does per tweet).
2. Feature extraction, images per second: :class:`FeatureExtractor` (cache
   off) with a random ResNet-50 and a random YOLO against the bare network
   passes on the same photos: decode, preprocess, one ResNet forward over the
   batch, one YOLO ``predict``, and one ResNet forward over the detected crops
   (the object features need it on both sides), once per ``--conf``.

Corpus mode (``--corpus DIR``, the corpus of ``experiments/bench_corpus.py``:
a photo for every Twitter-2017 training tweet and every visual node in its
graph, :data:`BENCH_OPTIONS`: a random ResNet-152 with its pyramid, the cascade
detector, RapidOCR, the real photos' BLIP-2 captions).

1. Graphs per second as above, on the first ``--tweets`` corpus tweets; the
   first pass includes the ResNet-152's random initialisation and the OCR.
2. Extraction, images per second, on the first ``--images`` corpus photos, each
   backend against its bare pass:

   * vision backends (``resnet152``, ``resnet50``, ``descriptors``):
     :class:`FeatureExtractor` without a detector (cache off: read, hash,
     decode, features) against decode and the bare pass: the ResNet forward
     over the batch, or, for the weight-free descriptors, scikit-image's
     per-pixel colour, gradient and LBP transforms at every pyramid level
     (the pooling into cells is ours);
   * detectors (``cascade``, ``cascade`` with ``hog_people``, random YOLO at
     each ``--conf``): ``detect`` against the library's own calls (every
     cascade's ``detectMultiScale3``, the HOG people detector's
     ``detectMultiScale``, one YOLO ``predict``) on the same decoded photos:
     the ratio prices our scoring, suppression and sorting;
   * OCR: :class:`TextReader` against the RapidOCR engine's call on the same
     decoded photos (the ratio prices the cutting of lines into words).

The ratio is bare seconds / our seconds; 1.0 means no overhead. Rounds
alternate between contenders so machine load hits all alike.
"""
from __future__ import annotations

import argparse
import copy
import functools
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphmner.cli import Parser, fail, quiet_third_parties  # noqa: E402

quiet_third_parties()  # before torch_geometric's import warns about torch.jit

from experiments.bench_corpus import corpus_builder  # noqa: E402
from graphmner.data import read_conll  # noqa: E402
from graphmner.data.demo import DEMO_CAPTIONS, DEMO_OPTIONS, demo_image_root, demo_split_path  # noqa: E402
from graphmner.data.paths import image_path  # noqa: E402
from graphmner.features.backends import detector_backend, vision_backend  # noqa: E402
from graphmner.features.cascade import CascadeConfig  # noqa: E402
from graphmner.features.descriptors import DescriptorConfig  # noqa: E402
from graphmner.features.detector import DetectorConfig, ObjectDetector  # noqa: E402
from graphmner.features.extract import FeatureExtractor  # noqa: E402
from graphmner.features.ocr import OcrConfig, TextReader  # noqa: E402
from graphmner.features.vision import VisionBackbone, VisionConfig  # noqa: E402
from graphmner.graph import GraphOptions, schema  # noqa: E402
from graphmner.graph.builder import GraphBuilder, build_graph, graph_features  # noqa: E402
from graphmner.graph.inspect import aux_sources  # noqa: E402

#: The vision backends the corpus mode times (all with random or no weights).
VISION_ARCHS = ('resnet152', 'resnet50', 'descriptors')


def seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_rounds(contenders: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """The median seconds of each contender over ``repeat`` rounds, the contenders taking turns
    within each round."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, run in contenders.items():
            times[name].append(seconds(run))
    return {name: statistics.median(values) for name, values in times.items()}


def compare(label: str, count: int, ours: Callable[[], Any], bare: Callable[[], Any], repeat: int,
            detail: Callable[[Any], str] = lambda _: '') -> None:
    """Prints the images per second of ``ours`` and ``bare`` over the same ``count`` photos and
    their ratio, after one untimed call of each (networks load, predictors set up); ``detail``
    describes ours' output (e.g. the objects found)."""
    found = detail(ours())
    bare()
    median = timed_rounds({'ours': ours, 'bare': bare}, repeat)
    o, b = median['ours'], median['bare']
    print(f'{label}: {count} images{found} | ours {count / o:.2f} img/s, bare {count / b:.2f} img/s | '
          f'ratio {b / o:.2f}x', flush=True)


def objects_found(features: list) -> str:
    return f", {sum(len(f['object']) for f in features)} objects"


def objects_detected(detections: list) -> str:
    return f', {sum(map(len, detections))} objects'


def decode(paths: list[Path]) -> list[Image.Image]:
    return [Image.open(p).convert('RGB') for p in paths]


# -- the bare passes: what a person would write by hand -----------------------------------------
def bare_resnet(images: list[Image.Image], backbone: VisionBackbone) -> None:
    with torch.no_grad():
        backbone(backbone.preprocess(images)[0])


def bare_yolo(images: list[Image.Image], detector: ObjectDetector) -> list:
    cfg = detector.config
    threads = torch.get_num_threads()
    try:
        return detector.model.predict(images, device=cfg.device, conf=cfg.conf, iou=cfg.iou,
                                      imgsz=cfg.imgsz, max_det=cfg.top_k, verbose=False)
    finally:
        # ultralytics sets torch's thread count to cpu_count - 1, which ObjectDetector.detect undoes:
        # undone here too, so that every later contender runs on the threads the run started with.
        torch.set_num_threads(threads)


def bare_passes(paths: list[Path], backbone: VisionBackbone, detector: ObjectDetector) -> None:
    """Decode, the ResNet forward, YOLO, and the ResNet forward over the detected crops."""
    images = decode(paths)
    bare_resnet(images, backbone)
    crops = [image.crop(tuple(box)) for image, r in zip(images, bare_yolo(images, detector))
             for box in r.boxes.xyxy.round().int().tolist()]
    if crops:
        bare_resnet(crops, backbone)


def bare_vision(paths: list[Path], backend) -> None:
    """Decode and the bare pass of a vision backend of :data:`VISION_ARCHS`."""
    images = decode(paths)
    if backend.name == 'descriptors':
        bare_descriptors(images, backend.config)
    else:
        bare_resnet(images, backend.network)


def bare_descriptors(images: list[Image.Image], config: DescriptorConfig) -> None:
    """scikit-image's per-pixel transforms of every pyramid level (the descriptors' maps, unpooled)."""
    from skimage import color, feature

    for image in images:
        for level in range(config.levels):
            size = config.image_size >> level
            pixels = np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.float64) / 255.0
            gray = color.rgb2gray(pixels)
            color.rgb2hsv(pixels)
            color.rgb2lab(pixels)
            np.gradient(gray)
            feature.local_binary_pattern(np.round(gray * 255).astype(np.uint8), config.lbp_points,
                                         config.lbp_radius, method='uniform')


def bare_cascades(config: CascadeConfig) -> Callable[[list[Image.Image]], None]:
    """Every cascade's (and the HOG people detector's) multi-scale detection on each photo, with the
    detector's settings; the corpus photos are under ``max_side``, so neither side downscales."""
    import cv2

    classifiers = [cv2.CascadeClassifier(str(config.cascade_path(name))) for name in config.cascades]
    hog = None
    if config.hog_people:
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(images: list[Image.Image]) -> None:
        for image in images:
            rgb = np.asarray(image)
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            side = max(20, int(config.min_size * min(gray.shape)))
            for classifier in classifiers:
                classifier.detectMultiScale3(gray, scaleFactor=config.scale_factor,
                                             minNeighbors=config.min_neighbors, minSize=(side, side),
                                             outputRejectLevels=True)
            if hog is not None:
                hog.detectMultiScale(rgb, winStride=(8, 8), padding=(8, 8), scale=1.05)
    return detect


def bare_ocr(config: OcrConfig) -> Callable[[list[Image.Image]], None]:
    """The RapidOCR engine's call on each photo, built with the reader's models and threads."""
    from rapidocr_onnxruntime import RapidOCR

    paths = config.model_paths()
    engine = RapidOCR(det_model_path=str(paths['det']), cls_model_path=str(paths['cls']),
                      rec_model_path=str(paths['rec']), intra_op_num_threads=1, inter_op_num_threads=1)

    def read(images: list[Image.Image]) -> None:
        for image in images:
            engine(np.ascontiguousarray(np.asarray(image)[:, :, ::-1]), box_thresh=config.box_thresh,
                   text_score=0.0, return_word_box=True)
    return read


# -- 1. graph building ----------------------------------------------------------------------------
def first_pass(builder: GraphBuilder, tweets: list) -> None:
    """``builder``'s call with an empty feature cache of its own."""
    with tempfile.TemporaryDirectory(prefix='bench-graphs-') as cache:
        fresh = copy.copy(builder)
        fresh.feature_cache = cache
        fresh(tweets)


def bench_building(args, tweets: list, builder: GraphBuilder) -> None:
    """Times ``builder`` (whose feature cache is empty) cold and warm, and ``build_graph`` alone."""
    torch.set_num_threads(1)
    graphs, _ = builder(tweets)  # fills the feature cache
    widths, backend = builder.widths(), builder.visual_backend()
    inputs = [(tweet, graph_features(g), list(zip(g.aux_words, aux_sources(g))),
               g[schema.GROUNDS].edge_index) for tweet, g in zip(tweets, graphs)]
    pairs = [inputs[i % len(inputs)] for i in range(args.graphs)]
    median = timed_rounds({
        'first pass': lambda: first_pass(builder, tweets),
        'cached': lambda: builder(tweets),
        'build_graph': lambda: [build_graph(t, f, aux=aux, grounds=edges, widths=widths,
                                            visual_backend=backend) for t, f, aux, edges in pairs]},
        args.repeat)
    torch.set_num_threads(args.threads)
    rows = [('GraphBuilder, first pass (cold feature cache)', len(tweets), 'first pass',
             f'{len(tweets)} tweets, extraction included'),
            ('GraphBuilder with a warm feature cache', len(tweets), 'cached',
             f"{len(tweets)} tweets, reads + spaCy + captions{' + OCR' if builder.options.ocr else ''}"),
            ('build_graph from in-memory features', len(pairs), 'build_graph', f'{len(pairs)} graphs')]
    for i, (label, count, key, what) in enumerate(rows):
        print(f"{'graph building, 1 thread:' if i == 0 else '':<26}{label:<47}{count / median[key]:9.1f} "
              f'graphs/s ({what})', flush=True)


# -- 2. extraction ----------------------------------------------------------------------------------
def yolo_detector(args, conf: float) -> ObjectDetector:
    detector = ObjectDetector(DetectorConfig(weights=args.detector_weights, conf=conf))
    _ = detector.model  # loads it here, outside the timed rounds
    return detector


def bench_extraction(args, paths: list[Path]) -> None:
    """The demo's extraction: ResNet-50 and YOLO through FeatureExtractor against the bare passes."""
    resnet = vision_backend(VisionConfig(weights=args.vision_weights))
    for conf in args.conf:
        detector = yolo_detector(args, conf)
        extractor = FeatureExtractor(resnet, detector, cache_dir=None, batch_size=len(paths), progress=False)
        compare(f'extraction, conf={conf:g}', len(paths), functools.partial(extractor.extract, paths),
                functools.partial(bare_passes, paths, resnet.network, detector), args.repeat, objects_found)


def bench_backends(args, paths: list[Path]) -> None:
    """Each vision backend, each detector and the OCR against its bare pass, on the corpus photos."""
    n = len(paths)
    for arch in VISION_ARCHS:
        vision = vision_backend(VisionConfig(arch=arch, weights=None))
        extractor = FeatureExtractor(vision, DetectorConfig(weights=None), cache_dir=None, batch_size=n,
                                     progress=False)
        compare(f'vision {arch}', n, functools.partial(extractor.extract, paths),
                functools.partial(bare_vision, paths, vision), args.repeat)
    images = decode(paths)
    for hog_people in (False, True):
        cascade = detector_backend(DetectorConfig(arch='cascade', weights='opencv', hog_people=hog_people))
        floor = bare_cascades(cascade.config)
        compare(f"detector cascade{' + hog_people' if hog_people else ''}", n,
                functools.partial(cascade.detect, images), functools.partial(floor, images), args.repeat,
                objects_detected)
    for conf in args.conf:
        yolo = yolo_detector(args, conf)
        compare(f'detector YOLO {Path(args.detector_weights).name}, conf={conf:g}', n,
                functools.partial(yolo.detect, images), functools.partial(bare_yolo, images, yolo),
                args.repeat, objects_detected)
    config = OcrConfig()
    reader, floor = TextReader(config), bare_ocr(config)
    compare('OCR RapidOCR', n, lambda: reader.read(images), lambda: floor(images), args.repeat,
            lambda found: f', {sum(map(len, found))} words')


def main() -> None:
    p = Parser(prog='bench_graphs.py', description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--corpus', type=Path, help="the benchmark corpus's folder (experiments/bench_corpus.py "
                                               '--out DIR); default: the demo')
    p.add_argument('--tweets', type=int, default=64, help='corpus tweets of the graph-building timing')
    p.add_argument('--graphs', type=int, default=3000, help='graphs built per build_graph timing round')
    p.add_argument('--images', type=int, default=8, help='photos for the extraction timing')
    p.add_argument('--vision-weights', default=None,
                   help='demo mode: default random (no pretrained weights offline)')
    p.add_argument('--detector-weights', default='yolov8n.yaml')
    p.add_argument('--conf', type=float, nargs='+', default=[0.25, 1e-5],
                   help='YOLO thresholds (random YOLO weights find objects only below ~1e-4)')
    p.add_argument('--repeat', type=int, default=3)
    args = p.parse_args()
    args.threads = torch.get_num_threads()
    for flag in ('tweets', 'graphs', 'images', 'repeat'):
        if getattr(args, flag) < 1:
            fail(p.prog, f'--{flag} must be at least 1, got {getattr(args, flag)}')
    if args.corpus is not None and not (args.corpus / 'corpus.json').is_file():
        fail(p.prog, f"--corpus: '{args.corpus}' holds no benchmark corpus (no corpus.json); "
                     f'write one with: python experiments/bench_corpus.py --out {args.corpus}')

    print('Random vision and detector weights unless given: timings only, the features mean nothing.\n')
    # Announced once above; each backend would warn again as it loads.
    warnings.filterwarnings('ignore', message='.*RANDOM weights', category=UserWarning)
    with tempfile.TemporaryDirectory(prefix='bench-graphs-') as cache:
        if args.corpus is None:
            tweets = read_conll(demo_split_path('train'))
            image_root = demo_image_root()
            builder = GraphBuilder(GraphOptions(**DEMO_OPTIONS), image_root=image_root,
                                   captions=DEMO_CAPTIONS, feature_cache=cache, progress=False)
            bench_building(args, tweets, builder)
            paths = sorted({image_path(image_root, t.image_id) for t in tweets})[:args.images]
            bench_extraction(args, paths)
            return
        tweets, builder = corpus_builder(args.corpus, cache_dir=cache, progress=False)
        bench_building(args, tweets[:args.tweets], builder)
    paths = [image_path(builder.image_root, t.image_id) for t in tweets[:args.images]]
    bench_backends(args, paths)


if __name__ == '__main__':
    main()
