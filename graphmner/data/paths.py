"""Finding a split's file in a dataset folder and a tweet's photo in an image folder.

The Twitter releases name each photo by the tweet's ``IMGID:`` plus an
extension (``.jpg`` for all of Twitter-2015 and Twitter-2017); other
collections, such as the demo's scikit-image photos, use ``.png`` and more.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ['IMAGE_EXTENSIONS', 'MAX_IMAGE_ID_BYTES', 'SPLIT_FILES', 'image_id_problem', 'image_path']

#: Split name -> file name; ``dev`` is stored as ``valid.txt``, as in the Twitter releases.
SPLIT_FILES = {'train': 'train.txt', 'dev': 'valid.txt', 'test': 'test.txt'}

#: Extensions :func:`image_path` tries, in this order.
IMAGE_EXTENSIONS: tuple[str, ...] = ('.jpg', '.jpeg', '.png', '.gif', '.bmp', '.webp')

#: File systems allow 255 bytes per name; this leaves room for any extension.
MAX_IMAGE_ID_BYTES = 200


def image_id_problem(image_id: str) -> str | None:
    """Why ``image_id`` cannot name a photo inside an image folder, or None if
    it can: it must be a plain file name, so that ``<root>/<id><ext>`` never
    leaves ``root``, whatever the data says.

    Rejected: an empty id, a path separator (``../x``, ``/etc/x``, ``a\\b``),
    ``.`` and ``..``, a colon (a Windows drive or stream), NUL and other control
    characters, lone surrogates (not UTF-8), and ids longer than
    :data:`MAX_IMAGE_ID_BYTES` bytes in UTF-8.
    """
    if not image_id:
        return 'the image id is empty'
    if '/' in image_id or '\\' in image_id or ':' in image_id:
        return f'image id {image_id!r} contains a path separator or drive colon'
    if image_id in ('.', '..'):
        return f'image id {image_id!r} names a folder'
    if any(ord(c) < 32 or ord(c) == 127 for c in image_id):
        return f'image id {image_id!r} contains a control character'
    if any('\ud800' <= c <= '\udfff' for c in image_id):
        return f'image id {image_id!r} is not valid Unicode (a lone surrogate)'
    if len(image_id.encode('utf-8')) > MAX_IMAGE_ID_BYTES:
        return f'image id {image_id[:20]!r}... is longer than {MAX_IMAGE_ID_BYTES} bytes'
    return None


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
        ValueError: If ``image_id`` is not a plain file name (see
            :func:`image_id_problem`), which could look outside ``image_root``.
    """
    problem = image_id_problem(image_id)
    if problem:
        raise ValueError(f"image_id must be a file name without extension: {problem}")
    root = Path(image_root)
    for extension in IMAGE_EXTENSIONS:
        candidate = root / f'{image_id}{extension}'
        if candidate.is_file():
            return candidate
    return None
