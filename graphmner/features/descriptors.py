r"""Weight-free visual features: classical colour, gradient and texture descriptors.

No pretrained vision weights can be had offline, and a randomly initialised
ResNet describes every photo with nearly the same vector (mean pairwise cosine
0.998 across the scikit-image photos), which the fusion layers learn to ignore.
:class:`DescriptorBackbone` describes the photo from its pixels alone, with
scikit-image, and fills the same node types as :class:`~graphmner.features.vision.VisionBackbone`,
so it drops in wherever a backbone is used: it is the vision backend registered as
``'descriptors'`` (``VisionConfig(arch='descriptors')``,
``GraphOptions(vision_arch='descriptors')``).

Every window (a grid cell, a pyramid cell, the whole photo or an object crop)
gets the same descriptor, the concatenation of (widths at the defaults, 42 in
all):

* a hue histogram (8 bins; each pixel votes with its saturation, so grey
  pixels cast no hue vote), a saturation (4) and a value histogram (4);
* the CIELAB mean and standard deviation (6): lightness and the signed
  opponent-colour axes a*, b*;
* a magnitude-weighted histogram of unsigned gradient orientations (9 bins,
  one HOG cell) and the mean gradient magnitude (1);
* a histogram of uniform local binary patterns (``P=8, R=1``: 10 codes).

Histograms are L1-normalised, then square-rooted (the Hellinger map, after
which a dot product compares distributions), so each histogram block has unit
norm, or is zero when nothing voted (the hue block of a grey photo).

Geometry: the photo is resized to ``image_size x image_size`` (its aspect
ratio is not kept, so every pixel belongs to a cell and boxes cover the whole
photo). ``region`` nodes are the cells of a grid of ``image_size // 32`` per
side (7 x 7 = 49 at 224 px, ResNet's last-stage cells); the ``scale`` pyramid
has ``levels`` levels, level ``l`` the photo resized to
``image_size / 2**l`` (finer to coarser texture, as ResNet's stages 1-4) and
cut into ``scale_grid x scale_grid`` cells, every level the same width (no zero
padding), or with ``scale_grid=0`` into cells of 4 px at every level (56 / 28 /
14 / 7 a side at 224 px: the resolution of ResNet's stages, for GMF's
``pyramid='native'``), row-major as :func:`~graphmner.features.grid.pack_cells`
lays out one-cell rows; the ``image`` node describes the whole photo as one window, and each
object crop is resized to ``image_size`` and described the same way.

These are not learned features: they separate photos by colour, edges and
texture, not by what they show, and say nothing about results with pretrained
backbones.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final

import numpy as np
import torch
from PIL import Image
from skimage import color, feature
from torch import Tensor

from graphmner.features.grid import NATIVE_GRID, cells
from graphmner.features.types import NodeFeatures, VisualWidths

#: Bumped whenever the descriptor's definition changes; part of the cache key.
DESCRIPTORS_VERSION: Final = 1

#: Pixels per side of a ``region`` cell, as ResNet's stride-32 last stage.
REGION_CELL: Final = 32

#: The smallest side, in pixels, of a pyramid cell at the coarsest level.
MIN_SCALE_CELL: Final = 4


@dataclass(frozen=True)
class DescriptorConfig:
    r"""Settings of :class:`DescriptorBackbone`.

    Args:
        image_size (int, optional): Side of the square the photo is resized to;
            ``region`` nodes are its ``image_size // 32`` per side cells.
            (default: :obj:`224`)
        scale_grid (int, optional): Each pyramid level is cut into
            ``scale_grid x scale_grid`` cells; ``0``
            (:data:`~graphmner.features.grid.NATIVE_GRID`): into cells of
            ``MIN_SCALE_CELL`` px, every level at its own resolution.
            (default: :obj:`2`)
        levels (int, optional): Pyramid levels; level ``l`` is the photo at
            ``image_size // 2**l`` pixels. (default: :obj:`4`)
        hue_bins (int, optional): Bins of the saturation-weighted hue
            histogram. (default: :obj:`8`)
        saturation_bins (int, optional): Bins of the saturation histogram.
            (default: :obj:`4`)
        value_bins (int, optional): Bins of the value (brightness) histogram.
            (default: :obj:`4`)
        orientations (int, optional): Bins of the gradient-orientation
            histogram over [0, 180) degrees. (default: :obj:`9`)
        lbp_points (int, optional): Neighbours ``P`` of the uniform local
            binary pattern, which has ``P + 2`` codes. (default: :obj:`8`)
        lbp_radius (int, optional): Radius ``R`` of the local binary pattern,
            in pixels. (default: :obj:`1`)
    """

    image_size: int = 224
    scale_grid: int = 2
    levels: int = 4
    hue_bins: int = 8
    saturation_bins: int = 4
    value_bins: int = 4
    orientations: int = 9
    lbp_points: int = 8
    lbp_radius: int = 1

    def __post_init__(self):
        if self.image_size < REGION_CELL:
            raise ValueError(f"DescriptorConfig.image_size must be at least {REGION_CELL} "
                             f"(got {self.image_size})")
        if self.levels < 1:
            raise ValueError(f"DescriptorConfig.levels must be at least 1 (got {self.levels})")
        coarsest = self.image_size >> (self.levels - 1)
        if not (self.scale_grid == NATIVE_GRID or 1 <= self.scale_grid <= coarsest // MIN_SCALE_CELL):
            raise ValueError(
                f"DescriptorConfig.scale_grid must be between 1 and {coarsest // MIN_SCALE_CELL}, "
                f"so that every cell of the coarsest level ({coarsest} px at image_size="
                f"{self.image_size}, levels={self.levels}) is at least {MIN_SCALE_CELL} px, or "
                f"{NATIVE_GRID} for cells of {MIN_SCALE_CELL} px at every level (got {self.scale_grid})")
        for name in ('hue_bins', 'saturation_bins', 'value_bins', 'orientations', 'lbp_points',
                     'lbp_radius'):
            if getattr(self, name) < 1:
                raise ValueError(f"DescriptorConfig.{name} must be at least 1 "
                                 f"(got {getattr(self, name)})")

    @property
    def grid(self) -> int:
        """Region cells per side."""
        return self.image_size // REGION_CELL

    def level_grid(self, level: int) -> int:
        """Cells per side of pyramid level ``level``."""
        if self.scale_grid == NATIVE_GRID:
            return (self.image_size >> level) // MIN_SCALE_CELL
        return self.scale_grid

    @property
    def width(self) -> int:
        """The descriptor's width: the ``x`` width of every visual node."""
        return (self.hue_bins + self.saturation_bins + self.value_bins + 6 + self.orientations + 1
                + self.lbp_points + 2)


