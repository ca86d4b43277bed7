r"""On-disk cache of :class:`~graphmner.features.types.ImageFeatures`.

The vision backbone and the detector are frozen, so an image's features
depend only on the image file's bytes and the extractor settings. Each entry
is one ``.pt`` file at

``<root>/<settings key[:16]>/<sha256[:2]>/<sha256 of the image bytes>.pt``

where the settings key is the SHA-256 of the settings as canonical JSON,
the storage dtype included. Each settings folder holds a ``settings.json``
saying what produced it, so stale folders can be recognised and deleted.

The feature matrices (every node type's ``x``) are stored in float16 by
default, half the disk of float32 (the ~12,000 photos of Twitter-2015 and 2017
with ResNet-50, 70 vectors of 2,048 each: 3.4 GB instead of 6.9), and read
back as float32; a matrix with a value beyond float16's range (65,504) is
stored in float32. :meth:`FeatureCache.put` returns the features as a later
:meth:`FeatureCache.get` gives them, so graphs built right after extraction
equal graphs built from the cache. Files are written atomically (a
temporary file, then :func:`os.replace`), so an interrupted run leaves no
half-written entry and two processes filling one cache never mix their bytes,
and read with ``weights_only=True``, so loading a cache never runs pickled code.

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

from graphmner.features.types import VISUAL_NODES, ImageFeatures
from graphmner.io import atomic_write

#: Bumped whenever the meaning of cached features changes, so old entries
#: are no longer found (2: features keyed by node type).
FEATURES_VERSION: Final = 2

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
        return self.dir / digest[:2] / f'{digest}.pt'

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
            entry = torch.load(path, map_location='cpu', weights_only=True)
            problem = self._entry_problem(entry)
        except Exception as e:  # a cut-off or garbled file fails in many ways inside torch.load
            problem = f'unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})'
        if problem is None:
            return self._as_read(entry['features'])
        self.rejected.append((path, problem))
        log.warning("feature cache entry '%s' is %s: recomputing it", path, problem)
        return None

    def _entry_problem(self, entry: Any) -> str | None:
        if not isinstance(entry, dict) or not {'version', 'settings', 'features'} <= set(entry):
            return 'not a feature cache entry (an older format?)'
        if entry['version'] != FEATURES_VERSION or entry['settings'] != self.key:
            return (f"of another version or settings (version {entry['version']!r}, expected "
                    f'{FEATURES_VERSION})')
        return features_problem(entry['features'])

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
        entry = {'version': FEATURES_VERSION, 'settings': self.key, 'features': stored}
        atomic_write(path, lambda f: torch.save(entry, f))
        return self._as_read(stored)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}('{self.dir}')"
