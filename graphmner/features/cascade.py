r"""Object detection with OpenCV's pretrained Haar cascades and HOG people detector.

The OpenCV 4.x wheels carry pretrained Haar cascades (Viola and Jones, "Rapid
Object Detection using a Boosted Cascade of Simple Features", CVPR 2001) in
``cv2.data.haarcascades``, and OpenCV has the Dalal-Triggs HOG people detector
("Histograms of Oriented Gradients for Human Detection", CVPR 2005) built in.
Both are real pretrained detectors that need no download, so they work where
no YOLO weights can be had. OpenCV 5.x dropped the cascades from its wheels,
which is why the project pins ``opencv-python<5``.

Each cascade finds one kind of thing; :data:`CASCADE_LABELS` names it with the
COCO class (:data:`~graphmner.features.detector.COCO_CLASSES`) a YOLO detector
would give it: faces and bodies are ``person``, cat faces ``cat``, so the text
side (UMGF's noun-phrase grounding ``'woman'`` -> ``person``, ITA's object
tags) reads both detectors alike.

Scores: a Haar cascade accepts a window when every stage's sum of weak
classifiers reaches that stage's threshold; ``detectMultiScale3(...,
outputRejectLevels=True)`` returns the last stage's sum of each detection (the
largest over the windows grouped into it). The detection's *margin* is that
sum minus the last stage's threshold (read from the cascade's XML), and its
score is :math:`\sigma(\text{margin}) = 1 / (1 + e^{-\text{margin}})`. The HOG
detector's margin is its linear SVM's decision value minus the hit threshold
(0). A margin is non-negative for every accepted detection, so scores lie in
[0.5, 1); the map is monotonic, so within one cascade a higher score is a
window further inside the accepted side, but margins of different cascades
have different scales and are not calibrated probabilities.
"""
from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from graphmner.features.detector import COCO_CLASSES, Detections, DetectorConfig
from graphmner.features.vision import file_sha256

#: The cascades this detector runs (the stem of ``haarcascade_<name>.xml``), each
#: with the COCO class of what it finds. Eyes, smiles and licence plates have no
#: COCO class and are left out.
CASCADE_LABELS: Final[dict[str, str]] = {
    'frontalface_default': 'person',
    'frontalface_alt': 'person',
    'frontalface_alt2': 'person',
    'frontalface_alt_tree': 'person',
    'profileface': 'person',
    'fullbody': 'person',
    'upperbody': 'person',
    'lowerbody': 'person',
    'frontalcatface': 'cat',
    'frontalcatface_extended': 'cat',
}

#: The name of the HOG people detector in :attr:`CascadeDetections.sources`.
HOG_PEOPLE: Final = 'hog_people'


