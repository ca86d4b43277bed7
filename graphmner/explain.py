"""The picture of what a model read (``graphmner explain``): the papers' case-study figure.

:func:`draw` writes a PNG (matplotlib) and :func:`to_html` a self-contained page
of a :class:`~graphmner.predict.Prediction` made with ``explain=True``: the
photo with the attended regions (or pyramid cells) as a heatmap and the
objects as labelled boxes, the words coloured by entity type, and the top
evidence of each entity. The page follows :mod:`graphmner.graph.export`'s
conventions: nothing is loaded from the network (the photo is inline), no
script at all, a Content-Security-Policy that allows none, and every text
escaped, with no ``://`` left in it (a tweet's link cannot put a URL in the file).
"""
from __future__ import annotations

import base64
import html
import io
import os
import re
from pathlib import Path

from .models.evidence import Evidence, Source
from .predict import Prediction

#: Entity type -> colour (words, legend).
TYPE_COLORS = {'PER': '#e4572e', 'LOC': '#17bebb', 'ORG': '#ffc914', 'MISC': '#76b041'}
OTHER_COLOR = '#b07cc6'
HEAT_KINDS = ('region', 'scale')


def _evidence(prediction: Prediction) -> Evidence:
    if prediction.evidence is None:
        raise ValueError('the prediction has no evidence: make it with predict(..., explain=True)')
    return prediction.evidence


def heat(evidence: Evidence, words: list[int]) -> list[tuple[Source, float]]:
    """The region / cell boxes of the first attention that has any, each with its
    weight averaged over ``words`` (all words when empty)."""
    rows = words or list(range(len(evidence.words)))
    for a in evidence.attention:
        picked = [j for j, s in enumerate(a.sources) if s.kind in HEAT_KINDS and s.box is not None]
        if picked:
            return [(a.sources[j], sum(a.weights[i][j] for i in rows) / len(rows)) for j in picked]
    return []


def boxes(evidence: Evidence, words: list[int]) -> list[tuple[Source, str]]:
    """Object boxes with what reached the words from them (attention or gate, mean over ``words``)."""
    rows = words or list(range(len(evidence.words)))
    found: dict[tuple, tuple[Source, list[str]]] = {}
    for sources, matrix in ([(a.sources, a.weights) for a in evidence.attention]
                            + [(g.sources, g.values) for g in evidence.gates]):
        for j, s in enumerate(sources):
            values = [matrix[i][j] for i in rows if matrix[i][j] is not None]
            if s.kind == 'object' and s.box is not None and values:
                key = (s.label, s.box)
                found.setdefault(key, (s, []))[1].append(f'{sum(values) / len(values):.2f}')
    return [(s, f"{s.label} {'/'.join(v)}") for s, v in found.values()]


def _entity_words(prediction: Prediction) -> list[int]:
    return [i for e in prediction.entities for i in range(e.start, e.end)]


def summary(prediction: Prediction) -> list[str]:
    """The text lines of the picture: per entity, its strongest evidence; then the tweet-level values."""
    e = _evidence(prediction)
    lines = []
    for entity, items in zip(prediction.entities, e.entities):
        top = '; '.join(f'{i.source.label} {i.weight:.2f} ({i.read_by})' for i in items)
        top = top or 'no visual evidence'
        lines.append(f'{entity.type} "{entity.text}" {entity.confidence:.2f}: {top}')
    if not prediction.entities:
        lines.append('no entity')
    if e.match_probability is not None:
        lines.append(f'P(image fits the text) = {e.match_probability:.2f}')
    if e.layer_gates:
        lines.append('level gates per layer: ' + ' | '.join(' '.join(f'{v:.2f}' for v in row)
                                                            for row in e.layer_gates))
    return lines + e.notes + prediction.notes


def _photo(prediction: Prediction, size: int = 512):
    from PIL import Image

    if not prediction.image or not prediction.image_used:
        return None
    with Image.open(prediction.image) as image:
        image = image.convert('RGB')
        image.thumbnail((size, size))
        return image


