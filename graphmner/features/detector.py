r"""Object detection with ultralytics YOLO, offline and without surprises.

ultralytics probes the network at import, may ``pip install`` missing
packages, and downloads known weight names (``yolov8n.pt``) that are not on
disk. :class:`ObjectDetector` prevents all three: it configures ultralytics
through its environment variables before the first import, turns settings sync
off, and resolves the weights file itself, so a missing file is a
:class:`FileNotFoundError` naming the option to set.

ultralytics is AGPL-3.0 and an optional dependency: it is imported only when a
detector is built. The environment variables take effect only if nothing
imported ultralytics earlier in the process.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import torch
from PIL import Image

from graphmner.features.types import Detections
from graphmner.features.vision import file_sha256

#: The 80 COCO classes, in YOLO's class-id order.
COCO_CLASSES: Final[tuple[str, ...]] = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train',
    'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign',
    'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag',
    'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon',
    'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot',
    'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear',
    'hair drier', 'toothbrush')

_CONFIG_SUFFIXES: Final = ('.yaml', '.yml')


@dataclass(frozen=True)
class DetectorConfig:
    r"""Settings of a detector backend (:func:`graphmner.features.backends.detector_backend`
    builds the one ``arch`` names; a backend reads the settings it uses).

    Args:
        arch (str, optional): The detector's registered name: ``'yolo'``
            (:class:`ObjectDetector`) or ``'cascade'`` (OpenCV's Haar cascades,
            :func:`~graphmner.features.cascade.cascade_detector`);
            :func:`~graphmner.features.backends.detector_names` lists them all.
            (default: :obj:`'yolo'`)
        weights (str or os.PathLike, optional): For the cascades, ``'opencv'``
            (the OpenCV wheel's cascade files) or a folder of
            ``haarcascade_*.xml`` files. For YOLO, a weights file (e.g. a local
            ``yolov8n.pt``; relative paths are resolved against the working
            directory, never looked up online), a model ``.yaml`` such as
            ``'yolov8n.yaml'`` for random weights (tests only), or
            :obj:`None` for no detector: every image then has no object
            (UMGF falls back to the whole image, ITA gets no tag words). A
            ``.pt`` file is a pickle: use only trusted files.
            (default: :obj:`'yolov8n.pt'`)
        top_k (int, optional): Keep at most this many detections per image,
            the most confident first. (default: :obj:`4`)
        conf (float, optional): Minimum confidence. (default: :obj:`0.25`)
        iou (float, optional): IoU threshold of non-maximum suppression.
            (default: :obj:`0.7`)
        imgsz (int, optional): Inference size in pixels.
            (default: :obj:`640`)
        seed (int, optional): Seed of the random initialisation of a
            ``.yaml`` model. (default: :obj:`0`)
        device (str, optional): Where the network runs; not part of the
            feature identity. (default: :obj:`'cpu'`)
        cascades (tuple[str, ...], optional): The cascade detector's
            cascades (keys of
            :data:`~graphmner.features.cascade.CASCADE_LABELS`); :obj:`None`
            for its default set. Read by ``'cascade'`` only.
            (default: :obj:`None`)
        hog_people (bool, optional): The cascade detector also runs OpenCV's
            HOG people detector. Read by ``'cascade'`` only.
            (default: :obj:`False`)
    """

    arch: str = 'yolo'
    weights: str | os.PathLike | None = 'yolov8n.pt'
    top_k: int = 4
    conf: float = 0.25
    iou: float = 0.7
    imgsz: int = 640
    seed: int = 0
    device: str = 'cpu'
    cascades: tuple[str, ...] | None = None
    hog_people: bool = False

    def __post_init__(self):
        if self.top_k < 0:
            raise ValueError(f"DetectorConfig.top_k must be non-negative "
                             f"(got {self.top_k})")
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"DetectorConfig.conf must be in [0, 1] "
                             f"(got {self.conf})")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"DetectorConfig.iou must be in (0, 1] "
                             f"(got {self.iou})")
        if self.imgsz < 32:
            raise ValueError(f"DetectorConfig.imgsz must be at least 32 "
                             f"(got {self.imgsz})")

    @property
    def enabled(self) -> bool:
        """False for ``weights=None``: no detector, no objects."""
        return self.weights is not None

    @property
    def random_weights(self) -> bool:
        return self.enabled and Path(self.weights).suffix.lower() in _CONFIG_SUFFIXES

    def describe(self) -> str:
        """A short name of the detector, for pictures and logs."""
        if not self.enabled:
            return 'no detector'
        name = Path(self.weights).name
        return f'{name} (RANDOM weights)' if self.random_weights else name

    def resolve_weights(self) -> Path:
        """The absolute path of the weights file.

        Raises:
            ValueError: ``weights`` is :obj:`None` (no detector).
            FileNotFoundError: The file does not exist.
        """
        if not self.enabled:
            raise ValueError("DetectorConfig.weights (--detector-weights) is None: no detector, so "
                             "no weights file")
        path = Path(self.weights).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(
                f"DetectorConfig.weights (--detector-weights) is "
                f"{str(self.weights)!r}, and '{path}' does not exist. Nothing "
                f"is downloaded automatically: download the weights (e.g. "
                f"yolov8n.pt from the ultralytics/assets releases on GitHub) "
                f"and set DetectorConfig.weights (--detector-weights) to its "
                f"path, or to 'yolov8n.yaml' for random weights (tests only).")
        return path

    def fingerprint(self) -> dict:
        """What determines the detections: the settings, minus the device,
        with ``weights`` replaced by the file's SHA-256 (or the model config
        and seed for random weights); only ``weights=None`` without a
        detector. Feeds the cache key.
        """
        if not self.enabled:
            return {'weights': None}
        out = asdict(self)
        for key in ('device', 'cascades', 'hog_people'):  # the device, and the cascade detector's own
            del out[key]
        if self.random_weights:
            out['weights'] = f'random({self.weights})'
        else:
            out['weights'] = f'sha256:{file_sha256(self.resolve_weights())}'
            del out['seed']
        return out


class ObjectDetector:
    r"""A frozen YOLO detector returning the top-k objects of each image: the
    detector backend registered as ``'yolo'``. Construction reads no file;
    :meth:`fingerprint` finds and hashes the weights file, and the network
    loads on first use, so a run whose features are all cached never loads it.

    Args:
        config (DetectorConfig, optional): The settings.
            (default: :obj:`DetectorConfig()`)

    Raises:
        ValueError: ``config.weights`` is :obj:`None` (no detector).
        FileNotFoundError: The weights file does not exist (from
            :meth:`fingerprint` or the first use).
        ImportError: ultralytics is not installed (on first use).

    Example:
        >>> detector = ObjectDetector(DetectorConfig(weights='yolov8n.yaml'))
        >>> detections = detector.detect([Image.new('RGB', (320, 240))])
    """

    #: The registered name (``DetectorConfig.arch``).
    name: Final = 'yolo'

    def __init__(self, config: DetectorConfig = DetectorConfig()):
        if not config.enabled:
            raise ValueError("DetectorConfig.weights (--detector-weights) is None, which means no "
                             "detector: FeatureExtractor then gives every image no objects")
        self.config = config
        self._model = None

    def fingerprint(self) -> dict:
        """The config's :meth:`DetectorConfig.fingerprint`; feeds the cache key."""
        return self.config.fingerprint()

    def describe(self) -> str:
        return self.config.describe()

    @property
    def model(self):
        """The ultralytics ``YOLO`` model, loaded on first use."""
        if self._model is None:
            config = self.config
            if config.random_weights:
                source = str(config.weights)
                warnings.warn(
                    f"DetectorConfig.weights is {source!r}: the detector has "
                    f"RANDOM weights, so its boxes and classes are meaningless; "
                    f"use them only for tests and timing. Set "
                    f"DetectorConfig.weights (--detector-weights) to a trained "
                    f"weights file for real detections.",
                    UserWarning, stacklevel=3)
            else:
                # An absolute path that exists: ultralytics then never falls
                # back to its asset download.
                source = str(config.resolve_weights())
            YOLO = _import_yolo()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                model = YOLO(source, task='detect')
            if config.random_weights and len(model.model.names) == len(COCO_CLASSES):
                # A .yaml model names its classes '0'..'79'; give it the COCO
                # names a trained model would have, so the text side (phrase
                # grounding, object tags) sees a realistic vocabulary.
                model.model.names = dict(enumerate(COCO_CLASSES))
            model.model.requires_grad_(False)
            model.model.eval()
            self._model = model
        return self._model

    @property
    def names(self) -> dict[int, str]:
        """Class id -> class name."""
        return dict(self.model.model.names)

    def detect(self, images: list[Image.Image]) -> list[Detections]:
        r"""Detects objects in a batch of images, in one predict call.

        Args:
            images (list[PIL.Image.Image]): RGB images of any size.

        Returns:
            list[Detections]: One per image, on the CPU, at most
            ``top_k`` each, the most confident first.
        """
        cfg = self.config
        if not images:
            return []
        if cfg.top_k == 0:
            return [Detections.empty() for _ in images]
        threads = torch.get_num_threads()
        try:
            results = self.model.predict(
                list(images), device=cfg.device, conf=cfg.conf, iou=cfg.iou,
                imgsz=cfg.imgsz, max_det=cfg.top_k, verbose=False, save=False)
        finally:
            # ultralytics' select_device sets torch's thread count to
            # cpu_count - 1: the training that follows a graph build would
            # run on fewer threads (and round differently) than one whose
            # graphs came from the cache.
            torch.set_num_threads(threads)
        out = []
        for result in results:
            boxes = result.boxes
            order = boxes.conf.argsort(descending=True)[:cfg.top_k]
            classes = boxes.cls[order].long().cpu()
            # ultralytics predicts in inference mode; indexing outside it
            # gives normal tensors, usable by trainable layers.
            out.append(Detections(
                boxes=boxes.xyxyn[order].float().cpu().clamp(0.0, 1.0),
                classes=classes,
                scores=boxes.conf[order].float().cpu(),
                names=[result.names[int(c)] for c in classes]))
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({str(self.config.weights)!r}, '
                f'top_k={self.config.top_k}, conf={self.config.conf})')


