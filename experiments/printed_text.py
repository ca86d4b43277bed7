"""Text printed onto photos, for the experiments that need photos whose printed text is known: the OCR
comparison (``compare_ocr.py``) and the probe's evidence family (``probe_visual.py --family evidence``).

The fonts are matplotlib's copies of DejaVu (matplotlib is a dependency of graphmner), so every machine
renders the same pixels and no system font is needed.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
from PIL import Image, ImageDraw, ImageFont

FONTS = Path(matplotlib.get_data_path()) / 'fonts' / 'ttf'
STYLES = ('meme', 'band')
PLACES = ('top', 'bottom')


def print_lines(image: Image.Image, lines: list[str], font: str = 'DejaVuSans-Bold.ttf', size: int = 30,
                style: str = 'band', where: str = 'bottom') -> Image.Image:
    """A copy of ``image`` with ``lines`` printed one under the other, each centred: ``'meme'`` white
    letters with a black outline, ``'band'`` dark letters on a light band; the block at the ``'top'`` or
    the ``'bottom'`` of the image. ``font`` is a file of :data:`FONTS`, ``size`` in pixels."""
    if style not in STYLES or where not in PLACES:
        raise ValueError(f'print_lines takes style in {STYLES} and where in {PLACES}, '
                         f'got {style!r}, {where!r}')
    image = image.convert('RGB')  # a copy: the caller's image is not drawn on
    draw = ImageDraw.Draw(image)
    face = ImageFont.truetype(str(FONTS / font), size)
    boxes = [draw.textbbox((0, 0), line, font=face) for line in lines]
    block = sum(b[3] - b[1] + size // 4 for b in boxes)
    y = size // 3 if where == 'top' else image.height - block - size // 3
    for line, box in zip(lines, boxes):
        x = (image.width - (box[2] - box[0])) // 2
        if style == 'meme':
            draw.text((x, y), line, font=face, fill='white', stroke_width=max(2, size // 15),
                      stroke_fill='black')
        else:
            draw.rectangle((x - 8, y + box[1] - 6, x + box[2] - box[0] + 8, y + box[3] + 6),
                           fill=(245, 245, 235))
            draw.text((x, y), line, font=face, fill=(20, 20, 60))
        y += box[3] - box[1] + size // 4
    return image
