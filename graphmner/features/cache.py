r"""On-disk cache of :class:`~graphmner.features.types.ImageFeatures`.

The vision backbone and the detector are frozen, so an image's features
depend only on the image file's bytes and the extractor settings. Each entry
is one safetensors file at

``<root>/<settings key[:16]>/<sha256[:2]>/<sha256 of the image bytes>.safetensors``

holding every tensor as ``<node type>.<key>`` (``region.x``, ``object.box``,
...) and, in its JSON header, the format version, the settings key and each
named node type's names (``object.names``, a JSON list). The settings key
is the SHA-256 of the settings as canonical JSON, the storage dtype and the
format version included. Each settings folder holds a ``settings.json``
saying what produced it, so stale folders can be recognised and deleted.

The feature matrices (every node type's ``x``) are stored in float16 by
default, half the disk of float32 (the ~12,000 photos of Twitter-2015 and 2017
with ResNet-50, 70 vectors of 2,048 each: 3.4 GB instead of 6.9), and read
back as float32; a matrix with a value beyond float16's range (65,504) is
stored in float32. :meth:`FeatureCache.put` returns the features as a later
:meth:`FeatureCache.get` gives them, so graphs built right after extraction
equal graphs built from the cache. Files are written atomically (a
temporary file, then :func:`os.replace`), so an interrupted run leaves no
half-written entry and two processes filling one cache never mix their bytes.
An entry is raw tensor bytes behind a JSON header, never a pickle, so loading a
cache never runs code (and takes ~0.3 ms, where the pickles of version 2 took
~1.6 ms in ``torch.load(weights_only=True)``'s pure-Python unpickler).

An entry records its format version and settings key beside the features.
One that cannot be read, is of another version or settings, or whose tensors
do not have the shapes of :data:`~graphmner.features.types.VISUAL_NODES` (or hold NaN / inf) is never
returned: :meth:`FeatureCache.get` logs it, counts it in
:attr:`FeatureCache.rejected` and reports a miss, so the features are
recomputed and the entry rewritten.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import torch
from safetensors.torch import load as safetensors_tensors
from safetensors.torch import save as safetensors_bytes

from graphmner.features.types import VISUAL_NODES, ImageFeatures
from graphmner.io import atomic_write

#: Bumped whenever the meaning of cached features changes, so old entries
#: are no longer found (2: features keyed by node type; 3: safetensors files,
#: not ``torch.save`` pickles). The version is part of the settings key, so a
#: new version fills a new settings folder; the old one is never read again and
#: can be deleted (its ``settings.json`` names the version).
FEATURES_VERSION: Final = 3

#: The file ending of an entry.
ENTRY_SUFFIX: Final = '.safetensors'

#: How feature matrices are stored unless told otherwise (read back as float32).
STORAGE_DTYPE: Final = torch.float16

log = logging.getLogger(__name__)


def settings_key(settings: Mapping[str, Any]) -> str:
    """The SHA-256 hex digest of ``settings`` as canonical JSON."""
    text = json.dumps(settings, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()


def bytes_sha256(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``: the cache key of an image."""
    return hashlib.sha256(data).hexdigest()


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether no value of ``tensor`` is NaN or inf (true for an integer or empty one): its
    minimum and maximum are finite, :func:`torch.aminmax` giving NaN for both if any value is
    NaN. ~20x faster on a CPU than ``torch.isfinite(tensor).all()``, which builds bool tensors."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return True
    low, high = torch.aminmax(tensor)
    return math.isfinite(low.item()) and math.isfinite(high.item())


def features_problem(stored: Any) -> str | None:
    """What is wrong with a stored :class:`ImageFeatures` dict, or None: every
    node type of :data:`VISUAL_NODES` present with its ``x`` ``[N, C]`` (one
    width ``C``) and every attribute of its spec, ``N`` rows in each (and in
    its names), finite values."""
    if not isinstance(stored, dict):
        return f'not a dict of features but a {type(stored).__name__}'
    missing = [t for t in VISUAL_NODES if not isinstance(stored.get(t), dict)]
    if missing:
        return f'missing {missing}'
    width = None
    for node_type, spec in VISUAL_NODES.items():
        node = stored[node_type]
        absent = [k for k in ('x', *spec.attrs, *(['names'] if spec.names else [])) if k not in node]
        if absent:
            return f'missing {node_type} {absent}'
        names = node.get('names')
        if spec.names and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            return f'of the wrong type ({node_type} names is not a list of str)'
        wrong = [k for k in ('x', *spec.attrs) if not isinstance(node[k], torch.Tensor)]
        if wrong:
            return f'of the wrong type ({node_type} {wrong} not tensors)'
        x = node['x']
        if x.dim() != 2 or x.shape[1] == 0 or (width is not None and x.shape[1] != width):
            return (f'of the wrong shape ({node_type}.x {tuple(x.shape)}, expected '
                    f"[N, {width if width is not None else 'C'}])")
        width, n = x.shape[1], x.shape[0]
        if spec.rows is not None and n != spec.rows:
            return f'of the wrong shape ({node_type}.x {tuple(x.shape)}, expected ({spec.rows}, {width}))'
        if spec.names and len(node['names']) != n:
            return f"of the wrong shape ({node_type} names {len(node['names'])}, expected {n})"
        for key, (shape, _) in spec.attrs.items():
            got = tuple(node[key].shape)
            if got != (n, *shape):
                return f'of the wrong shape ({node_type}.{key} {got}, expected {(n, *shape)})'
        if not all(all_finite(node[k]) for k in ('x', *spec.attrs)):
            return 'not finite (NaN or inf in it)'
    return None