class DescriptorBackbone:
    r"""Classical descriptors in the place of a vision backbone.

    A vision backend (:class:`~graphmner.features.backends.VisionBackend`)
    without weights, randomness or a device: the features are a deterministic
    function of the pixels and the config.

    Args:
        config (DescriptorConfig, optional): The settings.
            (default: :obj:`DescriptorConfig()`)

    Example:
        >>> backbone = DescriptorBackbone()
        >>> feats = backbone.extract([Image.new('RGB', (320, 240))])
        >>> feats[0]['region'].x.shape, feats[0]['scale'].x.shape
        (torch.Size([49, 42]), torch.Size([16, 42]))
    """

    #: The registered name (``VisionConfig.arch`` / ``GraphOptions.vision_arch``).
    name: Final = 'descriptors'

    def __init__(self, config: DescriptorConfig = DescriptorConfig()):
        self.config = config
        self.out_channels: int = config.width

    @property
    def widths(self) -> VisualWidths:
        """Every node and every pyramid level is the descriptor's width (no padding)."""
        return VisualWidths.uniform(self.config.width, self.config.levels)

    def fingerprint(self) -> dict:
        """What determines the features: every setting and the descriptor's
        version. Feeds the cache key."""
        return {'arch': self.name, 'version': DESCRIPTORS_VERSION, **asdict(self.config)}

    def describe(self) -> str:
        """A short name for pictures and logs."""
        return f'descriptors ({self.config.width}-d colour, gradient and LBP histograms; no weights)'

    def extract(self, images: list[Image.Image]) -> list[dict[str, NodeFeatures]]:
        r"""Global, region and scale descriptors of each photo.

        Args:
            images (list[PIL.Image.Image]): RGB images of any size.

        Returns:
            list[dict[str, NodeFeatures]]: One per image, its ``image``,
            ``region`` and ``scale`` nodes, float32.
        """
        cfg = self.config
        grid, grids = cfg.grid, [cfg.level_grid(level) for level in range(cfg.levels)]
        region_boxes = cells(*(_partition_edges(cfg.image_size, grid), ) * 2)
        scale_boxes = torch.cat([cells(*(_partition_edges(cfg.image_size >> level, g), ) * 2)
                                 for level, g in enumerate(grids)])
        scale_levels = torch.arange(cfg.levels).repeat_interleave(torch.tensor(grids) ** 2)
        out = []
        for image in images:
            finest = self._maps(image, cfg.image_size)
            scales = [finest.pool(grids[0])]
            scales += [self._maps(image, cfg.image_size >> level).pool(grids[level])
                       for level in range(1, cfg.levels)]
            out.append({
                'image': NodeFeatures(_tensor(finest.pool(1))),
                'region': NodeFeatures(_tensor(finest.pool(grid)), {'box': region_boxes.clone()}),
                'scale': NodeFeatures(_tensor(np.concatenate(scales)),
                                      {'box': scale_boxes.clone(), 'level': scale_levels.clone()})})
        return out

    def encode_crops(self, crops: list[Image.Image]) -> Tensor:
        r"""Whole-window descriptors of object crops (each resized to
        ``image_size``, as the photo is for its ``image`` node).

        Returns:
            torch.Tensor: ``[K, C]`` float32 (``[0, C]`` for no crops).
        """
        if not crops:
            return torch.zeros(0, self.out_channels)
        return _tensor(np.concatenate([self._maps(crop, self.config.image_size).pool(1) for crop in crops]))

    def _maps(self, image: Image.Image, size: int) -> _PixelMaps:
        pixels = np.asarray(image.convert('RGB').resize((size, size), Image.BILINEAR),
                            dtype=np.float64) / 255.0
        return _PixelMaps(pixels, self.config)

    def __repr__(self) -> str:
        c = self.config
        return (f'{self.__class__.__name__}(image_size={c.image_size}, scale_grid={c.scale_grid}, '
                f'width={c.width})')


