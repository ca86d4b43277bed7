r"""Frozen ResNet backbone: global, grid-region and pyramid-scale features.

:class:`VisionConfig` holds the settings of every vision backend; its ``arch``
names one in the registry of :mod:`graphmner.features.backends` (the ResNets
of this file as :class:`ResNetBackend`, the weight-free
:class:`~graphmner.features.descriptors.DescriptorBackbone` as ``'descriptors'``).

One forward pass over a batch of photos gives, per photo,

* the global average-pooled vector (the ``image`` node),
* every cell of the last stage, 7x7 = 49 at 224 px (the ``region`` nodes),
* each of the four stages (``layer1`` .. ``layer4``) average-pooled to a
  ``scale_grid x scale_grid`` grid and zero-padded to the last stage's width
  (the ``scale`` nodes, as in HVPNeT/GMF's visual pyramid); with
  ``scale_grid=0`` each stage's whole map at its own resolution instead
  (56 / 28 / 14 / 7 cells a side at 224 px), packed without padding into rows
  of the last stage's width (:func:`~graphmner.features.grid.pack_cells`: a
  row of stage ``l`` holds ``2048 / C_l`` adjacent cells), for GMF's
  ``pyramid='native'``,

each cell with its box in normalised xyxy coordinates of the ORIGINAL photo.
Object crops go through the same network (:meth:`VisionBackbone.encode_crops`).

Preprocessing is the one the MNER papers use: ``Resize(256) ->
CenterCrop(224) -> ToTensor -> Normalize(ImageNet)``. Because of the centre
crop, cell boxes of a non-square photo cover only its central square; the
parts cut away belong to no cell.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from graphmner.features.grid import (
    NATIVE_GRID,
    adaptive_edges,
    cells,
    even_edges,
    pack_cells,
    to_image_coords,
)
from graphmner.features.types import VISUAL_NODES, NodeFeatures, VisualWidths

RESNETS: Final[tuple[str, ...]] = ('resnet50', 'resnet152')

#: Channels of stages 1-4 (``layer1`` .. ``layer4``) of each ResNet: the
#: pyramid level widths; the last is the ``x`` width of every visual node.
STAGE_WIDTHS: Final[dict[str, tuple[int, ...]]] = {'resnet50': (256, 512, 1024, 2048),
                                                    'resnet152': (256, 512, 1024, 2048)}

IMAGENET_MEAN: Final = (0.485, 0.456, 0.406)
IMAGENET_STD: Final = (0.229, 0.224, 0.225)

#: ``weights='imagenet'`` means the weights ``pretrained=True`` gave, which
#: are the ones the MNER papers used.
_IMAGENET_ALIAS: Final = 'IMAGENET1K_V1'


@dataclass(frozen=True)
class VisionConfig:
    r"""Settings of a vision backend (:func:`graphmner.features.backends.vision_backend`
    builds the one ``arch`` names).

    Args:
        arch (str, optional): The backend's registered name: ``'resnet50'``,
            ``'resnet152'`` (:class:`ResNetBackend`), or ``'descriptors'`` for
            the weight-free
            :class:`~graphmner.features.descriptors.DescriptorBackbone` (which
            reads ``image_size`` and ``scale_grid`` and ignores every other
            setting); :func:`~graphmner.features.backends.vision_names` lists
            them all. (default: :obj:`'resnet50'`)
        weights (str or os.PathLike, optional): ``'imagenet'`` (torchvision's
            ``IMAGENET1K_V1``, read from the torch hub cache, never
            downloaded), another torchvision weight name such as
            ``'IMAGENET1K_V2'``, the path of a local state dict, or
            :obj:`None` for random weights (tests only). Ignored by
            ``'descriptors'``, which has no weights.
            (default: :obj:`'imagenet'`)
        image_size (int, optional): Side of the centre crop fed to the
            network. (default: :obj:`224`)
        resize_size (int, optional): Shorter side after resizing, before the
            crop; :obj:`None` keeps the papers' 256/224 ratio.
            (default: :obj:`None`)
        scale_grid (int, optional): Each stage is pooled to
            ``scale_grid x scale_grid`` cells; ``0``
            (:data:`~graphmner.features.grid.NATIVE_GRID`): every stage at its
            own resolution, packed (:func:`~graphmner.features.grid.pack_cells`).
            (default: :obj:`2`)
        seed (int, optional): Seed of the random initialisation when
            ``weights`` is :obj:`None`, so random features are reproducible
            and cacheable. (default: :obj:`0`)
        device (str, optional): Where the network runs; not part of the
            feature identity. (default: :obj:`'cpu'`)
    """

    arch: str = 'resnet50'
    weights: str | os.PathLike | None = 'imagenet'
    image_size: int = 224
    resize_size: int | None = None
    scale_grid: int = 2
    seed: int = 0
    device: str = 'cpu'

    def __post_init__(self):
        if self.image_size < 32:
            raise ValueError(f"VisionConfig.image_size must be at least 32 "
                             f"(got {self.image_size})")
        if self.resize < self.image_size:
            raise ValueError(
                f"VisionConfig.resize_size must be at least image_size="
                f"{self.image_size} (got {self.resize_size})")

    @property
    def resize(self) -> int:
        """The effective shorter side after resizing."""
        if self.resize_size is not None:
            return self.resize_size
        return round(self.image_size * 256 / 224)


class ResNetBackend:
    r"""The vision backend of a frozen torchvision ResNet (``'resnet50'``,
    ``'resnet152'``): its identity and widths without loading it, and its
    features from a :class:`VisionBackbone` built on first use, so a run whose
    features are all cached never loads the weights.

    Args:
        config (VisionConfig): The settings (``arch`` one of :data:`RESNETS`).

    Raises:
        ValueError: ``arch`` is no ResNet, or ``scale_grid`` is finer than the
            last stage.
    """

    def __init__(self, config: VisionConfig):
        if config.arch not in RESNETS:
            raise ValueError(f"ResNetBackend builds one of {RESNETS} (got arch={config.arch!r})")
        last_stage = -(-config.image_size // 32)
        if not (config.scale_grid == NATIVE_GRID or 1 <= config.scale_grid <= last_stage):
            raise ValueError(
                f"VisionConfig.scale_grid must be between 1 and {last_stage}, "
                f"the last stage's size at image_size={config.image_size}, or {NATIVE_GRID} "
                f"for every stage at its own resolution (got {config.scale_grid})")
        self.config = config
        self.name = config.arch
        self._network: VisionBackbone | None = None

    @property
    def widths(self) -> VisualWidths:
        """Every node is the last stage wide; each pyramid level is its stage's channels."""
        stages = STAGE_WIDTHS[self.config.arch]
        return VisualWidths({t: stages[-1] for t in VISUAL_NODES}, stages)

    def describe(self) -> str:
        """The backbone and its weights (a file by its name, without reading it)."""
        c = self.config
        if c.weights is None:
            return f'{c.arch} (RANDOM weights)'
        if _torchvision_weights(c) is not None:
            return f'{c.arch} ({c.weights})'
        return f'{c.arch} ({Path(c.weights).name})'

    def fingerprint(self) -> dict:
        """What determines the features: the settings, minus the device,
        with ``weights`` replaced by the identity of the weights (a
        checkpoint name or a file's SHA-256). Feeds the cache key.
        """
        out = asdict(self.config)
        del out['device']
        out['resize_size'] = self.config.resize
        out['weights'] = _weights_identity(self.config)
        if self.config.weights is not None:
            del out['seed']
        return out

    @property
    def network(self) -> VisionBackbone:
        if self._network is None:
            self._network = VisionBackbone(self.config)
            built = self._network.stage_widths
            if built != STAGE_WIDTHS[self.config.arch]:
                raise RuntimeError(f'{self.config.arch} has stage widths {built}, not the declared '
                                   f'{STAGE_WIDTHS[self.config.arch]}')
        return self._network

    def extract(self, images: list[Image.Image]) -> list[dict[str, NodeFeatures]]:
        """The ``image``, ``region`` and ``scale`` nodes of each photo."""
        return self.network.extract(images)

    def encode_crops(self, crops: list[Image.Image]) -> Tensor:
        """``[K, C]`` features of object crops."""
        return self.network.encode_crops(crops)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.describe()})'