@dataclass(frozen=True)
class CascadeConfig:
    r"""Settings of :class:`CascadeDetector`.

    The defaults were chosen on the demo's eleven scikit-image photos: they find
    the astronaut's face, the photographer's profile and the cat (its muzzle:
    the face overflows the frame), and give two false ``person`` boxes (on the
    blurred clock and on gravel) on the other eight, at 0.3 to 2.4 seconds a
    photo (mean 1.7) on a loaded two-core machine. Histogram equalisation and
    ``min_neighbors=5`` lost the cat; the HOG people detector found none of
    the demo's people and two false ones, so it is off by default.

    Args:
        cascades (tuple[str, ...], optional): Which cascades to run, keys of
            :data:`CASCADE_LABELS`.
            (default: :obj:`('frontalface_default', 'profileface',
            'frontalcatface_extended', 'upperbody', 'fullbody')`)
        hog_people (bool, optional): Also run the HOG people detector.
            (default: :obj:`False`)
        scale_factor (float, optional): Scale step of the cascades' image
            pyramid. (default: :obj:`1.1`)
        min_neighbors (int, optional): Overlapping windows a cascade detection
            needs to be kept (``detectMultiScale``'s ``minNeighbors``).
            (default: :obj:`3`)
        min_size (float, optional): Smallest detection, as a fraction of the
            image's shorter side (never under 20 pixels). (default: :obj:`0.08`)
        max_side (int, optional): Images with a longer side are downscaled to
            it before detection (boxes are given in the original's pixels); it
            bounds the time per image and the tiny false faces a large image's
            texture yields. (default: :obj:`640`)
        top_k (int, optional): Keep at most this many detections per image,
            the highest score first. (default: :obj:`4`)
        score_threshold (float, optional): Minimum score; scores are at least
            0.5 (see the module's docstring), so the default keeps every
            detection. (default: :obj:`0.5`)
        iou (float, optional): IoU above which non-maximum suppression, across
            all cascades of one label, drops the lower-scored of two boxes;
            low, because the frontal and the profile cascade box one face
            differently (IoU 0.40 on the astronaut). (default: :obj:`0.3`)
        data_dir (str or os.PathLike, optional): The folder of the cascade
            XML files; :obj:`None` for the one inside the OpenCV wheel
            (``cv2.data.haarcascades``). (default: :obj:`None`)
    """

    cascades: tuple[str, ...] = ('frontalface_default', 'profileface',
                                 'frontalcatface_extended', 'upperbody', 'fullbody')
    hog_people: bool = False
    scale_factor: float = 1.1
    min_neighbors: int = 3
    min_size: float = 0.08
    max_side: int = 640
    top_k: int = 4
    score_threshold: float = 0.5
    iou: float = 0.3
    data_dir: str | os.PathLike | None = None

    def __post_init__(self):
        object.__setattr__(self, 'cascades', tuple(self.cascades))
        unknown = [name for name in self.cascades if name not in CASCADE_LABELS]
        if unknown:
            raise ValueError(f"CascadeConfig.cascades has unknown cascade(s) {unknown}; "
                             f"known: {sorted(CASCADE_LABELS)}")
        if len(set(self.cascades)) != len(self.cascades):
            raise ValueError(f"CascadeConfig.cascades names a cascade twice (got {list(self.cascades)})")
        if not self.cascades and not self.hog_people:
            raise ValueError("CascadeConfig has no cascades and hog_people=False: nothing would be detected")
        if self.scale_factor <= 1.0:
            raise ValueError(f"CascadeConfig.scale_factor must be above 1 (got {self.scale_factor})")
        if self.min_neighbors < 0:
            raise ValueError(f"CascadeConfig.min_neighbors must be non-negative (got {self.min_neighbors})")
        if not 0.0 <= self.min_size < 1.0:
            raise ValueError(f"CascadeConfig.min_size must be in [0, 1) (got {self.min_size})")
        if self.max_side < 64:
            raise ValueError(f"CascadeConfig.max_side must be at least 64 (got {self.max_side})")
        if self.top_k < 0:
            raise ValueError(f"CascadeConfig.top_k must be non-negative (got {self.top_k})")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"CascadeConfig.score_threshold must be in [0, 1] (got {self.score_threshold})")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"CascadeConfig.iou must be in (0, 1] (got {self.iou})")

    def cascade_dir(self) -> Path:
        """The folder the cascade XML files are read from.

        Raises:
            ImportError: OpenCV is missing, or ships no cascades (5.x).
        """
        if self.data_dir is not None:
            return Path(self.data_dir).expanduser().resolve()
        cv2 = _import_cv2()
        if not hasattr(cv2, 'data'):
            raise ImportError(f"OpenCV {cv2.__version__} ships no Haar cascades (the 5.x wheels dropped "
                              f"them): pip install 'opencv-python>=4.7,<5', or set CascadeConfig.data_dir "
                              f"to a folder of haarcascade_*.xml files")
        return Path(cv2.data.haarcascades)

    def cascade_path(self, name: str) -> Path:
        """The XML file of one cascade.

        Raises:
            FileNotFoundError: The file does not exist (naming the option).
        """
        path = self.cascade_dir() / f'haarcascade_{name}.xml'
        if not path.is_file():
            where = ('CascadeConfig.data_dir (data.detector_weights)' if self.data_dir is not None
                     else "the OpenCV wheel's cv2.data.haarcascades")
            raise FileNotFoundError(
                f"CascadeConfig.cascades (data.cascades) names {name!r}, but its OpenCV data file "
                f"'{path}' is not in {where}; drop {name!r} from the cascades or point "
                f"CascadeConfig.data_dir (data.detector_weights) at a folder that has it")
        return path

    def describe(self) -> str:
        """A short name of the detector, for pictures and logs."""
        parts = list(self.cascades) + ([HOG_PEOPLE] if self.hog_people else [])
        return f"OpenCV cascades ({', '.join(parts)})"

    def fingerprint(self) -> dict:
        """What determines the detections: the settings, with ``data_dir``
        replaced by the SHA-256 of each cascade file read, and the OpenCV
        version (which holds the HOG detector's weights). Feeds the cache key.
        """
        out = asdict(self)
        out['cascades'] = {name: f'sha256:{file_sha256(self.cascade_path(name))}'
                           for name in self.cascades}
        del out['data_dir']
        out['opencv'] = _import_cv2().__version__
        return out


