"""What a model read to tag a tweet: typed evidence per word (and per entity).

:meth:`MNERModel.explain <graphmner.models.base.MNERModel.explain>` returns one
:class:`Evidence` per tweet: the attention of each word over what it reads
(regions, pyramid cells, objects, aux words, other words), the gate values
that admit visual states, MAF's matched probability, GMF's per-layer gate over
the pyramid levels and ITA's marginals in both views. Every value is what the
model's own forward computed (its layers keep their attention and gate values,
the text encoder records its attention on request): nothing is recomputed by
another formula. The helpers below turn those per-edge or per-subword values
into per-word rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch_geometric.data import Batch

from ..graph import schema
from ..graph.inspect import node_labels

#: Source kinds that come from the image (the photo itself or text made from it).
VISUAL_KINDS = ('region', 'scale', 'object', 'aux', 'image')


@dataclass
class Source:
    """One thing a word can read."""

    kind: str    # 'region', 'scale' (a pyramid cell), 'object', 'aux', 'image', 'word' or 'special'
    label: str   # readable name: an object's class, an aux word, 'region 12', '[SEP]'
    box: tuple[float, float, float, float] | None = None  # normalised xyxy on the photo, where it has one


@dataclass
class Attention:
    """Softmax attention of each word over the sources it reads."""

    name: str                    # which layer: 'cross-modal interaction', ...
    sources: list[Source]
    weights: list[list[float]]   # [words][sources]; a row sums to one, or is all zero (read nothing)


@dataclass
class Gate:
    """Element-wise sigmoid gates (mean over channels) on what reaches each word."""

    name: str
    sources: list[Source]
    values: list[list[float | None]]  # [words][sources] in (0, 1); None where no edge brings the source


@dataclass
class EvidenceItem:
    """One of the strongest visual sources of an entity."""

    read_by: str     # the attention or gate it comes from
    source: Source
    weight: float    # mean over the entity's words (attention weight or gate value)


@dataclass
class Evidence:
    """What the model read for one tweet."""

    model: str
    words: list[str]
    reads_image: bool        # the model reads the image (or text made from it) at all
    image_used: bool         # and visual evidence reached it for this tweet
    attention: list[Attention] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    match_probability: float | None = None           # MAF: P(the image fits the text)
    layer_gates: list[list[float]] | None = None     # GMF: per encoder layer, the gate over pyramid levels
    view_marginals: dict[str, list[list[float]]] = field(default_factory=dict)  # ITA: view -> [words][tags]
    tags: list[str] = field(default_factory=list)    # the tag order of view_marginals
    entities: list[list[EvidenceItem]] = field(default_factory=list)  # per entity: filled by the Tagger
    notes: list[str] = field(default_factory=list)

    def top(self, start: int, end: int, k: int = 3) -> list[EvidenceItem]:
        """The ``k`` strongest visual sources of words ``start:end`` in each
        attention and gate (weights averaged over the words), strongest first."""
        if not 0 <= start < end <= len(self.words):
            raise ValueError(f'a span of {len(self.words)} words needs 0 <= start < end <= '
                             f'{len(self.words)}, got {start}:{end}')
        items = []
        for name, sources, rows in ([(a.name, a.sources, a.weights) for a in self.attention]
                                    + [(g.name, g.sources, g.values) for g in self.gates]):
            scored = []
            for j, source in enumerate(sources):
                values = [row[j] for row in rows[start:end] if row[j] is not None]
                if source.kind in VISUAL_KINDS and values:
                    scored.append(EvidenceItem(name, source, sum(values) / len(values)))
            items += sorted(scored, key=lambda item: -item.weight)[:k]
        return items


# -- helpers for the models' explain methods -------------------------------------------
def node_sources(batch: Batch, node_type: str) -> list[list[Source]]:
    """Per graph, its ``node_type`` nodes as sources (labels and boxes of the graph)."""
    out = []
    for b in range(batch.num_graphs):
        g = batch.get_example(b)
        if node_type not in g.node_types or g[node_type].num_nodes in (None, 0):
            out.append([])
            continue
        labels = node_labels(g)[node_type]
        boxes = g[node_type].box.tolist() if 'box' in g[node_type] else [None] * len(labels)
        out.append([Source(node_type, label, tuple(box) if box is not None else None)
                    for label, box in zip(labels, boxes)])
    return out


def word_sources(batch: Batch) -> list[list[Source]]:
    return [[Source('word', w) for w in words] for words in batch.words]


def edge_rows(batch: Batch, edge_index: Tensor, values: Tensor, src_type: str) -> list[Tensor]:
    """Per graph, ``[words, sources]`` of the per-edge ``values`` ``[E]`` of a
    relation ``src_type -> word`` (NaN where there is no edge)."""
    word = batch[schema.WORD]
    n_src = batch[src_type].num_nodes if src_type in batch.node_types else 0
    src_ptr = batch[src_type].ptr if n_src else None
    src, dst = edge_index.cpu()
    values = values.detach().float().cpu()
    graph = word.batch.cpu()[dst]
    out = []
    for b in range(batch.num_graphs):
        w0, w1 = int(word.ptr[b]), int(word.ptr[b + 1])
        s0, s1 = (int(src_ptr[b]), int(src_ptr[b + 1])) if n_src else (0, 0)
        rows = torch.full((w1 - w0, s1 - s0), math.nan)
        sel = graph == b
        rows[dst[sel] - w0, src[sel] - s0] = values[sel]
        out.append(rows)
    return out


def attention_rows(rows: Tensor) -> list[list[float]]:
    """A per-graph attention matrix as lists, no edge meaning zero weight."""
    return torch.nan_to_num(rows, nan=0.0).tolist()


def gate_rows(rows: Tensor) -> list[list[float | None]]:
    """A per-graph gate matrix as lists, no edge meaning None."""
    return [[None if math.isnan(v) else v for v in row] for row in rows.tolist()]


def encoder_rows(record: list[Tensor], encoded, special_ids: set[int], b: int,
                 prefix: list[int] | None = None) -> tuple[list[tuple[str, int]], Tensor]:
    """Tweet ``b``'s word rows of the text encoder's attention, recorded by
    :meth:`~graphmner.nn.encoder.TextEncoder.recording_attention` over one
    forward and averaged over layers and heads, with the subwords of each key
    summed into their word.

    Returns the columns, as ``(kind, index)``: ``('prefix', slot)`` for the
    ``prefix`` slots kept (only those: the others read nothing), ``('word', i)``,
    ``('aux', i)``, ``('special', 0)`` for [CLS] and [SEP] together, and the rows
    ``[words, columns]``: each sums to one over them.
    """
    weights = torch.stack(record).mean(dim=(0, 2))[b].float().cpu()  # [L_q, P + L]: mean of layers, heads
    P = weights.shape[1] - encoded.input_ids.shape[1]
    ids = encoded.input_ids[b].tolist()
    length = int(encoded.attention_mask[b].sum())
    n_words, n_aux = int(encoded.word_mask[b].sum()), int(encoded.aux_mask[b].sum())
    starts = {int(p): ('aux', i) for i, p in enumerate(encoded.aux_index[b, :n_aux].tolist())}
    starts.update({int(p): ('word', i) for i, p in enumerate(encoded.word_index[b, :n_words].tolist())
                   if ids[int(p)] not in special_ids})
    columns: list[tuple[str, int]] = [('prefix', s) for s in (prefix or [])]
    columns += [('word', i) for i in range(n_words)] + [('aux', i) for i in range(n_aux)] + [('special', 0)]
    where = {c: j for j, c in enumerate(columns)}
    owner = torch.zeros(P + length, dtype=torch.long)
    keep = torch.zeros(P + length, dtype=torch.bool)
    for s in prefix or []:
        owner[s], keep[s] = where[('prefix', s)], True
    current = ('special', 0)
    for pos in range(length):
        if ids[pos] in special_ids:
            current = ('special', 0)
        else:
            current = starts.get(pos, current)
        owner[P + pos], keep[P + pos] = where[current], True
    queries = weights[encoded.word_index[b, :n_words], :P + length]  # [words, P + length]
    rows = torch.zeros(n_words, len(columns)).index_add_(1, owner[keep], queries[:, keep])
    return columns, rows
