r"""Robust image loading for tweet photos.

Tweet image dumps contain missing files, zero-byte downloads, HTML error pages
saved as ``.jpg``, truncated JPEGs, 1x1 tracking pixels, CMYK and 16-bit files
and photos whose orientation lives only in EXIF. :func:`load_image` turns every
one of them into either an RGB :class:`PIL.Image.Image` or a recorded problem;
it never raises on bad data, so one broken file cannot stop a feature run.

Example:
    >>> result = load_image('images/17_06_4705.jpg')
    >>> if result.image is None:
    ...     print(result.problem, result.detail)
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image, ImageOps

#: Kinds of :attr:`ImageLoad.problem`, stable strings meant for counting.
PROBLEMS: Final[tuple[str, ...]] = (
    'no_image',      # the tweet has no image path at all
    'missing',       # the path does not exist or is not a regular file
    'unreadable',    # the OS refused to read the file
    'empty',         # zero bytes
    'not_an_image',  # Pillow recognises no image format
    'corrupt',       # recognised, but decoding failed (truncated, bad data)
    'too_large',     # more pixels than ``max_pixels`` (decompression bomb)
    'too_small',     # a side shorter than ``min_size`` (tracking pixels)
)

#: Twitter serves at most 4096 x 4096 photos; 64 MP leaves headroom for
#: other sources while stopping crafted headers long before Pillow's own
#: limit (~179 MP) would allocate gigabytes.
DEFAULT_MAX_PIXELS: Final = 64_000_000

_ALPHA_MODES: Final = frozenset({'RGBA', 'LA', 'PA', 'RGBa', 'La'})
_WIDE_INT_MODES: Final = frozenset({'I', 'I;16', 'I;16B', 'I;16L', 'I;16N'})


@dataclass(frozen=True)
class ImageLoad:
    """The outcome of :func:`load_image`: an image or the reason there is none.

    Attributes:
        image: The decoded RGB image, or :obj:`None` when unusable.
        problem: One of :data:`PROBLEMS` when :attr:`image` is :obj:`None`.
        detail: A human-readable message naming the file and the cause.
    """

    image: Image.Image | None
    problem: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.image is not None


def load_image(
    path: str | os.PathLike | None,
    *,
    min_size: int = 8,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageLoad:
    r"""Loads an image file as RGB, recording (never raising) what is wrong.

    EXIF orientation is applied; grayscale, palette, CMYK and 16-bit images are
    converted to 8-bit RGB, and transparency is composited on white.

    Args:
        path (str or os.PathLike, optional): The image file; :obj:`None` means
            the tweet has no image (problem ``'no_image'``).
        min_size (int, optional): Images with a side shorter than this many
            pixels are rejected as ``'too_small'``. (default: :obj:`8`)
        max_pixels (int, optional): Images with more pixels than this are
            rejected as ``'too_large'`` before any pixel is decoded.
            (default: :obj:`64_000_000`)

    Returns:
        ImageLoad: The image, or :obj:`None` with ``problem`` and ``detail``.
    """
    data, failure = read_bytes(path)
    if failure is not None:
        return failure
    return decode_image(data, name=str(path), min_size=min_size,
                        max_pixels=max_pixels)


def read_bytes(
    path: str | os.PathLike | None,
) -> tuple[bytes | None, ImageLoad | None]:
    r"""Reads an image file's bytes without decoding them.

    Returns:
        (bytes, None) or (None, ImageLoad): The bytes, or a failed
        :class:`ImageLoad` saying why there are none (``'no_image'``,
        ``'missing'`` or ``'unreadable'``).
    """
    if path is None:
        return None, ImageLoad(None, 'no_image', 'no image path given')
    path = Path(path)
    if not path.is_file():
        return None, ImageLoad(
            None, 'missing', f"'{path}' does not exist or is not a regular "
            f"file")
    try:
        return path.read_bytes(), None
    except OSError as e:
        return None, ImageLoad(None, 'unreadable', f"'{path}': {e}")


def decode_image(
    data: bytes,
    *,
    name: str = '<bytes>',
    min_size: int = 8,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageLoad:
    r"""Decodes image file bytes as :func:`load_image` does.

    Useful when the bytes are already in memory, e.g. after hashing them for
    a cache key, so the file is read once.

    Args:
        data (bytes): The complete file contents.
        name (str, optional): How to refer to the data in messages.
            (default: :obj:`'<bytes>'`)
        min_size (int, optional): See :func:`load_image`. (default: :obj:`8`)
        max_pixels (int, optional): See :func:`load_image`.
            (default: :obj:`64_000_000`)
    """
    if min_size < 1:
        raise ValueError(f"'min_size' must be at least 1 (got {min_size})")
    if max_pixels < 1:
        raise ValueError(f"'max_pixels' must be positive (got {max_pixels})")
    if not data:
        return ImageLoad(None, 'empty', f"'{name}' is empty (0 bytes)")

    try:
        # Pillow warns (rather than raises) between its limit and twice its
        # limit; a warning cannot be recorded per file, so make it an error.
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                # Image.open reads only the header: check the size before
                # the pixels are allocated.
                width, height = img.size
                if width * height > max_pixels:
                    return ImageLoad(
                        None, 'too_large',
                        f"'{name}' is {width}x{height} = {width * height} "
                        f"pixels, more than max_pixels={max_pixels}")
                if min(width, height) < min_size:
                    return ImageLoad(
                        None, 'too_small',
                        f"'{name}' is {width}x{height}, a side is shorter "
                        f"than min_size={min_size}")
                # Decoding is lazy: force it here so truncation and bad data
                # surface inside this try, not later in a transform.
                img.load()
                rgb = _to_rgb(ImageOps.exif_transpose(img))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return ImageLoad(None, 'too_large', f"'{name}': {e}")
    except Image.UnidentifiedImageError:
        return ImageLoad(None, 'not_an_image',
                         f"'{name}' is not in any image format Pillow reads")
    # Pillow's format plugins raise many exception types on malformed input
    # (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
    # ...): a broken file must never stop a feature run.
    except Exception as e:
        return ImageLoad(None, 'corrupt',
                         f"'{name}' could not be decoded: "
                         f"{type(e).__name__}: {e}")
    return ImageLoad(rgb)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Converts any Pillow mode to 8-bit RGB, alpha composited on white."""
    if img.mode == 'RGB':
        return img.copy()  # detach from the file-backed original
    if img.mode in _WIDE_INT_MODES:
        # Pillow's own conversion clips 16-bit values at 255, which turns
        # most 16-bit photos white; rescale the 16-bit range instead.
        array = np.asarray(img, dtype=np.float64)
        array = np.clip(array, 0, 65535) / 257.0
        img = Image.fromarray(np.rint(array).astype(np.uint8))
    elif img.mode == 'P' and 'transparency' in img.info:
        img = img.convert('RGBA')

    if img.mode in _ALPHA_MODES:
        # Pillow converts premultiplied La only to LA.
        rgba = (img.convert('LA') if img.mode == 'La' else img).convert('RGBA')
        background = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert('RGB')
    return img.convert('RGB')
