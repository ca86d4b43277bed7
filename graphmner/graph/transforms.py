"""Transforms over tweet graphs (PyG :class:`BaseTransform` style).

A model declares the relations and node types it reads and the graph rules it
needs; the data pipeline applies them before batching
(:meth:`graphmner.models.base.MNERModel.graph_transform`), so nothing graph-
building is recomputed inside a model's ``forward``.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from . import schema
from .builder import complete_bipartite


class KeepRelations(BaseTransform):
    r"""Keeps only the edge types a model reads and the node types it reads
    (those the relations touch, those named in ``node_types``, and always
    ``word`` and ``image``), so batches carry no unused features.

    Args:
        relations (Iterable[tuple[str, str, str]]): the edge types to keep; each
            must be one of :data:`schema.EDGE_TYPES`.
        node_types (Iterable[str], optional): node types to keep even where no
            kept relation touches them (e.g. ITA's ``aux`` words, read as text).
            (default: :obj:`()`)
    """

    def __init__(self, relations: Iterable[tuple[str, str, str]], node_types: Iterable[str] = ()):
        self.relations = tuple(tuple(r) for r in relations)
        unknown = [r for r in self.relations if r not in schema.EDGE_TYPES]
        if unknown:
            raise ValueError(f'Unknown relation(s) {unknown}; valid: {list(schema.EDGE_TYPES)}')
        node_types = tuple(node_types)
        unknown_nodes = [t for t in node_types if t not in schema.NODE_TYPES]
        if unknown_nodes:
            raise ValueError(f'Unknown node type(s) {unknown_nodes}; valid: {list(schema.NODE_TYPES)}')
        self.node_types = {schema.WORD, schema.IMAGE, *node_types}.union(
            *({src, dst} for src, _, dst in self.relations))

    def forward(self, data: HeteroData) -> HeteroData:
        for edge_type in list(data.edge_types):
            if edge_type not in self.relations:
                del data[edge_type]
        for node_type in list(data.node_types):
            if node_type not in self.node_types:
                del data[node_type]
        return data

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({[schema.edge_type_name(r) for r in self.relations]}, '
                f'node_types={sorted(self.node_types)})')


class ImageAsObject(BaseTransform):
    r"""A graph whose image is usable but has no ``object`` node gets one: the
    whole image (its global feature and box ``[0, 0, 1, 1]``), a "general"
    object grounded to every word (UMGF's official code: with no detection
    the visual node is the image itself). Graphs without a usable image, or
    with objects, are returned unchanged.
    """

    def forward(self, data: HeteroData) -> HeteroData:
        image, objects = data[schema.IMAGE], data[schema.OBJECT]
        missing = bool(image.missing.any()) if 'missing' in image else False
        if missing or ('x' in objects and objects.x.shape[0] > 0):
            return data
        objects.x = image.x.view(1, -1).clone()
        objects.box = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        objects.cls = torch.tensor([-1])  # no detector class
        objects.score = torch.ones(1)
        n = data[schema.WORD].num_nodes
        for edge_type, edges in ((schema.GROUNDS, complete_bipartite(1, n)),
                                 (schema.REV_GROUNDS, complete_bipartite(n, 1)),
                                 (schema.OBJECT_INTRA, torch.zeros(2, 0, dtype=torch.long)),
                                 (schema.CONTAINS_OBJECT, complete_bipartite(1, 1))):
            if edge_type in data.edge_types:
                data[edge_type].edge_index = edges
        return data


class CompleteBipartite(BaseTransform):
    r"""Replaces the edges of a bipartite relation (and of its reverse, if
    given and present) by every source -> every destination of the graph.
    UMGF's ``edges='all'`` (its official code links every word with every
    object) and its "w/o targeted objects" ablation.

    Args:
        relation (tuple[str, str, str]): the edge type to fill.
        reverse (tuple[str, str, str], optional): its reverse edge type.
            (default: :obj:`None`)
    """

    def __init__(self, relation: tuple[str, str, str], reverse: tuple[str, str, str] | None = None):
        for r in (relation, reverse):
            if r is not None and r not in schema.EDGE_TYPES:
                raise ValueError(f'Unknown relation {r}; valid: {list(schema.EDGE_TYPES)}')
        self.relation, self.reverse = relation, reverse

    def forward(self, data: HeteroData) -> HeteroData:
        src, _, dst = self.relation
        edges = complete_bipartite(data[src].num_nodes or 0, data[dst].num_nodes or 0)
        data[self.relation].edge_index = edges
        if self.reverse is not None and self.reverse in data.edge_types:
            data[self.reverse].edge_index = edges.flip(0)
        return data

    def __repr__(self) -> str:
        return f'{type(self).__name__}({schema.edge_type_name(self.relation)})'
