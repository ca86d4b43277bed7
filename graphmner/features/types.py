"""Records passed from the frozen extractors to the graph builder."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from torch import Tensor

#: Where an image-to-text (``aux``) word came from; the graph's ``aux.source``
#: stores the index.
AUX_SOURCES: Final[tuple[str, ...]] = ('caption', 'ocr', 'tag')


@dataclass
class ImageFeatures:
    """Frozen visual features of one usable image: what the feature cache
    stores and :func:`graphmner.graph.build_graph` turns into nodes.

    ``C`` is the backbone's feature width (``VisionConfig.feature_dim``:
    2048 for ResNet-50/152, 42 for the default descriptors).
    """

    image: Tensor           # [C] global pooled feature
    regions: Tensor         # [R, C] grid cells (R = 49 at 224 px)
    region_boxes: Tensor    # [R, 4] normalised xyxy
    scales: Tensor          # [S, C] pyramid cells (ResNet: channels zero-padded to C)
    scale_levels: Tensor    # [S] long: pyramid level 0..3 (ResNet: stage)
    scale_boxes: Tensor     # [S, 4] normalised xyxy
    objects: Tensor         # [K, C] crop features, K <= top-k (0 without a detector)
    object_boxes: Tensor    # [K, 4] normalised xyxy
    object_classes: Tensor  # [K] long: detector class ids
    object_scores: Tensor   # [K] detector confidences
    object_names: list[str]  # [K] detector class names

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> ImageFeatures:
        return cls(**{f.name: d[f.name] for f in fields(cls)})

    @property
    def dim(self) -> int:
        return int(self.image.shape[-1])