class VisionBackbone(nn.Module):
    r"""A frozen torchvision ResNet returning MNER image features.

    The module is always in eval mode (``train()`` is a no-op, so batch-norm
    statistics never change inside a trainable model) and no parameter
    requires gradients.

    Args:
        config (VisionConfig, optional): The settings.
            (default: :obj:`VisionConfig()`)

    Raises:
        FileNotFoundError: ``weights`` names ImageNet weights missing from
            the torch hub cache, or a path that does not exist.

    Example:
        >>> backbone = VisionBackbone(VisionConfig(weights=None))
        >>> feats = backbone.extract([Image.new('RGB', (320, 240))])
        >>> feats[0]['region'].x.shape
        torch.Size([49, 2048])
    """

    def __init__(self, config: VisionConfig = VisionConfig()):
        super().__init__()
        if config.arch not in RESNETS:
            raise ValueError(f"VisionBackbone builds one of {RESNETS} (got arch={config.arch!r}); "
                             f"graphmner.features.backends.vision_backend(config) builds any backend")
        self.config = config
        resnet = _build_resnet(config)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu,
                                  resnet.maxpool)
        self.stages = nn.ModuleList(
            [resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4])
        self.out_channels: int = resnet.fc.in_features
        #: Output channels of stages 1-4.
        self.stage_widths: tuple[int, ...] = tuple(_out_channels(stage) for stage in self.stages)
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(3, 1, 1),
                             persistent=False)
        self.requires_grad_(False)
        self.eval()
        self.to(config.device)

    def train(self, mode: bool = True) -> VisionBackbone:
        # Frozen: a parent's .train() must not switch batch norm to batch
        # statistics.
        return super().train(False)

    def forward(self, pixels: Tensor) -> list[Tensor]:
        r"""Runs the network on normalised pixels.

        Args:
            pixels (torch.Tensor): ``[B, 3, H, W]`` from :meth:`preprocess`.

        Returns:
            list[torch.Tensor]: The four stage maps ``[B, C_l, H_l, W_l]``.
        """
        x = self.stem(pixels)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def preprocess(self, images: list[Image.Image]) -> tuple[Tensor, Tensor]:
        r"""``Resize -> CenterCrop -> ToTensor -> Normalize`` on RGB images.

        Returns:
            (torch.Tensor, torch.Tensor): Pixels ``[B, 3, S, S]`` on the
            device and, per image, the crop window ``[B, 4]`` in normalised
            xyxy coordinates of the original image.
        """
        size, resize = self.config.image_size, self.config.resize
        pixels, windows = [], []
        for img in images:
            resized = TF.resize(img, [resize])
            width, height = resized.size
            # torchvision's CenterCrop rounding, so the window is exact.
            top = int(round((height - size) / 2.0))
            left = int(round((width - size) / 2.0))
            crop = TF.crop(resized, top, left, size, size)
            pixels.append(TF.to_dtype(TF.to_image(crop), torch.float32,
                                      scale=True))
            windows.append((left / width, top / height, (left + size) / width,
                            (top + size) / height))
        device = self.mean.device
        pixels = torch.stack(pixels).to(device)
        pixels = (pixels - self.mean) / self.std
        return pixels, torch.tensor(windows, dtype=torch.float32)

    # no_grad, not inference_mode: inference tensors could not be saved for
    # backward by the trainable layers that consume these features.
    @torch.no_grad()
    def extract(self, images: list[Image.Image]) -> list[dict[str, NodeFeatures]]:
        r"""Global, region and scale features of a batch, in one forward pass.

        Args:
            images (list[PIL.Image.Image]): RGB images of any size.

        Returns:
            list[dict[str, NodeFeatures]]: One per image, its ``image``
            (``[1, C]``), ``region`` (``[R, C]``, ``box``) and ``scale`` nodes
            (``[S, C]``, each stage's channels zero-padded to ``C``; ``level``,
            ``box``), float32 on the CPU.
        """
        if not images:
            return []
        pixels, windows = self.preprocess(images)
        maps = self(pixels)
        last = maps[-1]
        batch, channels, height, width = last.shape

        image = last.mean(dim=(2, 3))                       # [B, C]
        regions = last.flatten(2).transpose(1, 2)           # [B, H*W, C]
        region_cells = cells(even_edges(height), even_edges(width))

        grid = self.config.scale_grid
        scales, scale_cells, levels = [], [], []
        for level, fmap in enumerate(maps):
            if grid == NATIVE_GRID:
                packed, boxes = pack_cells(fmap, channels)  # [B, R_l, C], [R_l, 4]
                scales.append(packed)
                scale_cells.append(boxes)
            else:
                pooled = F.adaptive_avg_pool2d(fmap, grid)  # [B, C_l, g, g]
                pooled = pooled.flatten(2).transpose(1, 2)  # [B, g*g, C_l]
                scales.append(F.pad(pooled, (0, channels - pooled.size(-1))))
                scale_cells.append(
                    cells(adaptive_edges(fmap.size(2), grid),
                          adaptive_edges(fmap.size(3), grid)))
            levels.append(torch.full((scales[-1].shape[1], ), level, dtype=torch.long))
        scales = torch.cat(scales, dim=1)                   # [B, S, C]
        scale_cells = torch.cat(scale_cells)                # [S, 4]
        levels = torch.cat(levels)

        image, regions, scales = (t.float().cpu()
                                  for t in (image, regions, scales))
        # Clones, not views: torch.save writes a view's whole storage, and
        # each image's features are cached on their own.
        return [
            {'image': NodeFeatures(image[i].view(1, -1).clone()),
             'region': NodeFeatures(regions[i].clone(), {'box': to_image_coords(region_cells, windows[i])}),
             'scale': NodeFeatures(scales[i].clone(), {'box': to_image_coords(scale_cells, windows[i]),
                                                       'level': levels.clone()})}
            for i in range(batch)
        ]

    @torch.no_grad()
    def encode_crops(self, crops: list[Image.Image]) -> Tensor:
        r"""Global pooled vectors of object crops, in one forward pass.

        Crops get the same preprocessing as whole photos, as UMGF and
        HVPNeT do.

        Args:
            crops (list[PIL.Image.Image]): RGB crops of any size.

        Returns:
            torch.Tensor: ``[K, C]`` float32 on the CPU (``[0, C]`` for no
            crops).
        """
        if not crops:
            return torch.zeros(0, self.out_channels)
        pixels, _ = self.preprocess(crops)
        return self(pixels)[-1].mean(dim=(2, 3)).float().cpu()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.config.arch}, '
                f'weights={_weights_identity(self.config)!r}, '
                f'image_size={self.config.image_size})')