def _import_yolo():
    """Imports ultralytics with its network behaviour switched off.

    The variables are read once, at ultralytics' first import, so they are
    set (unless the user already did) right before it.
    """
    os.environ.setdefault('YOLO_OFFLINE', 'true')
    os.environ.setdefault('YOLO_AUTOINSTALL', 'false')
    os.environ.setdefault('YOLO_VERBOSE', 'false')
    if 'YOLO_CONFIG_DIR' not in os.environ:
        os.environ['YOLO_CONFIG_DIR'] = str(_writable_config_dir())
    try:
        from ultralytics import YOLO, settings
    except ImportError as e:
        raise ImportError(
            "ObjectDetector needs ultralytics (AGPL-3.0), an optional "
            "dependency: pip install 'ultralytics>=8.3.47'") from e
    if settings.get('sync', False):
        settings.update({'sync': False})
    _undo_pil_patch()
    return YOLO


def _undo_pil_patch() -> None:
    """Restores ``PIL.Image.open``, which ultralytics replaces at import.

    Its replacement answers any file Pillow cannot identify by trying to
    ``pip install pi-heif`` for HEIC support, so a stray HTML page named
    ``.jpg`` would start an install (or, offline, raise ModuleNotFoundError
    instead of UnidentifiedImageError) in every later ``Image.open`` of the
    process. We hand ultralytics decoded images and never need it.
    """
    try:
        from ultralytics.utils import patches
    except ImportError:
        return
    original = getattr(patches, '_image_open', None)
    if original is not None and Image.open is getattr(patches, 'image_open',
                                                      None):
        Image.open = original


def _writable_config_dir() -> Path:
    cache = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache'))
    for candidate in (cache / 'graphmner' / 'ultralytics',
                      Path(tempfile.gettempdir()) / 'graphmner-ultralytics'):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    raise OSError("found no writable directory for ultralytics' settings; "
                  "set the environment variable YOLO_CONFIG_DIR")
