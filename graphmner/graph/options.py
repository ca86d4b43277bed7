"""Every setting that changes the built tweet graphs (part of their cache key)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class GraphOptions:
    """Every setting that changes the built graphs (part of the cache key).

    Visual extraction runs only for tweets whose image is found under
    ``image_root``; without an image root every tweet gets ``image.missing``.
    """

    vision_arch: str = 'resnet50'               # a vision backend: 'resnet50' | 'resnet152' | 'descriptors'
    vision_weights: str | None = 'imagenet'  # 'imagenet' (from the torch cache), a file, or None (random)
    detector_arch: str = 'yolo'                 # a detector backend: 'yolo' | 'cascade' (Haar cascades)
    # yolo: a .pt file, a .yaml for random weights; cascade: 'opencv' (the wheel's cascades) or a
    # folder of haarcascade_*.xml files; None: no detector, no object nodes
    detector_weights: str | None = 'yolov8n.pt'
    top_k: int = 4                              # objects kept per image
    detector_conf: float = 0.25                 # minimum detection score
    cascades: tuple[str, ...] | None = None     # the cascade detector's cascades (None: its default set)
    hog_people: bool = False                    # the cascade detector also runs OpenCV's HOG people detector
    scale_grid: int = 2                         # each pyramid level pooled to scale_grid x scale_grid cells;
    #                                             0: every level at its own resolution (GMF pyramid='native')
    spacy_model: str = 'en_core_web_sm'         # name or path, for UMGF's noun phrases
    aux_sources: tuple[str, ...] = ('caption', 'tag', 'ocr')  # order of aux words
    ocr: bool = False                           # read the photos' printed words (RapidOCR): 'ocr' aux words
    ocr_min_confidence: float = 0.5             # OCR words less confident than this are dropped
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()[:16]