@dataclass
class CascadeDetections(Detections):
    """The detections of one image, highest score first, with where they came from."""

    pixel_boxes: Tensor  # [K, 4] xyxy in the image's pixels
    sources: list[str]   # [K] the cascade (or 'hog_people') that found each

    @classmethod
    def empty(cls) -> CascadeDetections:
        return cls(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0), [],
                   torch.zeros(0, 4), [])


class CascadeDetector:
    r"""OpenCV's pretrained Haar cascades (and optionally its HOG people
    detector) as one detector returning the top-k objects of each image.

    Every cascade runs on the grayscale image; the detections of all of them
    are scored (see the module's docstring), thresholded, merged by
    non-maximum suppression within each label and cut to ``top_k``. Ties are
    broken by box coordinates, so the output is the same on every run.

    Args:
        config (CascadeConfig, optional): The settings.
            (default: :obj:`CascadeConfig()`)

    It is the detector backend registered as ``'cascade'``
    (:func:`cascade_detector` builds it from a
    :class:`~graphmner.features.detector.DetectorConfig`). Construction reads
    no file: :meth:`fingerprint` hashes the cascade files, and they load on
    the first :meth:`detect`, so a run whose features are all cached loads none.

    Raises:
        ImportError: OpenCV is missing, or is a 5.x without the cascades
            (from :meth:`fingerprint` or the first :meth:`detect`).
        FileNotFoundError: A cascade's XML file is missing (idem).
        ValueError: A cascade file does not load (on the first :meth:`detect`).

    Example:
        >>> from skimage import data
        >>> detector = CascadeDetector()
        >>> detector.detect([Image.fromarray(data.astronaut())])[0].names
        ['person']
    """

    #: The registered name (``DetectorConfig.arch``, ``data.detector_arch``).
    name: Final = 'cascade'

    def __init__(self, config: CascadeConfig = CascadeConfig()):
        self.config = config
        self._cascades: list | None = None
        self._hog = None

    def fingerprint(self) -> dict:
        """The config's :meth:`CascadeConfig.fingerprint` (the cascade files'
        digests); feeds the feature-cache key."""
        return self.config.fingerprint()

    def describe(self) -> str:
        return self.config.describe()

    def _load(self) -> list:
        """Reads the cascades on first use, so that a run whose features are
        all cached reads none."""
        if self._cascades is not None:
            return self._cascades
        config = self.config
        cv2 = _import_cv2()
        cascades = []
        for name in config.cascades:
            path = config.cascade_path(name)
            # Read first: OpenCV answers a file that is not a cascade with a SystemError.
            threshold = _last_stage_threshold(name, path)
            classifier = cv2.CascadeClassifier(str(path))
            if classifier.empty():
                raise ValueError(f"CascadeConfig.cascades (data.cascades): OpenCV could not load {name!r} "
                                 f"from '{path}'")
            cascades.append((name, classifier, threshold))
        if config.hog_people:
            self._hog = cv2.HOGDescriptor()
            self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self._cascades = cascades
        return cascades

    def detect(self, images: list[Image.Image]) -> list[CascadeDetections]:
        r"""Detects objects in each image.

        Args:
            images (list[PIL.Image.Image]): Images of any size and mode.

        Returns:
            list[CascadeDetections]: One per image, at most ``top_k`` each,
            the highest score first.
        """
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: Image.Image) -> CascadeDetections:
        cfg = self.config
        if cfg.top_k == 0:
            return CascadeDetections.empty()
        cv2 = _import_cv2()
        width, height = image.size
        rgb = np.asarray(image.convert('RGB'))
        scale = min(1.0, cfg.max_side / max(width, height))
        if scale < 1.0:
            rgb = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                             interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        side = max(20, int(cfg.min_size * min(gray.shape)))

        found = []  # (x, y, w, h) in the detection image, margin, source
        for name, classifier, threshold in self._load():
            rects, _, weights = classifier.detectMultiScale3(
                gray, scaleFactor=cfg.scale_factor, minNeighbors=cfg.min_neighbors,
                minSize=(side, side), outputRejectLevels=True)
            found += [(rect, float(weight) - threshold, name)
                      for rect, weight in zip(rects, np.ravel(weights))]
        if self._hog is not None and min(gray.shape) >= 128:
            rects, weights = self._hog.detectMultiScale(rgb, winStride=(8, 8), padding=(8, 8), scale=1.05)
            found += [(rect, float(weight), HOG_PEOPLE) for rect, weight in zip(rects, np.ravel(weights))]

        boxes = np.array([[x, y, x + w, y + h] for (x, y, w, h), _, _ in found],
                         dtype=np.float64).reshape(-1, 4) / scale
        boxes = np.clip(boxes, 0.0, [width, height, width, height])
        scores = np.array([_sigmoid(margin) for _, margin, _ in found], dtype=np.float64)
        labels = [CASCADE_LABELS.get(source, 'person') for _, _, source in found]
        sources = [source for _, _, source in found]

        keep = [i for i in _order(boxes, scores) if scores[i] >= cfg.score_threshold]
        keep = _nms(boxes, labels, keep, cfg.iou)[:cfg.top_k]
        if not keep:
            return CascadeDetections.empty()
        pixel = torch.tensor(boxes[keep], dtype=torch.float32)
        size = torch.tensor([width, height, width, height], dtype=torch.float32)
        names = [labels[i] for i in keep]
        return CascadeDetections(
            boxes=(pixel / size).clamp(0.0, 1.0),
            classes=torch.tensor([COCO_CLASSES.index(n) for n in names], dtype=torch.long),
            scores=torch.tensor(scores[keep], dtype=torch.float32),
            names=names,
            pixel_boxes=pixel,
            sources=[sources[i] for i in keep])

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.config.describe()}, top_k={self.config.top_k})'


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box of ``a`` [N, 4] with every one of ``b`` [M, 4]: [N, M]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _order(boxes: np.ndarray, scores: np.ndarray) -> list[int]:
    """Indices by descending score, ties by the box's coordinates: OpenCV
    collects a cascade's windows from several threads, so its order varies."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], *boxes[i].tolist()))


def _nms(boxes: np.ndarray, labels: list[str], order: list[int], iou: float) -> list[int]:
    """Greedy non-maximum suppression within each label, in ``order``."""
    keep: list[int] = []
    for i in order:
        same = [j for j in keep if labels[j] == labels[i]]
        if same and box_iou(boxes[i:i + 1], boxes[same]).max() > iou:
            continue
        keep.append(i)
    return keep


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _last_stage_threshold(name: str, path: Path) -> float:
    """The threshold of a cascade's last stage, the reference of its scores."""
    try:
        stages = ET.parse(path).getroot().find('*/stages')
        return float(stages[-1].find('stageThreshold').text)
    except (ET.ParseError, AttributeError, IndexError, TypeError, ValueError) as e:
        raise ValueError(f"CascadeConfig.cascades (data.cascades): OpenCV could not load {name!r} from "
                         f"'{path}': not a "
                         f"Haar cascade in OpenCV's XML format ({type(e).__name__}: {e})") from e


