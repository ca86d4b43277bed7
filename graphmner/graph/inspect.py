"""Looking at one tweet graph: a text :func:`summary`, a matplotlib
:func:`draw` and the shared :func:`layout` (also used by
:mod:`graphmner.graph.export` for ``x``/``y`` node positions).

Layout (data coordinates, y up): words in reading order along the bottom
(``y = 0``), the image panel above them (visual nodes at the centres of their
normalised boxes, the ``image`` node left of the panel), aux words in a row at
the top.

A graph stores only some relations (:data:`~graphmner.graph.schema.STORED`);
pictures, summaries and exports show it as :func:`display_graph` completes it.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np
from torch import Tensor
from torch_geometric.data import HeteroData

from . import schema
from .transforms import BuildRelations

EdgeKey = str | tuple[str, str, str]

#: All-to-all relations hidden by :func:`draw` unless asked for.
DENSE_RELATIONS: tuple[tuple[str, str, str], ...] = (schema.WORD_INTRA, schema.INFORMS,
                                                      schema.GUIDES, schema.AUX_INTRA, schema.DESCRIBES)

#: Relations :func:`draw` and the HTML page hide by default: the dense ones and
#: ``rev_grounds`` and ``rev_describes`` (the reverses, drawn on top of their relations).
HIDDEN_BY_DEFAULT: tuple[tuple[str, str, str], ...] = DENSE_RELATIONS + (schema.REV_GROUNDS,
                                                                         schema.REV_DESCRIBES)

#: One colour per node type (matplotlib tab10).
NODE_COLORS: dict[str, str] = {
    schema.WORD: '#1f77b4', schema.IMAGE: '#7f7f7f', schema.REGION: '#bcbd22',
    schema.SCALE: '#17becf', schema.OBJECT: '#d62728', schema.AUX: '#2ca02c'}

#: One colour and line style per relation.
EDGE_STYLES: dict[str, tuple[str, str]] = {
    'word__next__word': ('#1f77b4', '-'),
    'word__intra__word': ('#aec7e8', ':'),
    'object__intra__object': ('#ff9896', ':'),
    'object__grounds__word': ('#d62728', '-'),
    'word__rev_grounds__object': ('#ff7f0e', '--'),
    'region__informs__word': ('#dbdb8d', ':'),
    'scale__guides__word': ('#9edae5', ':'),
    'aux__next__aux': ('#2ca02c', '-'),
    'aux__intra__aux': ('#98df8a', ':'),
    'aux__describes__word': ('#98df8a', '--'),
    'word__rev_describes__aux': ('#2ca02c', '--'),
    'image__contains__region': ('#c7c7c7', '-'),
    'image__contains__object': ('#7f7f7f', '-'),
}

# geometry of the layout
PANEL_BOTTOM = 1.5
AUX_GAP = 1.0


def display_graph(g: HeteroData) -> HeteroData:
    """``g`` with every relation the schema builds on demand between node types
    it has and that it lacks (a shallow copy; ``g`` is unchanged): the whole
    graph of :data:`schema.EDGE_TYPES` for a graph as built, a model's
    relations and the display ones among its node types after its transform."""
    wanted = [e for e in schema.EDGE_TYPES if schema.RULES[e] != 'stored' and e not in g.edge_types
              and e[0] in g.node_types and e[2] in g.node_types]
    return BuildRelations(wanted)(copy.copy(g)) if wanted else g


def _num(g: HeteroData, node_type: str) -> int:
    if node_type not in g.node_types:
        return 0
    n = g[node_type].num_nodes
    return int(n) if n is not None else 0


def _attr(g: HeteroData, node_type: str, key: str) -> Tensor | None:
    if node_type not in g.node_types:
        return None
    return g[node_type].get(key) if hasattr(g[node_type], 'get') else getattr(g[node_type], key, None)


def _graph_list(g: HeteroData, key: str) -> list:
    value = getattr(g, key, None)
    return list(value) if value is not None else []


def word_texts(g: HeteroData) -> list[str]:
    words = _graph_list(g, 'words')
    n = _num(g, schema.WORD)
    return [words[i] if i < len(words) else f'word {i}' for i in range(n)]


def word_labels(g: HeteroData) -> list[str]:
    labels = _graph_list(g, 'labels')
    n = _num(g, schema.WORD)
    return [labels[i] if i < len(labels) else '' for i in range(n)]


def aux_texts(g: HeteroData) -> list[str]:
    words = _graph_list(g, 'aux_words')
    n = _num(g, schema.AUX)
    return [words[i] if i < len(words) else f'aux {i}' for i in range(n)]


def aux_sources(g: HeteroData) -> list[str]:
    source = _attr(g, schema.AUX, 'source')
    n = _num(g, schema.AUX)
    if source is None:
        return [''] * n
    return [schema.AUX_SOURCES[int(s)] if 0 <= int(s) < len(schema.AUX_SOURCES) else str(int(s))
            for s in source.tolist()]


def object_texts(g: HeteroData) -> list[str]:
    names = _graph_list(g, 'object_names')
    cls = _attr(g, schema.OBJECT, 'cls')
    n = _num(g, schema.OBJECT)
    out = []
    for i in range(n):
        if i < len(names):
            out.append(str(names[i]))
        elif cls is not None and i < len(cls):
            out.append(f'class {int(cls[i])}')
        else:
            out.append(f'object {i}')
    return out


def visual_backend(g: HeteroData) -> str:
    """What made the graph's visual features (``g.visual_backend``, set by the
    builder), or ``'not recorded'``."""
    return str(getattr(g, 'visual_backend', '') or 'not recorded')


def image_missing(g: HeteroData) -> bool:
    missing = _attr(g, schema.IMAGE, 'missing')
    return bool(missing.any()) if missing is not None and missing.numel() else False


def node_labels(g: HeteroData) -> dict[str, list[str]]:
    """Readable label of every node, per node type."""
    out = {}
    for node_type in g.node_types:
        n = _num(g, node_type)
        if node_type == schema.WORD:
            out[node_type] = word_texts(g)
        elif node_type == schema.OBJECT:
            out[node_type] = object_texts(g)
        elif node_type == schema.AUX:
            out[node_type] = aux_texts(g)
        elif node_type == schema.IMAGE:
            image_id = getattr(g, 'image_id', None)
            out[node_type] = [f'image {image_id}' if image_id else 'image'] * n
        elif node_type == schema.SCALE:
            level = _attr(g, node_type, 'level')
            out[node_type] = [f'scale {i}' + (f' (L{int(level[i])})' if level is not None
                                              and i < len(level) else '') for i in range(n)]
        else:
            out[node_type] = [f'{node_type} {i}' for i in range(n)]
    return out


def layout(g: HeteroData) -> dict[str, np.ndarray]:
    """``{node_type: float array [N, 2]}`` positions (y up)."""
    n_words = _num(g, schema.WORD)
    width = float(max(n_words - 1, 4))
    height = width * 0.6
    top = PANEL_BOTTOM + height
    pos: dict[str, np.ndarray] = {}

    def from_boxes(node_type: str, shift: float = 0.0) -> np.ndarray:
        n = _num(g, node_type)
        box = _attr(g, node_type, 'box')
        if box is None or box.shape[0] != n:
            # no boxes: a row across the panel middle
            xs = np.linspace(0, width, n) if n > 1 else np.full(n, width / 2)
            return np.stack([xs, np.full(n, PANEL_BOTTOM + height / 2)], 1) if n else np.zeros((0, 2))
        b = box.detach().float().cpu().numpy().reshape(n, 4)
        cx = (b[:, 0] + b[:, 2]) / 2
        cy = (b[:, 1] + b[:, 3]) / 2
        return np.stack([cx * width + shift, top - cy * height], 1)

    for node_type in g.node_types:
        n = _num(g, node_type)
        if node_type == schema.WORD:
            pos[node_type] = np.stack([np.arange(n, dtype=float), np.zeros(n)], 1) if n else np.zeros((0, 2))
        elif node_type == schema.IMAGE:
            pos[node_type] = np.tile([[-1.0, PANEL_BOTTOM + height / 2]], (n, 1))
        elif node_type == schema.AUX:
            xs = np.linspace(0, width, n) if n > 1 else np.full(n, width / 2)
            pos[node_type] = np.stack([xs, np.full(n, top + AUX_GAP)], 1) if n else np.zeros((0, 2))
        elif node_type == schema.SCALE:
            p = from_boxes(node_type)
            level = _attr(g, node_type, 'level')
            if level is not None and len(level) == len(p):
                p = p + np.stack([np.zeros(len(p)), 0.05 * level.cpu().numpy()], 1)
            pos[node_type] = p
        else:
            pos[node_type] = from_boxes(node_type)
    return pos


def _edge_name(edge_type: EdgeKey) -> str:
    return edge_type if isinstance(edge_type, str) else schema.edge_type_name(tuple(edge_type))


def summary(g: HeteroData) -> str:
    """Human-readable summary of one tweet graph: the missing-image flag and
    the backend that made the visual features, node and edge counts per type,
    the words with labels, objects (class, score) and aux words (of
    :func:`display_graph`)."""
    g = display_graph(g)
    lines = []
    image_id = getattr(g, 'image_id', None)
    lines.append(f'Tweet graph {image_id!s}  (image missing: {image_missing(g)})')
    lines.append(f'Visual features: {visual_backend(g)}')
    lines.append('Nodes:')
    for node_type in g.node_types:
        lines.append(f'  {node_type:<8} {_num(g, node_type)}')
    lines.append('Edges:')
    for edge_type in g.edge_types:
        lines.append(f'  {_edge_name(edge_type):<28} {int(g[edge_type].num_edges)}')
    words, labels = word_texts(g), word_labels(g)
    lines.append('Words: ' + ' '.join(f'{word}/{label}' if label else word
                                      for word, label in zip(words, labels)))
    names = object_texts(g)
    score = _attr(g, schema.OBJECT, 'score')
    cls = _attr(g, schema.OBJECT, 'cls')
    if names:
        lines.append('Objects:')
        for i, name in enumerate(names):
            extra = []
            if cls is not None and i < len(cls):
                extra.append(f'cls {int(cls[i])}')
            if score is not None and i < len(score):
                extra.append(f'score {float(score[i]):.2f}')
            lines.append(f'  {i}: {name}' + (f" ({', '.join(extra)})" if extra else ''))
    else:
        lines.append('Objects: none')
    aux = aux_texts(g)
    if aux:
        by_source: dict[str, list[str]] = {}
        for word, source in zip(aux, aux_sources(g)):
            by_source.setdefault(source or '?', []).append(word)
        lines.append('Aux:')
        for source, ws in by_source.items():
            lines.append(f'  {source}: ' + ' '.join(ws))
    else:
        lines.append('Aux: none')
    return '\n'.join(lines)


def _normalise_weights(edge_weights: Mapping[EdgeKey, Tensor] | None) -> dict[str, np.ndarray]:
    out = {}
    for key, value in (edge_weights or {}).items():
        w = np.asarray(value.detach().float().cpu().numpy() if isinstance(value, Tensor) else value,
                       dtype=float).reshape(-1)
        if w.size:
            lo, hi = float(np.nanmin(w)), float(np.nanmax(w))
            w = (w - lo) / (hi - lo) if hi > lo else np.ones_like(w)
        out[_edge_name(key)] = w
    return out


def draw(g: HeteroData, ax=None, edge_weights: Mapping[EdgeKey, Tensor] | None = None, *,
         hide: Sequence[EdgeKey] = HIDDEN_BY_DEFAULT, show: Sequence[EdgeKey] = (),
         boxes: bool = True, legend: bool = True, font_size: float = 8.0):
    """Draws one tweet graph with matplotlib (works under the Agg backend).

    Args:
        g (HeteroData): a schema-v1 tweet graph, drawn as :func:`display_graph`
            completes it.
        ax (matplotlib.axes.Axes, optional): where to draw; a new figure otherwise.
        edge_weights (dict, optional): ``{edge_type: Tensor[E]}`` (tuple or
            ``'src__rel__dst'`` keys), e.g. attention or gate values; scaled to
            ``[0, 1]`` per relation, they set edge alpha and width.
        hide (Sequence, optional): relations not drawn (default: the all-to-all
            ``word intra``, ``region informs``, ``scale guides`` and
            ``aux describes``, and
            ``rev_grounds``, which would cover ``grounds``).
        show (Sequence, optional): relations drawn even if listed in ``hide``.
        boxes (bool, optional): draw object boxes in the image panel.
        legend (bool, optional): add node-type and relation legends.

    The title names the tweet's image and the backend that made its visual
    features (``g.visual_backend``).

    Returns:
        matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    g = display_graph(g)
    if ax is None:
        n = _num(g, schema.WORD)
        fig, ax = plt.subplots(figsize=(min(max(6.0, 0.7 * n + 2), 16.0) + 3.5, 7.0))
        fig.subplots_adjust(left=0.02, right=0.78, top=0.93, bottom=0.02)
    pos = layout(g)
    labels = node_labels(g)
    weights = _normalise_weights(edge_weights)
    hidden = {_edge_name(e) for e in hide} - {_edge_name(e) for e in show}

    n_words = _num(g, schema.WORD)
    width = float(max(n_words - 1, 4))
    height = width * 0.6
    # image panel
    ax.add_patch(Rectangle((0, PANEL_BOTTOM), width, height, fill=False, ec='#999999', lw=0.8,
                           ls='--' if image_missing(g) else '-'))
    if image_missing(g):
        ax.text(width / 2, PANEL_BOTTOM + height / 2, 'image missing', ha='center', va='center',
                color='#999999', fontsize=font_size + 2)
    if boxes and schema.OBJECT in g.node_types:
        box = _attr(g, schema.OBJECT, 'box')
        if box is not None:
            for b in box.detach().float().cpu().numpy().reshape(-1, 4):
                ax.add_patch(Rectangle((b[0] * width, PANEL_BOTTOM + height - b[3] * height),
                                       (b[2] - b[0]) * width, (b[3] - b[1]) * height, fill=False,
                                       ec=NODE_COLORS[schema.OBJECT], lw=0.8, alpha=0.6))

    edge_handles = []
    for edge_type in g.edge_types:
        name = _edge_name(edge_type)
        ei = g[edge_type].get('edge_index') if hasattr(g[edge_type], 'get') else None
        if name in hidden or ei is None or ei.numel() == 0:
            continue
        src_t, _, dst_t = edge_type
        if src_t not in pos or dst_t not in pos:
            continue
        color, style = EDGE_STYLES.get(name, ('#444444', '-'))
        w = weights.get(name)
        src, dst = ei[0].tolist(), ei[1].tolist()
        same_row = src_t == dst_t == schema.WORD or src_t == dst_t == schema.AUX
        for k, (i, j) in enumerate(zip(src, dst)):
            a, b = pos[src_t][i], pos[dst_t][j]
            alpha, lw = 0.6, 1.0
            if w is not None and k < len(w):
                alpha, lw = 0.1 + 0.9 * float(w[k]), 0.3 + 2.7 * float(w[k])
            rad = 0.3 if same_row else 0.0
            ax.annotate('', xy=b, xytext=a, arrowprops={
                'arrowstyle': '-|>', 'color': color, 'ls': style, 'lw': lw, 'alpha': alpha,
                'shrinkA': 6, 'shrinkB': 6, 'connectionstyle': f'arc3,rad={rad}',
                'mutation_scale': 7})
        edge_handles.append(Line2D([], [], color=color, ls=style, label=f'{name} ({len(src)})'))

    node_handles = []
    for node_type, p in pos.items():
        if not len(p):
            continue
        color = NODE_COLORS.get(node_type, '#444444')
        size = {schema.REGION: 12, schema.SCALE: 10}.get(node_type, 40)
        ax.scatter(p[:, 0], p[:, 1], s=size, c=color, zorder=3, edgecolors='white', linewidths=0.5)
        node_handles.append(Line2D([], [], marker='o', ls='', color=color,
                                   label=f'{node_type} ({len(p)})'))
        if node_type in (schema.WORD, schema.OBJECT, schema.AUX, schema.IMAGE):
            texts = labels[node_type]
            if node_type == schema.WORD:
                tags = word_labels(g)
                texts = [f'{text}\n{tag}' if tag and tag != 'O' else text
                         for text, tag in zip(texts, tags)]
            dy, va = {schema.WORD: (-0.25, 'top'),
                      schema.AUX: (0.2, 'bottom')}.get(node_type, (0.15, 'bottom'))
            for (x, y), text in zip(p, texts):
                ax.text(x, y + dy, text, ha='center', va=va, fontsize=font_size, zorder=4,
                        rotation=30 if node_type == schema.AUX else 0)

    ax.set_xlim(-1.8, width + 1.0)
    ax.set_ylim(-1.2, PANEL_BOTTOM + height + AUX_GAP + 1.2)
    ax.set_aspect('auto')
    ax.axis('off')
    image_id = getattr(g, 'image_id', None)
    ax.set_title((f'tweet graph {image_id}' if image_id else 'tweet graph')
                 + f'\nvisual features: {visual_backend(g)}', fontsize=font_size + 2)
    if legend:
        first = ax.legend(handles=node_handles, loc='upper left', fontsize=font_size - 1,
                          title='nodes', title_fontsize=font_size, bbox_to_anchor=(1.0, 1.0))
        ax.add_artist(first)
        if edge_handles:
            ax.legend(handles=edge_handles, loc='lower left', fontsize=font_size - 1,
                      title='relations', title_fontsize=font_size, bbox_to_anchor=(1.0, 0.0))
    return ax
