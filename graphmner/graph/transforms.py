"""Transforms over tweet graphs (PyG :class:`BaseTransform` style)."""
from __future__ import annotations

from collections.abc import Iterable

from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from . import schema


class KeepRelations(BaseTransform):
    r"""Keeps only the edge types a model reads, and the node types they touch
    (``word`` and ``image`` always stay), so batches carry no unused features.

    Args:
        relations (Iterable[tuple[str, str, str]]): the edge types to keep; each
            must be one of :data:`schema.EDGE_TYPES`.
    """

    def __init__(self, relations: Iterable[tuple[str, str, str]]):
        self.relations = tuple(tuple(r) for r in relations)
        unknown = [r for r in self.relations if r not in schema.EDGE_TYPES]
        if unknown:
            raise ValueError(f'Unknown relation(s) {unknown}; valid: {list(schema.EDGE_TYPES)}')
        self.node_types = {schema.WORD, schema.IMAGE}.union(
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
        return f'{type(self).__name__}({[schema.edge_type_name(r) for r in self.relations]})'
