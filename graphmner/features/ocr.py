r"""Offline OCR of the text printed in a photo: words, boxes and confidences.

The engine is RapidOCR (``rapidocr-onnxruntime``), which runs PaddleOCR's
PP-OCRv4 text detector (DB, Liao et al., "Real-time Scene Text Detection with
Differentiable Binarization", AAAI 2020) and CRNN-style recogniser through
ONNX Runtime; the three ONNX files (16 MB) ship inside its wheel, so nothing
is downloaded. It was chosen over Tesseract 5.3 (Debian's ``tesseract-ocr``
through ``pytesseract``) by measurement (``experiments/compare_ocr.py``) on
twelve scikit-image photos with rendered DejaVu text (captions, signs,
banners; 49 words) and four photos without text, on one CPU thread:

==========================  =========  ======  =========  ==========  =======
engine                      char acc.  word    word       junk words  s/photo
                                       recall  precision  (no text)
==========================  =========  ======  =========  ==========  =======
RapidOCR (this module)      0.96       0.83    0.89       0           1.4
Tesseract ``--psm 11``      -1.10      0.55    0.11       18          1.5
Tesseract ``--psm 3``       -0.71      0.43    0.12       0           1.0
==========================  =========  ======  =========  ==========  =======

(character accuracy is 1 - edit distance / length of the true text; below 0,
Tesseract read the photos' texture as junk words: sparse-text mode finds more
of the words and more junk, page mode misses whole captions.)

RapidOCR returns lines; its recogniser gives every character a box and a
confidence, from which :class:`TextReader` cuts the line into words: at a
space, and at a gap between two characters wider than ``word_gap`` times the
line's height, because the recogniser often drops the spaces of a line in a
regular-weight font (``'MeetRobfromAmsterdam'``). The character boxes are
estimates, so the cut is imperfect: ``word_gap`` 0.4 found 0.87 of the words
at precision 0.82, 0.5 found 0.83 at 0.89, and 1.0, which cut nothing here, 0.79
at 0.88 (``compare_ocr.py --word-gap``). A word's confidence is its least
confident character's. ONNX Runtime runs on one thread, so the same
image gives the same words, boxes and confidences on every run.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from graphmner.data.images import decode_image
from graphmner.features.cache import bytes_sha256, settings_key
from graphmner.features.vision import file_sha256
from graphmner.io import atomic_write_text

log = logging.getLogger(__name__)

#: The PP-OCRv4 ONNX files RapidOCR reads, by role, as named in its wheel.
MODEL_FILES: Final[dict[str, str]] = {
    'det': 'ch_PP-OCRv4_det_infer.onnx',
    'cls': 'ch_ppocr_mobile_v2.0_cls_infer.onnx',
    'rec': 'ch_PP-OCRv4_rec_infer.onnx',
}

_INSTALL: Final = "pip install 'rapidocr-onnxruntime==1.4.4'"


@dataclass(frozen=True)
class OcrConfig:
    r"""Settings of :class:`TextReader`.

    Args:
        min_confidence (float, optional): Drop words whose confidence (that of
            their least confident character) is below this.
            (default: :obj:`0.5`)
        word_gap (float, optional): A gap between two characters of a line
            wider than this times the line's height ends a word.
            (default: :obj:`0.5`)
        box_thresh (float, optional): Minimum score of a detected text region.
            (default: :obj:`0.5`)
        model_dir (str or os.PathLike, optional): The folder of the three
            ONNX files of :data:`MODEL_FILES`; :obj:`None` for the one inside
            the ``rapidocr-onnxruntime`` wheel. (default: :obj:`None`)
    """

    min_confidence: float = 0.5
    word_gap: float = 0.5
    box_thresh: float = 0.5
    model_dir: str | os.PathLike | None = None

    def __post_init__(self):
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"OcrConfig.min_confidence must be in [0, 1] (got {self.min_confidence})")
        if self.word_gap <= 0.0:
            raise ValueError(f"OcrConfig.word_gap must be positive (got {self.word_gap})")
        if not 0.0 <= self.box_thresh <= 1.0:
            raise ValueError(f"OcrConfig.box_thresh must be in [0, 1] (got {self.box_thresh})")

    def model_paths(self) -> dict[str, Path]:
        """The three ONNX files, by role.

        Raises:
            ImportError: ``model_dir`` is :obj:`None` and rapidocr-onnxruntime
                is not installed.
            FileNotFoundError: A file is missing (naming the option).
        """
        if self.model_dir is None:
            folder, where = _rapidocr_dir() / 'models', "the rapidocr-onnxruntime wheel's models folder"
        else:
            folder, where = Path(self.model_dir).expanduser().resolve(), 'OcrConfig.model_dir'
        paths = {role: folder / name for role, name in MODEL_FILES.items()}
        missing = [str(path) for path in paths.values() if not path.is_file()]
        if missing:
            raise FileNotFoundError(
                f"OCR weights missing from {where}: {', '.join(missing)}; reinstall the engine "
                f"({_INSTALL}) or point OcrConfig.model_dir at a folder with {sorted(MODEL_FILES.values())}")
        return paths

    def describe(self) -> str:
        """A short name of the reader, for pictures and logs."""
        return f'RapidOCR PP-OCRv4 (min confidence {self.min_confidence})'

    def fingerprint(self) -> dict:
        """What determines the words: the settings, with ``model_dir`` replaced
        by the SHA-256 of each model file, and the engine's version. Feeds the
        cache key.
        """
        out = asdict(self)
        del out['model_dir']
        out['models'] = {role: f'sha256:{file_sha256(path)}' for role, path in self.model_paths().items()}
        _rapidocr_dir()  # the clear ImportError, before the version lookup's
        out['rapidocr'] = importlib.metadata.version('rapidocr-onnxruntime')
        return out


@dataclass
class OcrWords:
    """The words read in one image, in reading order (lines top to bottom)."""

    words: list[str]     # [K]
    boxes: Tensor        # [K, 4] normalised xyxy
    pixel_boxes: Tensor  # [K, 4] xyxy in the image's pixels
    scores: Tensor       # [K] confidence in [0, 1]

    def __len__(self) -> int:
        return len(self.words)

    @property
    def text(self) -> str:
        return ' '.join(self.words)

    @classmethod
    def empty(cls) -> OcrWords:
        return cls([], torch.zeros(0, 4), torch.zeros(0, 4), torch.zeros(0))


class TextReader:
    r"""Reads the printed words of photos with RapidOCR's PP-OCRv4 models.

    Args:
        config (OcrConfig, optional): The settings. (default: :obj:`OcrConfig()`)

    Raises:
        ImportError: rapidocr-onnxruntime is not installed.
        FileNotFoundError: A model file is missing.

    Example:
        >>> reader = TextReader()
        >>> reader.read([Image.new('RGB', (320, 240), 'white')])[0].words
        []
    """

    def __init__(self, config: OcrConfig = OcrConfig()):
        self.config = config
        paths = config.model_paths()
        RapidOCR = _import_rapidocr()
        self._engine = RapidOCR(
            det_model_path=str(paths['det']), cls_model_path=str(paths['cls']),
            rec_model_path=str(paths['rec']), intra_op_num_threads=1, inter_op_num_threads=1)

    def read(self, images: list[Image.Image]) -> list[OcrWords]:
        r"""Reads the words of each image.

        Args:
            images (list[PIL.Image.Image]): Images of any size and mode.

        Returns:
            list[OcrWords]: One per image, in reading order, each word at
            least ``min_confidence``.
        """
        return [self._read_one(image) for image in images]

    def _read_one(self, image: Image.Image) -> OcrWords:
        cfg = self.config
        width, height = image.size
        bgr = np.ascontiguousarray(np.asarray(image.convert('RGB'))[:, :, ::-1])
        # text_score=0: RapidOCR would drop whole lines by their mean score;
        # min_confidence applies to each word instead.
        lines, _ = self._engine(bgr, box_thresh=cfg.box_thresh, text_score=0.0, return_word_box=True)
        words, boxes, scores = [], [], []
        for line in lines or []:
            for word, box, score in _split_line(line, cfg.word_gap):
                if score >= cfg.min_confidence:
                    words.append(word)
                    boxes.append(box)
                    scores.append(score)
        if not words:
            return OcrWords.empty()
        pixel = torch.tensor(boxes, dtype=torch.float32)
        pixel = torch.minimum(pixel.clamp(min=0.0), torch.tensor([width, height, width, height],
                                                                  dtype=torch.float32))
        size = torch.tensor([width, height, width, height], dtype=torch.float32)
        return OcrWords(words, pixel / size, pixel, torch.tensor(scores, dtype=torch.float32))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.config.describe()})'


#: Bumped whenever the meaning of cached words changes, so old entries are no longer found.
OCR_CACHE_VERSION: Final = 1


class CachedTextReader:
    r"""The words of image files, read by :class:`TextReader` once per file
    content and settings: cached as one JSON file per image at
    ``<root>/ocr/<settings key[:16]>/<sha256[:2]>/<sha256 of the image bytes>.json``,
    the settings key that of :meth:`OcrConfig.fingerprint` (the model files'
    digests and the engine's version). The engine loads only on a miss, so a
    run whose words are all cached loads none. An entry that cannot be read,
    is of another version or settings, or is malformed is logged and read again.

    Args:
        config (OcrConfig, optional): The settings. (default: :obj:`OcrConfig()`)
        cache_dir (str or os.PathLike, optional): The cache's root (shared with
            the feature cache); :obj:`None` reads every image.
            (default: :obj:`None`)

    Raises:
        ImportError, FileNotFoundError: as :meth:`OcrConfig.fingerprint`.
    """

    def __init__(self, config: OcrConfig = OcrConfig(), cache_dir: str | os.PathLike | None = None):
        self.config = config
        self.settings = {'ocr_cache_version': OCR_CACHE_VERSION, **config.fingerprint()}
        self.key = settings_key(self.settings)
        self.dir = Path(cache_dir) / 'ocr' / self.key[:16] if cache_dir is not None else None
        self._reader: TextReader | None = None
        #: Images whose words were read by the engine (not found in the cache) by the last call.
        self.read_count = 0

    def __call__(self, images: Sequence[tuple[bytes, Image.Image | None]]) -> list[OcrWords]:
        r"""The words of each image, given as its file's bytes (the cache key)
        and the decoded image (:obj:`None` to decode the bytes only on a miss)."""
        self.read_count = 0
        out = []
        for data, image in images:
            digest = bytes_sha256(data)
            words = self._get(digest)
            if words is None:
                if image is None:
                    image = decode_image(data).image
                if self._reader is None:
                    self._reader = TextReader(self.config)
                words = self._reader.read([image])[0]
                self.read_count += 1
                self._put(digest, words)
            out.append(words)
        return out

    def _path(self, digest: str) -> Path | None:
        return self.dir / digest[:2] / f'{digest}.json' if self.dir is not None else None

    def _get(self, digest: str) -> OcrWords | None:
        path = self._path(digest)
        if path is None or not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding='utf-8'))
            if entry['version'] != OCR_CACHE_VERSION or entry['settings'] != self.key:
                raise ValueError('of another version or settings')
            words = [str(w) for w in entry['words']]
            tensors = [torch.tensor(entry[k], dtype=torch.float32).reshape(len(words), *shape)
                       for k, shape in (('boxes', (4,)), ('pixel_boxes', (4,)), ('scores', ()))]
            return OcrWords(words, *tensors)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
            log.warning("OCR cache entry '%s' is unusable (%s): reading the image again", path, error)
            return None

    def _put(self, digest: str, words: OcrWords) -> None:
        path = self._path(digest)
        if path is None:
            return
        settings = path.parent.parent / 'settings.json'
        if not settings.is_file():
            atomic_write_text(settings, json.dumps(self.settings, indent=2, sort_keys=True))
        atomic_write_text(path, json.dumps({
            'version': OCR_CACHE_VERSION, 'settings': self.key, 'words': words.words,
            'boxes': words.boxes.tolist(), 'pixel_boxes': words.pixel_boxes.tolist(),
            'scores': words.scores.tolist()}))


def _split_line(line: list, word_gap: float) -> list[tuple[str, list[float], float]]:
    """Cuts one RapidOCR line ``[quad, text, score, char_quads, chars,
    char_scores]`` into ``(word, xyxy box, confidence)``."""
    quad = np.asarray(line[0], dtype=np.float64)
    text, score = line[1], float(line[2])
    chars = line[4] if len(line) > 5 else []
    if not chars:
        # No character boxes (RapidOCR gives none for some rotated crops):
        # the words share the line's box and score.
        box = [*quad.min(axis=0), *quad.max(axis=0)]
        return [(word, box, score) for word in text.split()]
    char_quads = [np.asarray(q, dtype=np.float64) for q in line[3]]
    char_scores = [float(s) for s in line[5]]
    # Distances along the line, so that a slanted line is cut as a level one.
    direction = quad[1] - quad[0]
    direction /= max(np.linalg.norm(direction), 1e-9)
    line_height = (np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
    out, current = [], []

    def close():
        if current:
            corners = np.concatenate([char_quads[i] for i in current])
            out.append((''.join(chars[i] for i in current),
                        [*corners.min(axis=0), *corners.max(axis=0)],
                        min(char_scores[i] for i in current)))
            current.clear()

    last_end = -math.inf
    for i, char in enumerate(chars):
        if not char.strip():
            close()
            continue
        along = char_quads[i] @ direction
        if current and along.min() - last_end > word_gap * line_height:
            close()
        current.append(i)
        last_end = along.max()
    close()
    return out


def _rapidocr_dir() -> Path:
    spec = importlib.util.find_spec('rapidocr_onnxruntime')
    if spec is None or spec.origin is None:
        raise ImportError(f"TextReader needs the OCR engine rapidocr-onnxruntime: {_INSTALL}")
    return Path(spec.origin).parent


def _import_rapidocr():
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as e:
        raise ImportError(f"TextReader needs the OCR engine rapidocr-onnxruntime: {_INSTALL}") from e
    return RapidOCR