def _out_channels(stage: nn.Sequential) -> int:
    """Output channels of a ResNet stage (its last block's last batch norm)."""
    return [m for m in stage.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features


def _torchvision_weights(config: VisionConfig):
    """The torchvision weight enum ``config.weights`` names, or None when it
    is a path.
    """
    if config.weights is None or not isinstance(config.weights, str):
        return None
    name = (_IMAGENET_ALIAS if config.weights == 'imagenet' else
            config.weights)
    enum = torchvision.models.get_model_weights(config.arch)
    return enum.__members__.get(name)


def _hub_checkpoint(weights) -> Path:
    filename = Path(urlparse(weights.url).path).name
    return Path(torch.hub.get_dir()) / 'checkpoints' / filename


def _weights_identity(config: VisionConfig) -> str:
    if config.weights is None:
        return f'random(seed={config.seed}, zero_init_residual)'
    tv = _torchvision_weights(config)
    if tv is not None:
        # torchvision file names carry a hash prefix of their contents.
        return f'torchvision:{_hub_checkpoint(tv).name}'
    return f'sha256:{file_sha256(_local_weights(config))}'


def _local_weights(config: VisionConfig) -> Path:
    path = Path(config.weights).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(
            f"VisionConfig.weights (--vision-weights) is "
            f"{str(config.weights)!r}, which is neither 'imagenet', a "
            f"torchvision weight name of {config.arch}, nor an existing file "
            f"(looked for '{path}')")
    return path


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _build_resnet(config: VisionConfig) -> torchvision.models.ResNet:
    if config.weights is None:
        warnings.warn(
            f"VisionConfig.weights is None: the {config.arch} has RANDOM "
            f"weights and its features are meaningless; use them only for "
            f"tests and timing. Set VisionConfig.weights (--vision-weights) "
            f"to 'imagenet' or a state-dict path for real features.",
            UserWarning, stacklevel=3)
        # Seeded, so random features are reproducible and can be cached. Each residual block's last
        # BatchNorm starts at zero (He et al.'s zero-gamma init), so a block passes its input on: the
        # features keep a real backbone's magnitudes. With the default init they grew to ~1e8 through
        # 50 blocks, past float16, and made timings on them unrepresentative (GMF's prefix attention
        # then trained 2x slower on denormal floats).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            return torchvision.models.get_model(config.arch, weights=None, zero_init_residual=True)

    model = torchvision.models.get_model(config.arch, weights=None)
    tv = _torchvision_weights(config)
    if tv is not None:
        path = _hub_checkpoint(tv)
        if not path.is_file():
            raise FileNotFoundError(
                f"VisionConfig.weights={str(config.weights)!r} "
                f"(--vision-weights) needs torchvision's {config.arch} "
                f"checkpoint '{path.name}' in the torch hub cache, and "
                f"'{path}' does not exist. Nothing is downloaded "
                f"automatically: download {tv.url} to '{path}', or set "
                f"VisionConfig.weights (--vision-weights) to the path of a "
                f"local state dict.")
    else:
        path = _local_weights(config)
    state = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    missing, unexpected = model.load_state_dict(state, strict=False)
    # The classifier is never used, so a backbone-only file is fine.
    missing = [k for k in missing if not k.startswith('fc.')]
    if missing or unexpected:
        raise RuntimeError(
            f"VisionConfig.weights (--vision-weights) '{path}' is not a "
            f"torchvision {config.arch} state dict: {len(missing)} missing "
            f"keys (e.g. {missing[:3]}), {len(unexpected)} unexpected keys "
            f"(e.g. {unexpected[:3]})")
    return model
