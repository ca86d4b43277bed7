r"""On-disk cache of :class:`~graphmner.features.types.ImageFeatures`.

The vision backbone and the detector are frozen, so an image's features
depend only on the image file's bytes and the extractor settings. Each entry
is one ``.pt`` file at

``<root>/<settings key[:16]>/<sha256[:2]>/<sha256 of the image bytes>.pt``

where the settings key is the SHA-256 of the settings as canonical JSON,
the storage dtype included. Each settings folder holds a ``settings.json``
saying what produced it, so stale folders can be recognised and deleted.

The feature matrices (``image``, ``regions``, ``scales``, ``objects``) are
stored in float16 by default, half the disk of float32 (the ~12,000 photos of
Twitter-2015 and 2017 with ResNet-50, 70 vectors of 2,048 each: 3.4 GB instead
of 6.9), and read back as float32; a matrix with a value beyond float16's range (65,504) is
stored in float32. :meth:`FeatureCache.put` returns the features as a later
:meth:`FeatureCache.get` gives them, so graphs built right after extraction
equal graphs built from the cache. Files are written atomically (a
temporary file, then :func:`os.replace`), so an interrupted run leaves no
half-written entry and two processes filling one cache never mix their bytes,
and read with ``weights_only=True``, so loading a cache never runs pickled code.

An entry records its format version and settings key beside the features.
One that cannot be read, is of another version or settings, or whose tensors
do not have the shapes of :class:`ImageFeatures` (or hold NaN / inf) is never
returned: :meth:`FeatureCache.get` logs it, counts it in
:attr:`FeatureCache.rejected` and reports a miss, so the features are
recomputed and the entry rewritten.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import torch

from graphmner.features.types import ImageFeatures
from graphmner.io import atomic_write

#: Bumped whenever the meaning of cached features changes, so old entries
#: are no longer found.
FEATURES_VERSION: Final = 1

#: How feature matrices are stored unless told otherwise (read back as float32).
STORAGE_DTYPE: Final = torch.float16
#: The fields stored in the storage dtype; boxes, scores and ids keep theirs.
MATRICES: Final = ('image', 'regions', 'scales', 'objects')

log = logging.getLogger(__name__)


def settings_key(settings: Mapping[str, Any]) -> str:
    """The SHA-256 hex digest of ``settings`` as canonical JSON."""
    text = json.dumps(settings, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()


def bytes_sha256(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``: the cache key of an image."""
    return hashlib.sha256(data).hexdigest()


def features_problem(fields: Any) -> str | None:
    """What is wrong with a stored :class:`ImageFeatures` dict, or None: every
    field present, tensors of the documented shapes with one width ``C``,
    one row per object in each object field, finite values."""
    if not isinstance(fields, dict):
        return f'not a dict of features but a {type(fields).__name__}'
    names = [f.name for f in dataclasses.fields(ImageFeatures)]
    missing = [n for n in names if n not in fields]
    if missing:
        return f'missing {missing}'
    if not isinstance(fields['object_names'], list) or not all(isinstance(n, str)
                                                               for n in fields['object_names']):
        return 'of the wrong type (object_names is not a list of str)'
    tensors = {n: fields[n] for n in names if n != 'object_names'}
    wrong = [n for n, t in tensors.items() if not isinstance(t, torch.Tensor)]
    if wrong:
        return f'of the wrong type ({wrong} not tensors)'
    image = tensors['image']
    if image.dim() != 1 or image.numel() == 0:
        return f'of the wrong shape (image {tuple(image.shape)}, expected [C])'
    rows = lambda name: tensors[name].shape[0] if tensors[name].dim() else -1
    C, R, S, K = image.shape[0], rows('regions'), rows('scales'), len(fields['object_names'])
    expected = {'regions': (R, C), 'region_boxes': (R, 4), 'scales': (S, C), 'scale_levels': (S, ),
                'scale_boxes': (S, 4), 'objects': (K, C), 'object_boxes': (K, 4),
                'object_classes': (K, ), 'object_scores': (K, )}
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            return f'of the wrong shape ({name} {tuple(tensors[name].shape)}, expected {shape})'
    if not all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()):
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
        return ImageFeatures.from_dict({name: value.float() if name in MATRICES else value
                                        for name, value in stored.items()})

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
        stored = {name: self._narrowed(value) if name in MATRICES else value
                  for name, value in features.to_dict().items()}
        entry = {'version': FEATURES_VERSION, 'settings': self.key, 'features': stored}
        atomic_write(path, lambda f: torch.save(entry, f))
        return self._as_read(stored)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}('{self.dir}')"
