"""Finding a tweet's photo in an image folder.

The Twitter releases name each photo by the tweet's ``IMGID:`` plus an
extension (``.jpg`` for all of Twitter-2015 and Twitter-2017); other
collections, such as the demo's scikit-image photos, use ``.png`` and more.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ['IMAGE_EXTENSIONS', 'image_path']

#: Extensions :func:`image_path` tries, in this order.
IMAGE_EXTENSIONS: tuple[str, ...] = ('.jpg', '.jpeg', '.png', '.gif', '.bmp', '.webp')


def image_path(image_root: str | os.PathLike[str], image_id: str) -> Path | None:
    """Finds the photo ``<image_root>/<image_id><ext>`` of a tweet.

    Extensions are tried in the order of :data:`IMAGE_EXTENSIONS`, so
    ``x.jpg`` wins over ``x.png``. Only the lowercase spellings are tried.

    Args:
        image_root: The folder that holds the photos.
        image_id: The tweet's image id (its ``IMGID:``).

    Returns:
        The path of the first file that exists, or None if there is none (the
        tweet is then treated as having no image).

    Raises:
        ValueError: If ``image_id`` is empty or contains a path separator,
            which would look outside ``image_root``.
    """
    if not image_id or '/' in image_id or '\\' in image_id:
        raise ValueError(
            f"image_id must be a file name without extension, got {image_id!r}")
    root = Path(image_root)
    for extension in IMAGE_EXTENSIONS:
        candidate = root / f'{image_id}{extension}'
        if candidate.is_file():
            return candidate
    return None