def _import_cv2():
    try:
        import cv2
    except ImportError as e:
        raise ImportError("CascadeDetector needs OpenCV 4.x: pip install 'opencv-python>=4.7,<5'") from e
    return cv2


#: ``DetectorConfig.weights`` (``data.detector_weights``) naming the cascades inside the OpenCV wheel.
OPENCV_CASCADES: Final = 'opencv'


def cascade_detector(config: DetectorConfig) -> CascadeDetector:
    r"""The cascade detector of a :class:`~graphmner.features.detector.DetectorConfig`
    with ``arch='cascade'``: the factory registered as ``'cascade'``.

    ``weights`` is where the cascades' XML files (their trained weights) are:
    :data:`OPENCV_CASCADES` (``'opencv'``) for the OpenCV wheel's, or a
    folder of ``haarcascade_*.xml`` files; ``cascades`` and ``hog_people``
    pick the detectors (``None``: :class:`CascadeConfig`'s default set),
    ``top_k`` and ``conf`` (the minimum score) apply as for YOLO. The cascades'
    own tuning (``scale_factor``, ``min_neighbors``, ``min_size``,
    ``max_side``, ``iou``) keeps :class:`CascadeConfig`'s defaults; pass a
    :class:`CascadeDetector` of another config to
    :class:`~graphmner.features.extract.FeatureExtractor` to change them.

    Raises:
        FileNotFoundError: ``weights`` is neither ``'opencv'`` nor a folder.
        ValueError: an unknown cascade name.
    """
    data_dir = None
    if str(config.weights) != OPENCV_CASCADES:
        data_dir = Path(config.weights).expanduser()
        if not data_dir.is_dir():
            raise FileNotFoundError(
                f"DetectorConfig.weights (data.detector_weights) is {str(config.weights)!r}, which the "
                f"cascade detector (data.detector_arch=cascade) reads as the folder of its haarcascade_*.xml "
                f"files, and '{data_dir.resolve()}' is not a folder: set it to {OPENCV_CASCADES!r} for the "
                f"cascades inside the OpenCV wheel, or to a folder that has them")
    cascades = {} if config.cascades is None else {'cascades': tuple(config.cascades)}
    return CascadeDetector(CascadeConfig(**cascades, hog_people=config.hog_people, top_k=config.top_k,
                                         score_threshold=config.conf, data_dir=data_dir))
