"""Records passed from the frozen extractors to the graph builder, keyed by node type.

A visual backend fills the visual node types of the graph schema
(:mod:`graphmner.graph.schema`); :data:`VISUAL_NODES` says what each one stores
besides ``x``, so the cache, the builder and the transforms handle every type
the same way and a new visual node type is one more entry here.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import torch
from torch import Tensor

#: Where an image-to-text (``aux``) word came from; the graph's ``aux.source``
#: stores the index.
AUX_SOURCES: Final[tuple[str, ...]] = ('caption', 'ocr', 'tag')


@dataclass(frozen=True)
class NodeSpec:
    """What one visual node type stores besides its ``x`` (``[N, C]`` float32).

    Attributes:
        attrs: Stored per-node attribute -> (shape after the node dimension, dtype).
        names: Whether each node has a class name (kept graph-level as
            ``<type>_names``, a list of str).
        rows: The node count when it is fixed (``image``: one per graph), else None.
    """

    attrs: Mapping[str, tuple[tuple[int, ...], torch.dtype]] = field(default_factory=dict)
    names: bool = False
    rows: int | None = None

    def empty(self, width: int) -> NodeFeatures:
        """Zero-filled features of a tweet without a usable image: ``rows``
        zero rows for a fixed-count type, no node otherwise."""
        n = self.rows or 0
        attrs = {k: torch.zeros(n, *shape, dtype=dtype) for k, (shape, dtype) in self.attrs.items()}
        return NodeFeatures(torch.zeros(n, width), attrs, [] if self.names else None)


_BOX = ((4, ), torch.float32)  # normalised xyxy in the original photo

#: The visual node types a backend fills, in graph order (names as in :mod:`graphmner.graph.schema`).
VISUAL_NODES: Final[dict[str, NodeSpec]] = {
    'image': NodeSpec(rows=1),                                    # global pooled feature
    'region': NodeSpec({'box': _BOX}),                            # grid cells
    'scale': NodeSpec({'level': ((), torch.long), 'box': _BOX}),  # pyramid cells, level 0..L-1
    'object': NodeSpec({'box': _BOX, 'cls': ((), torch.long), 'score': ((), torch.float32)},
                       names=True),                               # detected objects, most confident first
}


@dataclass
class NodeFeatures:
    """The nodes of one visual type for one image.

    ``x`` is ``[N, C]``; every tensor of ``attrs`` has ``N`` rows (``box``
    ``[N, 4]``, ``level`` / ``cls`` / ``score`` ``[N]``), stored on the graph
    under its key; ``names`` is one str per node for types that have them.
    """

    x: Tensor
    attrs: dict[str, Tensor] = field(default_factory=dict)
    names: list[str] | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, name: str) -> Tensor:
        return self.attrs[name]


@dataclass
class ImageFeatures:
    """Frozen visual features of one usable image, one :class:`NodeFeatures`
    per type of :data:`VISUAL_NODES`: what the feature cache stores and
    :func:`graphmner.graph.build_graph` turns into nodes.

    ``C`` is the backend's feature width (2048 for ResNet-50/152, 42 for the
    default descriptors).
    """

    nodes: dict[str, NodeFeatures]

    def __getitem__(self, node_type: str) -> NodeFeatures:
        return self.nodes[node_type]

    def names(self, node_type: str) -> list[str]:
        """Class names of the nodes of ``node_type`` (``[]`` for none)."""
        return list(self.nodes[node_type].names or [])

    @property
    def dim(self) -> int:
        return int(self.nodes['image'].x.shape[-1])

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{type: {'x': ..., <attrs>..., ['names': [...]]}}``, as the cache stores it."""
        return {t: {'x': f.x, **f.attrs, **({'names': list(f.names)} if f.names is not None else {})}
                for t, f in self.nodes.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping[str, Any]]) -> ImageFeatures:
        return cls({t: NodeFeatures(d[t]['x'], {k: d[t][k] for k in spec.attrs},
                                    list(d[t]['names']) if spec.names else None)
                    for t, spec in VISUAL_NODES.items()})


@dataclass(frozen=True)
class VisualWidths:
    """The widths of a backend's visual features: what a model built on them
    must be built with.

    Attributes:
        x: Visual node type -> width of its ``x``.
        levels: Channels of each pyramid level inside ``scale.x`` (a narrower
            level is zero-padded to ``x['scale']``: ResNet-50 256 / 512 / 1024 / 2048).
    """

    x: Mapping[str, int]
    levels: tuple[int, ...]

    @classmethod
    def uniform(cls, width: int, levels: int = 4) -> VisualWidths:
        """Every node type and every pyramid level ``width`` wide."""
        return cls({t: width for t in VISUAL_NODES}, (width, ) * levels)

    def to_dict(self) -> dict[str, Any]:
        return {'x': dict(self.x), 'levels': list(self.levels)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VisualWidths:
        return cls(dict(d['x']), tuple(d['levels']))


@dataclass
class Detections:
    """The detections of one image, most confident first."""

    boxes: Tensor    # [K, 4] normalised xyxy
    classes: Tensor  # [K] long
    scores: Tensor   # [K] float
    names: list[str]  # [K] class names

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def empty(cls) -> Detections:
        return cls(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0), [])

    def crop(self, image) -> list:
        """Cuts each detected box out of ``image`` (the detected PIL image)."""
        width, height = image.size
        crops = []
        for x0, y0, x1, y1 in self.boxes.tolist():
            left = min(math.floor(x0 * width), width - 1)
            top = min(math.floor(y0 * height), height - 1)
            # At least one pixel, even for a degenerate box.
            right = min(max(math.ceil(x1 * width), left + 1), width)
            bottom = min(max(math.ceil(y1 * height), top + 1), height)
            crops.append(image.crop((left, top, right, bottom)))
        return crops

    def nodes(self, x: Tensor) -> NodeFeatures:
        """The ``object`` nodes of these detections, ``x`` ``[K, C]`` their crops' features."""
        return NodeFeatures(x, {'box': self.boxes, 'cls': self.classes, 'score': self.scores},
                            list(self.names))
