r"""On-disk cache of :class:`~graphmner.features.types.ImageFeatures`.

The vision backbone and the detector are frozen, so an image's features
depend only on the image file's bytes and the extractor settings. Each entry
is one ``.pt`` file at

``<root>/<settings key[:16]>/<sha256[:2]>/<sha256 of the image bytes>.pt``

where the settings key is the SHA-256 of the settings as canonical JSON. Each
settings folder holds a ``settings.json`` saying what produced it, so stale
folders can be recognised and deleted. Files are written atomically (a
temporary file, then :func:`os.replace`), so an interrupted run leaves no
half-written entry, and read with ``weights_only=True``, so loading a cache
never runs pickled code.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import torch

from graphmner.features.types import ImageFeatures
from graphmner.io import atomic_write

#: Bumped whenever the meaning of cached features changes, so old entries
#: are no longer found.
FEATURES_VERSION: Final = 1


def settings_key(settings: Mapping[str, Any]) -> str:
    """The SHA-256 hex digest of ``settings`` as canonical JSON."""
    text = json.dumps(settings, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()


def bytes_sha256(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``: the cache key of an image."""
    return hashlib.sha256(data).hexdigest()


class FeatureCache:
    r"""A folder of per-image feature files for one extractor setting.

    Args:
        root (str or os.PathLike): The cache folder, shared by all settings.
        settings (Mapping[str, Any]): JSON-serialisable description of
            everything that determines the features (e.g. the configs'
            ``fingerprint()``).
    """

    def __init__(self, root: str | os.PathLike, settings: Mapping[str, Any]):
        self.settings = {'features_version': FEATURES_VERSION, **settings}
        self.key = settings_key(self.settings)
        self.dir = Path(root) / self.key[:16]

    def path(self, digest: str) -> Path:
        """Where the features of the image with SHA-256 ``digest`` live."""
        return self.dir / digest[:2] / f'{digest}.pt'

    def __contains__(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def get(self, digest: str) -> ImageFeatures | None:
        """The cached features, or :obj:`None` on a miss. An unreadable
        entry counts as a miss (with a warning) and is overwritten by the
        next :meth:`put`.
        """
        path = self.path(digest)
        if not path.is_file():
            return None
        try:
            return ImageFeatures.from_dict(
                torch.load(path, map_location='cpu', weights_only=True))
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError,
                KeyError, TypeError) as e:
            warnings.warn(f"ignoring unreadable feature cache entry "
                          f"'{path}' ({type(e).__name__}: {e})", stacklevel=2)
            return None

    def put(self, digest: str, features: ImageFeatures) -> None:
        """Stores ``features`` atomically."""
        if not (self.dir / 'settings.json').is_file():
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.dir / 'settings.json',
                          lambda f: f.write(json.dumps(
                              self.settings, indent=2, sort_keys=True)
                              .encode()))
        path = self.path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: torch.save(features.to_dict(), f))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}('{self.dir}')"
