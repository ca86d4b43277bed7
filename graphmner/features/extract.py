r"""Image features for a whole dataset: load, cache, backbone, detector.

:class:`FeatureExtractor` turns a list of image paths (one per tweet, with
:obj:`None` for tweets without an image) into
:class:`~graphmner.features.types.ImageFeatures`, computing only what the
on-disk cache does not hold, in batches. Unusable images give :obj:`None` and
are counted by kind in :attr:`FeatureExtractor.report`; they never stop a run.

Example:
    >>> extractor = FeatureExtractor(
    ...     VisionConfig(weights='resnet50.pth'),
    ...     DetectorConfig(weights='yolov8n.pt'), cache_dir='graphs/cache')
    >>> features = extractor.extract([Path('img/1.jpg'), None])
    >>> print(extractor.report.summary())
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from PIL import Image
from tqdm.auto import tqdm

from graphmner.data.images import DEFAULT_MAX_PIXELS, ImageLoad, decode_image, read_bytes
from graphmner.features.backends import (
    DetectorBackend,
    VisionBackend,
    describe_backends,
    detector_backend,
    vision_backend,
)
from graphmner.features.cache import FeatureCache, bytes_sha256
from graphmner.features.detector import DetectorConfig
from graphmner.features.types import VISUAL_NODES, Detections, ImageFeatures
from graphmner.features.vision import VisionConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageProblem:
    """Why one image gave no features."""

    path: str | None
    problem: str  # one of graphmner.data.images.PROBLEMS
    detail: str


@dataclass
class ExtractionReport:
    """What one :meth:`FeatureExtractor.extract` call did.

    Attributes:
        total: Paths given (``None`` included).
        cached: Paths whose features came from the cache.
        computed: Paths whose features were computed (and cached); a file
            listed twice is computed once and counted twice.
        problems: One entry per path that gave no features, so
            ``total == cached + computed + len(problems)``.
        recomputed: Cache entries found unreadable, stale or malformed,
            never used, and recomputed (counted in ``computed`` too).
        seconds: Wall time per step (``read``, ``decode``, ``backbone``,
            ``detector``, ``crops``, ``cache``).
    """

    total: int = 0
    cached: int = 0
    computed: int = 0
    problems: list[ImageProblem] = field(default_factory=list)
    recomputed: int = 0
    seconds: Counter = field(default_factory=Counter)

    @property
    def unusable(self) -> int:
        return len(self.problems)

    @property
    def counts(self) -> Counter:
        """Problem kind -> number of images."""
        return Counter(p.problem for p in self.problems)

    def summary(self) -> str:
        text = (f'{self.total} images: {self.cached} cached, '
                f'{self.computed} computed, {self.unusable} missing or '
                f'unusable')
        if self.problems:
            kinds = ', '.join(f'{n} {kind}'
                              for kind, n in self.counts.most_common())
            text += f' ({kinds})'
        if self.recomputed:
            text += (f'; {self.recomputed} corrupt cache entries '
                     f'recomputed')
        return text


class FeatureExtractor:
    r"""Cached, batched extraction of :class:`ImageFeatures`.

    The backends (:mod:`graphmner.features.backends`) load their networks on
    first need, so a run whose features are all cached never loads them; a
    detector config with ``weights=None`` gives every image no object.

    Args:
        vision (VisionConfig or VisionBackend, optional): Backend settings
            (``arch`` a registered name, e.g. ``'descriptors'`` for the
            weight-free descriptors), or a backend to share between extractors.
            (default: :obj:`VisionConfig()`)
        detector (DetectorConfig or DetectorBackend, optional): Detector
            settings, or a detector to share. (default: :obj:`DetectorConfig()`)
        cache_dir (str or os.PathLike, optional): Root of the feature cache;
            :obj:`None` disables caching. (default: :obj:`None`)
        batch_size (int, optional): Images per forward pass.
            (default: :obj:`16`)
        min_size (int, optional): Images with a shorter side are unusable.
            (default: :obj:`8`)
        max_pixels (int, optional): Images with more pixels are unusable.
            (default: :obj:`64_000_000`)
        progress (bool, optional): Show a progress bar.
            (default: :obj:`True`)
    """

    def __init__(
        self,
        vision: VisionConfig | VisionBackend = VisionConfig(),
        detector: DetectorConfig | DetectorBackend = DetectorConfig(),
        cache_dir: str | os.PathLike | None = None,
        *,
        batch_size: int = 16,
        min_size: int = 8,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        progress: bool = True,
    ):
        if batch_size < 1:
            raise ValueError(f"'batch_size' must be positive "
                             f"(got {batch_size})")
        self.backbone: VisionBackend = vision_backend(vision) if isinstance(vision, VisionConfig) else vision
        self.detector: DetectorBackend | None = (
            detector_backend(detector) if isinstance(detector, DetectorConfig) else detector)
        self.settings = {
            'vision': self.backbone.fingerprint(),
            'detector': self.detector.fingerprint() if self.detector is not None else {'weights': None},
        }
        self.cache = (FeatureCache(cache_dir, self.settings)
                      if cache_dir is not None else None)
        self.batch_size = batch_size
        self.min_size = min_size
        self.max_pixels = max_pixels
        self.progress = progress
        self.report = ExtractionReport()

    def extract(
        self,
        image_paths: Sequence[str | os.PathLike | None],
    ) -> list[ImageFeatures | None]:
        r"""Features of each image, :obj:`None` where there is no usable one.

        Args:
            image_paths (Sequence[str or os.PathLike or None]): One path per
                tweet; :obj:`None` for a tweet without an image.

        Returns:
            list[ImageFeatures or None]: Aligned with ``image_paths``. What
            was cached, computed and unusable is in :attr:`report`.
        """
        report = self.report = ExtractionReport(total=len(image_paths))
        rejected_before = len(self.cache.rejected) if self.cache is not None else 0
        out: list[ImageFeatures | None] = [None] * len(image_paths)
        # Per distinct file (SHA-256): its features and where they came from
        # ('cached'/'computed'), or its failed load: a file listed twice is
        # looked up, decoded and computed once.
        done: dict[str, tuple[ImageFeatures | ImageLoad, str]] = {}
        waiting: dict[str, list[int]] = {}  # digest -> indices, open batch
        batch: list[tuple[str, Image.Image]] = []

        def resolve(digest: str, indices: list[int]) -> None:
            result, source = done[digest]
            for i in indices:
                if isinstance(result, ImageLoad):
                    report.problems.append(_problem(image_paths[i], result))
                    continue
                out[i] = result
                if source == 'cached':
                    report.cached += 1
                else:
                    report.computed += 1
            bar.update(len(indices))

        def flush() -> None:
            features = self._compute([image for _, image in batch])
            for (digest, _), feats in zip(batch, features, strict=True):
                if self.cache is not None:
                    with _timed(report, 'cache'):
                        feats = self.cache.put(digest, feats)  # as a cache hit will read them
                done[digest] = (feats, 'computed')
                resolve(digest, waiting.pop(digest))
            batch.clear()

        with tqdm(total=len(image_paths), unit='img', desc='image features',
                  disable=not self.progress) as bar:
            for i, path in enumerate(image_paths):
                with _timed(report, 'read'):
                    data, failed = read_bytes(path)
                if failed is not None:
                    report.problems.append(_problem(path, failed))
                    bar.update()
                    continue
                digest = bytes_sha256(data)
                if digest in waiting:
                    waiting[digest].append(i)
                    continue
                if digest not in done:
                    with _timed(report, 'cache'):
                        cached = (self.cache.get(digest)
                                  if self.cache is not None else None)
                    if cached is not None:
                        done[digest] = (cached, 'cached')
                    else:
                        with _timed(report, 'decode'):
                            loaded = decode_image(
                                data, name=str(path), min_size=self.min_size,
                                max_pixels=self.max_pixels)
                        if loaded.image is None:
                            done[digest] = (loaded, 'unusable')
                        else:
                            waiting[digest] = [i]
                            batch.append((digest, loaded.image))
                            if len(batch) == self.batch_size:
                                flush()
                            continue
                resolve(digest, [i])
            if batch:
                flush()

        if self.cache is not None:
            report.recomputed = len(self.cache.rejected) - rejected_before
        if report.problems or report.recomputed:
            log.warning('image features: %s', report.summary())
        return out

    def _compute(self, images: list[Image.Image]) -> list[ImageFeatures]:
        """Features of a batch of images, stored in the cache."""
        report = self.report
        with _timed(report, 'backbone'):
            visual = self.backbone.extract(images)
        with _timed(report, 'detector'):
            detections = (self.detector.detect(images) if self.detector is not None
                          else [Detections.empty() for _ in images])
        with _timed(report, 'crops'):
            crops = [c for img, det in zip(images, detections, strict=True)
                     for c in det.crop(img)]
            pooled = self.backbone.encode_crops(crops)
            objects = torch.split(pooled, [len(d) for d in detections])
        out = []
        for nodes, det, obj in zip(visual, detections, objects, strict=True):
            nodes = {**nodes, 'object': det.nodes(obj.clone())}
            if set(nodes) != set(VISUAL_NODES):
                raise ValueError(f'vision backend {self.backbone.name!r} gave the node types '
                                 f'{sorted(nodes)}, not {sorted(VISUAL_NODES)}')
            out.append(ImageFeatures({t: nodes[t] for t in VISUAL_NODES}))
        return out

    def describe(self) -> str:
        """What makes the visual features: ``'<vision backend>; <detector>'``."""
        return describe_backends(self.backbone, self.detector)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.describe()}, cache={self.cache})'


def _problem(path, failed: ImageLoad) -> ImageProblem:
    return ImageProblem(None if path is None else str(path), failed.problem,
                        failed.detail)


@contextmanager
def _timed(report: ExtractionReport, step: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        report.seconds[step] += time.perf_counter() - start