def read_entry(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the header metadata of the safetensors file at ``path``.

    Read whole into memory, the tensors copied out of it: never a memory map, which a file
    rewritten in place would turn into a crash (SIGBUS) in whoever still holds its tensors.

    Raises:
        SafetensorError: ``path`` is not a whole safetensors file (garbled, cut off, a pickle).
    """
    data = Path(path).read_bytes()
    tensors = safetensors_tensors(data)  # checks the whole layout first
    # The format: an 8-byte little-endian header length, then the JSON header, its metadata
    # (str -> str, checked by the call above) under '__metadata__'.
    header_length = int.from_bytes(data[:8], 'little')
    return tensors, json.loads(data[8:8 + header_length]).get('__metadata__') or {}


def nested(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{'<node type>.<key>': value}`` as ``{node type: {key: value}}``, as
    :func:`features_problem` takes it; a name without a dot is no node's and left out."""
    stored: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        node_type, dot, key = name.partition('.')
        if dot:
            stored.setdefault(node_type, {})[key] = value
    return stored


class FeatureCache:
    r"""A folder of per-image feature files for one extractor setting.

    Args:
        root (str or os.PathLike): The cache folder, shared by all settings.
        settings (Mapping[str, Any]): JSON-serialisable description of
            everything that determines the features (e.g. the configs'
            ``fingerprint()``).
        dtype (torch.dtype, optional): how the feature matrices are stored:
            :obj:`torch.float16` or :obj:`torch.float32`; part of the key.
            (default: :obj:`torch.float16`)
    """

    def __init__(self, root: str | os.PathLike, settings: Mapping[str, Any],
                 dtype: torch.dtype = STORAGE_DTYPE):
        if dtype not in (torch.float16, torch.float32):
            raise ValueError(f'FeatureCache stores torch.float16 or torch.float32, got {dtype}')
        self.dtype = dtype
        self.settings = {'features_version': FEATURES_VERSION, **settings,
                         'storage_dtype': str(dtype).removeprefix('torch.')}
        self.key = settings_key(self.settings)
        self.dir = Path(root) / self.key[:16]
        #: ``(path, problem)`` of every entry :meth:`get` refused, oldest first.
        self.rejected: list[tuple[Path, str]] = []

    def path(self, digest: str) -> Path:
        """Where the features of the image with SHA-256 ``digest`` live."""
        return self.dir / digest[:2] / f'{digest}{ENTRY_SUFFIX}'

    def __contains__(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def get(self, digest: str) -> ImageFeatures | None:
        """The cached features, or :obj:`None` on a miss. An entry that is
        unreadable, of another version or settings, or malformed counts as a
        miss: it is logged, appended to :attr:`rejected` and overwritten by
        the next :meth:`put`.
        """
        path = self.path(digest)
        if not path.is_file():
            return None
        try:
            flat, header = read_entry(path)
            problem = self._header_problem(header)
            if problem is None:
                flat.update((name, json.loads(value)) for name, value in header.items() if '.' in name)
                stored = nested(flat)
                problem = features_problem(stored)
        except Exception as e:  # a cut-off or garbled file fails in many ways inside safetensors or json
            problem = f'unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})'
        if problem is None:
            return self._as_read(stored)
        self.rejected.append((path, problem))
        log.warning("feature cache entry '%s' is %s: recomputing it", path, problem)
        return None

    def _header_problem(self, header: Mapping[str, str]) -> str | None:
        if not {'version', 'settings'} <= set(header):
            return 'not a feature cache entry (no version and settings in its header)'
        if header['version'] != str(FEATURES_VERSION) or header['settings'] != self.key:
            return (f"of another version or settings (version {header['version']!r}, expected "
                    f"'{FEATURES_VERSION}')")
        return None

    @staticmethod
    def _as_read(stored: dict[str, Any]) -> ImageFeatures:
        return ImageFeatures.from_dict({t: {**node, 'x': node['x'].float()} for t, node in stored.items()})

    def _narrowed(self, matrix: torch.Tensor) -> torch.Tensor:
        narrow = matrix.to(self.dtype)
        # A value beyond float16's range turns inf: that matrix stays float32.
        overflow = bool(torch.isinf(narrow).any()) and not bool(torch.isinf(matrix).any())
        return matrix if overflow else narrow

    def put(self, digest: str, features: ImageFeatures) -> ImageFeatures:
        """Stores ``features`` atomically, the feature matrices in :attr:`dtype`,
        and returns them as :meth:`get` will (float32)."""
        if not (self.dir / 'settings.json').is_file():
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.dir / 'settings.json',
                          lambda f: f.write(json.dumps(
                              self.settings, indent=2, sort_keys=True)
                              .encode()))
        path = self.path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Only x narrows: boxes, scores and ids keep their dtypes.
        stored = {t: {**node, 'x': self._narrowed(node['x'])} for t, node in features.to_dict().items()}
        # safetensors refuses non-contiguous tensors and tensors sharing memory: each gets its own copy.
        flat = {f'{t}.{k}': v for t, node in stored.items() for k, v in node.items()}
        tensors = {name: v.clone(memory_format=torch.contiguous_format)
                   for name, v in flat.items() if isinstance(v, torch.Tensor)}
        names = {name: json.dumps(v) for name, v in flat.items() if not isinstance(v, torch.Tensor)}
        header = {'version': str(FEATURES_VERSION), 'settings': self.key, **names}
        data = safetensors_bytes(tensors, metadata=header)
        atomic_write(path, lambda f: f.write(data))
        return self._as_read(stored)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}('{self.dir}')"