class _PixelMaps:
    """Each pixel's histogram bins and weights for every descriptor block of a
    square photo, computed once and pooled over any grid."""

    def __init__(self, pixels: np.ndarray, config: DescriptorConfig):
        c = config
        self.size = pixels.shape[0]
        hsv = color.rgb2hsv(pixels)
        gray = color.rgb2gray(pixels)
        gy, gx = np.gradient(gray)
        magnitude = np.hypot(gx, gy)
        orientation = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned: [0, pi)
        # Edge-replicated, so border pixels are not compared with zeros outside the photo.
        r = c.lbp_radius
        padded = np.pad(np.round(gray * 255).astype(np.uint8), r, mode='edge')
        lbp = feature.local_binary_pattern(padded, c.lbp_points, r, method='uniform')[r:-r, r:-r]
        # (bin per pixel, weight per pixel or None for a count, number of bins)
        self.histograms = [
            (_bins(hsv[..., 0], c.hue_bins), hsv[..., 1], c.hue_bins),
            (_bins(hsv[..., 1], c.saturation_bins), None, c.saturation_bins),
            (_bins(hsv[..., 2], c.value_bins), None, c.value_bins),
        ]
        self.gradients = (_bins(orientation / np.pi, c.orientations), magnitude, c.orientations)
        self.lbp = (lbp.astype(np.int64), None, c.lbp_points + 2)
        # Lightness in [0, 100] and a*, b* within about +-100: all scaled to about unit range.
        self.lab = color.rgb2lab(pixels).reshape(-1, 3) / 100.0
        self.magnitude = magnitude

    def pool(self, grid: int) -> np.ndarray:
        """Descriptors of the ``grid x grid`` cells, row-major: ``[grid**2, width]``."""
        edges = np.searchsorted(_partition_starts(self.size, grid), np.arange(self.size), side='right') - 1
        cell = (edges[:, None] * grid + edges[None, :]).reshape(-1)  # [H*W] cell of each pixel
        cells = grid * grid
        count = np.bincount(cell, minlength=cells).astype(np.float64)[:, None]

        def histogram(bins, weights, n):
            h = np.bincount(cell * n + bins.reshape(-1),
                            weights=None if weights is None else weights.reshape(-1),
                            minlength=cells * n).reshape(cells, n).astype(np.float64)
            total = h.sum(1, keepdims=True)
            return np.sqrt(np.divide(h, total, out=np.zeros_like(h), where=total > 0))

        def mean(values):  # values [H*W, k] -> [cells, k]
            return np.stack([np.bincount(cell, weights=v, minlength=cells) for v in values.T], 1) / count

        lab_mean = mean(self.lab)
        lab_std = np.sqrt(np.maximum(mean(self.lab ** 2) - lab_mean ** 2, 0.0))
        return np.concatenate([
            *(histogram(*h) for h in self.histograms),
            lab_mean, lab_std,
            histogram(*self.gradients), mean(self.magnitude.reshape(-1, 1)),
            histogram(*self.lbp),
        ], axis=1)


def _bins(values: np.ndarray, n: int) -> np.ndarray:
    """Bin index of values in [0, 1] over ``n`` equal bins (1.0 in the last)."""
    return np.minimum((values * n).astype(np.int64), n - 1)


def _partition_starts(size: int, grid: int) -> np.ndarray:
    """First pixel of each of ``grid`` cells splitting ``size`` pixels as evenly as possible."""
    return -(-np.arange(grid) * size // grid)  # ceil(i * size / grid)


def _partition_edges(size: int, grid: int) -> Tensor:
    """Fractional start/end of the cells of :func:`_partition_starts`: ``[grid, 2]``."""
    starts = np.append(_partition_starts(size, grid), size) / size
    return torch.tensor(np.stack([starts[:-1], starts[1:]], 1), dtype=torch.float32)


def _tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