def draw(prediction: Prediction, path: str | os.PathLike) -> Path:
    """Writes the picture as a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    e = _evidence(prediction)
    photo = _photo(prediction)
    fig = plt.figure(figsize=(10, 6))
    ax = fig.add_axes([0.02, 0.3, 0.46, 0.66])
    ax.axis('off')
    if photo is not None:
        W, H = photo.size
        ax.imshow(photo)
        cells = heat(e, _entity_words(prediction))
        top = max((w for _, w in cells), default=0) or 1
        for s, w in cells:
            x0, y0, x1, y1 = s.box
            ax.add_patch(Rectangle((x0 * W, y0 * H), (x1 - x0) * W, (y1 - y0) * H, color='red',
                                   alpha=0.55 * w / top, linewidth=0))
        for s, label in boxes(e, _entity_words(prediction)):
            x0, y0, x1, y1 = s.box
            ax.add_patch(Rectangle((x0 * W, y0 * H), (x1 - x0) * W, (y1 - y0) * H, fill=False,
                                   edgecolor='yellow', linewidth=2))
            ax.text(x0 * W + 2, y0 * H + 12, label, color='black', fontsize=8,
                    bbox={'facecolor': 'yellow', 'alpha': 0.8, 'pad': 1})
    else:
        ax.text(0.5, 0.5, 'no image read', ha='center', va='center', transform=ax.transAxes)
    ax.set_title(f'{e.model}: what it read', fontsize=10)
    words = fig.add_axes([0.5, 0.3, 0.48, 0.66])
    words.axis('off')
    label_of = {i: ent.type for ent in prediction.entities for i in range(ent.start, ent.end)}
    x, y = 0.0, 0.95
    for i, word in enumerate(prediction.words):
        color = TYPE_COLORS.get(label_of.get(i), OTHER_COLOR) if i in label_of else 'none'
        words.text(x, y, word, fontsize=11, transform=words.transAxes,
                   bbox={'facecolor': color, 'edgecolor': 'none', 'pad': 2})
        x += 0.03 + 0.018 * len(word)
        if x > 0.9:
            x, y = 0.0, y - 0.1
    text = fig.add_axes([0.02, 0.02, 0.96, 0.26])
    text.axis('off')
    text.text(0, 1, '\n'.join(summary(prediction)), va='top', fontsize=8, family='monospace', wrap=True)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _text(value: object) -> str:
    return html.escape(str(value)).replace('://', '&#58;//')


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>__TITLE__</title>
<style>
body{font:14px sans-serif;margin:16px;display:flex;gap:24px;flex-wrap:wrap}
.words span{padding:2px 4px;margin:2px;border-radius:3px;display:inline-block}
.legend span{padding:1px 6px;margin-right:6px;border-radius:3px}
pre{white-space:pre-wrap;font-size:12px}
</style></head><body>
<div><h3>__TITLE__</h3>__PHOTO__</div>
<div style="max-width:640px"><div class="words" id="words">__WORDS__</div>
<p class="legend">__LEGEND__</p><pre id="evidence">__SUMMARY__</pre></div>
</body></html>
"""


def to_html(prediction: Prediction) -> str:
    """The picture as one self-contained page (inline photo and SVG, no script)."""
    e = _evidence(prediction)
    photo = _photo(prediction)
    figure = '<p>no image read</p>'
    if photo is not None:
        W, H = photo.size
        buffer = io.BytesIO()
        photo.save(buffer, format='PNG')
        data = base64.b64encode(buffer.getvalue()).decode('ascii')
        parts = [f'<svg id="photo" width="{W}" height="{H}" viewBox="0 0 {W} {H}">',
                 f'<image href="data:image/png;base64,{data}" width="{W}" height="{H}"/>']
        cells = heat(e, _entity_words(prediction))
        top = max((w for _, w in cells), default=0) or 1
        for s, w in cells:
            x0, y0, x1, y1 = s.box
            parts.append(f'<rect class="heat" x="{x0 * W:.1f}" y="{y0 * H:.1f}" width="{(x1 - x0) * W:.1f}" '
                         f'height="{(y1 - y0) * H:.1f}" fill="red" fill-opacity="{0.55 * w / top:.3f}">'
                         f'<title>{_text(s.label)} {w:.3f}</title></rect>')
        for s, label in boxes(e, _entity_words(prediction)):
            x0, y0, x1, y1 = s.box
            parts.append(f'<rect class="object" x="{x0 * W:.1f}" y="{y0 * H:.1f}" '
                         f'width="{(x1 - x0) * W:.1f}" height="{(y1 - y0) * H:.1f}" '
                         f'fill="none" stroke="yellow" stroke-width="2"/>'
                         f'<text x="{x0 * W + 3:.1f}" y="{y0 * H + 14:.1f}" fill="yellow" '
                         f'font-size="12">{_text(label)}</text>')
        figure = ''.join(parts) + '</svg>'
    label_of = {i: ent.type for ent in prediction.entities for i in range(ent.start, ent.end)}
    words = ''.join(
        f'<span style="background:{TYPE_COLORS.get(label_of[i], OTHER_COLOR)}" title="{_text(label_of[i])}">'
        f'{_text(w)}</span>' if i in label_of else f'<span>{_text(w)}</span>'
        for i, w in enumerate(prediction.words))
    legend = ''.join(f'<span style="background:{c}">{t}</span>' for t, c in TYPE_COLORS.items())
    values = {'PHOTO': figure, 'WORDS': words, 'LEGEND': legend,
              'SUMMARY': _text('\n'.join(summary(prediction))), 'TITLE': _text(f'{e.model}: what it read')}
    # One pass: a tweet that writes '__TITLE__' is not filled in.
    return re.sub(r'__(PHOTO|WORDS|LEGEND|SUMMARY|TITLE)__', lambda m: values[m.group(1)], _PAGE)
