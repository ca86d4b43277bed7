r"""The visual backends behind one protocol, and their registries.

A **vision backend** turns photos into the ``image``, ``region`` and ``scale``
nodes of the graph and object crops into ``object`` features; a **detector
backend** finds the objects. Both are built from their settings
(:class:`~graphmner.features.vision.VisionConfig`,
:class:`~graphmner.features.detector.DetectorConfig`) by the name in the
settings' ``arch``, cheaply: construction checks the settings and reads no
file, :meth:`fingerprint` may read (and hash) weight files, and networks load on
first use, so a run whose features are all cached loads none.

Adding a backend is one file with the class and one :func:`register_vision` /
:func:`register_detector` call (for the built-in ones, at the end of this
file; any code may register its own before building graphs)::

    class MyDetector:                       # graphmner/features/my_detector.py
        name = 'mine'
        def __init__(self, config: DetectorConfig): ...
        def fingerprint(self) -> dict: ...  # what determines its detections
        def describe(self) -> str: ...      # one line for pictures and tables
        def detect(self, images) -> list[Detections]: ...

    register_detector('mine', MyDetector)   # then DetectorConfig(arch='mine')
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from PIL import Image
from torch import Tensor

from graphmner.features.cascade import cascade_detector
from graphmner.features.descriptors import DescriptorBackbone, DescriptorConfig
from graphmner.features.detector import DetectorConfig, ObjectDetector
from graphmner.features.types import Detections, NodeFeatures, VisualWidths
from graphmner.features.vision import ResNetBackend, VisionConfig


@runtime_checkable
class VisionBackend(Protocol):
    """What a vision backend provides (structural: no base class to inherit)."""

    #: The name it is registered under (``VisionConfig.arch``).
    name: str

    def fingerprint(self) -> dict:
        """JSON-serialisable identity of its features (settings, weight
        digests, version): part of the feature-cache key."""

    @property
    def widths(self) -> VisualWidths:
        """The ``x`` width of each visual node type and of each pyramid level."""

    def describe(self) -> str:
        """One line naming the backend and its weights, for pictures, exports and tables."""

    def extract(self, images: list[Image.Image]) -> list[dict[str, NodeFeatures]]:
        """Per photo, its ``image`` (one row), ``region`` and ``scale`` nodes."""

    def encode_crops(self, crops: list[Image.Image]) -> Tensor:
        """``[K, C]`` features of K object crops (``C = widths.x['object']``)."""


@runtime_checkable
class DetectorBackend(Protocol):
    """What a detector backend provides (structural: no base class to inherit)."""

    #: The name it is registered under (``DetectorConfig.arch``).
    name: str

    def fingerprint(self) -> dict:
        """JSON-serialisable identity of its detections: part of the feature-cache key."""

    def describe(self) -> str:
        """One line naming the detector and its weights, for pictures, exports and tables."""

    def detect(self, images: list[Image.Image]) -> list[Detections]:
        """Per photo, at most ``top_k`` detections, the most confident first."""


_VISION: dict[str, Callable[[VisionConfig], VisionBackend]] = {}
_DETECTORS: dict[str, Callable[[DetectorConfig], DetectorBackend]] = {}

F = TypeVar('F', bound=Callable)


def _register(registry: dict, kind: str, name: str, factory: F) -> F:
    if name in registry and registry[name] is not factory:
        raise ValueError(f"{kind} backend name {name!r} is taken by {registry[name]!r}")
    registry[name] = factory
    return factory


def register_vision(name: str, factory: Callable[[VisionConfig], VisionBackend]):
    """Makes ``VisionConfig(arch=name)`` build ``factory(config)``."""
    return _register(_VISION, 'vision', name, factory)


def register_detector(name: str, factory: Callable[[DetectorConfig], DetectorBackend]):
    """Makes ``DetectorConfig(arch=name)`` build ``factory(config)``."""
    return _register(_DETECTORS, 'detector', name, factory)


def vision_names() -> list[str]:
    """The registered vision backends (``VisionConfig.arch``, ``--set data.vision_arch=``)."""
    return sorted(_VISION)


def detector_names() -> list[str]:
    """The registered detector backends (``DetectorConfig.arch``)."""
    return sorted(_DETECTORS)


def vision_backend(config: VisionConfig) -> VisionBackend:
    """The vision backend ``config.arch`` names, built from ``config`` (no weights loaded yet).

    Raises:
        ValueError: an unknown name (the message lists the known ones), or
            settings the backend cannot use.
    """
    if config.arch not in _VISION:
        raise ValueError(f"unknown vision backend {config.arch!r} (VisionConfig.arch, data.vision_arch); "
                         f"known: {', '.join(vision_names())}")
    return _VISION[config.arch](config)


def detector_backend(config: DetectorConfig) -> DetectorBackend | None:
    """The detector backend ``config.arch`` names, or :obj:`None` for
    ``weights=None`` (no detector: every image has no object).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
        FileNotFoundError: the backend's weights do not exist.
    """
    if not config.enabled:
        return None
    if config.arch not in _DETECTORS:
        raise ValueError(f"unknown detector backend {config.arch!r} (DetectorConfig.arch, "
                         f"data.detector_arch); known: {', '.join(detector_names())}")
    return _DETECTORS[config.arch](config)


def describe_backends(vision: VisionBackend, detector: DetectorBackend | None) -> str:
    """``'<vision backend>; <detector>'``: what made a graph's visual features
    (``g.visual_backend``)."""
    return f"{vision.describe()}; {detector.describe() if detector is not None else 'no detector'}"


def _descriptors(config: VisionConfig) -> DescriptorBackbone:
    # The descriptors read the crop size and the pyramid grid; they have no weights.
    return DescriptorBackbone(DescriptorConfig(image_size=config.image_size, scale_grid=config.scale_grid))


register_vision('resnet50', ResNetBackend)
register_vision('resnet152', ResNetBackend)
register_vision('descriptors', _descriptors)
register_detector('yolo', ObjectDetector)
register_detector('cascade', cascade_detector)
