r"""Tagged tweets drawn with spaCy's displaCy (manual mode: no spaCy model needed).

    >>> tagger.render(tagger.predict('Barack Obama visits Paris'))   # shown in Jupyter

Each entity is marked with its type and confidence (``PER 0.97``). The markup
follows the conventions of the graph HTML export
(:func:`graphmner.graph.export.to_html`): nothing is loaded from the network
(system fonts, no script at all; the full page forbids every load but inline
style with a Content-Security-Policy), every piece of a tweet is text, never
markup (displaCy escapes the words, and the labels and titles, which it does
not escape, are escaped here), and no ``://`` is left in the file, so a
tweet's link cannot become a URL.
"""
from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .predict import Prediction

#: Entity colours by type (the Twitter datasets' four, displaCy's palette);
#: other types get :data:`OTHER_COLOR`.
COLORS = {'PER': '#aa9cfc', 'LOC': '#ff9561', 'ORG': '#7aecec', 'MISC': '#e4e7d2'}
OTHER_COLOR = '#ddd'

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>__TITLE__</title></head>
<body style="font: 16px -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; padding: 2rem">
__BODY__
</body></html>
"""


class RenderedHTML(str):
    """HTML markup that Jupyter shows as rendered HTML (``_repr_html_``) and
    that is a plain string everywhere else."""

    def _repr_html_(self) -> str:
        return str(self)


def _inert(text: str) -> str:
    """``text`` escaped for HTML and without ``://``."""
    return html.escape(text).replace('://', '&#58;//')


def displacy_doc(prediction: Prediction, title: str | None = None) -> dict:
    """The manual-mode displaCy document of one prediction: the words joined by
    spaces, one span per entity labelled ``TYPE confidence``, the confidence
    rounded down (``1.00`` only when the model is sure)."""
    starts, offset = [], 0
    for word in prediction.words:
        starts.append(offset)
        offset += len(word) + 1
    ents = [{'start': starts[e.start], 'end': starts[e.end - 1] + len(prediction.words[e.end - 1]),
             'label': _inert(f'{e.type} {math.floor(e.confidence * 100) / 100:.2f}')}
            for e in prediction.entities]
    return {'text': ' '.join(prediction.words), 'ents': ents,
            'title': _inert(title) if title is not None else None}


def render(predictions: Prediction | Sequence[Prediction], titles: Sequence[str | None] | None = None,
           page: bool = False) -> RenderedHTML:
    """displaCy markup of one prediction or many (one figure each).

    Args:
        predictions: what :meth:`graphmner.Tagger.predict` returned.
        titles: a heading per prediction (e.g. its image id), or :obj:`None`.
        page: a whole offline HTML page instead of a fragment for a notebook.
    """
    from spacy import displacy

    if not isinstance(predictions, Sequence):
        predictions = [predictions]
    titles = list(titles) if titles is not None else [None] * len(predictions)
    if len(titles) != len(predictions):
        raise ValueError(f"'titles' needs one entry per prediction: got {len(titles)} for "
                         f'{len(predictions)} predictions')
    docs = [displacy_doc(p, t) for p, t in zip(predictions, titles)]
    colors = {ent['label'].upper(): COLORS.get(ent['label'].split(' ')[0], OTHER_COLOR)
              for doc in docs for ent in doc['ents']}
    body = displacy.render(docs, style='ent', manual=True, page=False, jupyter=False,
                           options={'colors': colors}).replace('://', '&#58;//')
    if not page:
        return RenderedHTML(f'<div class="graphmner-entities">{body}</div>')
    return RenderedHTML(_PAGE.replace('__TITLE__', 'graphmner entities').replace('__BODY__', body))
