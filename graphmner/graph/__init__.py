"""The tweet graph: schema, builder, transforms, inspection and export."""
from . import schema
from .builder import GraphBuilder, build_graph
from .export import FORMATS, export, to_networkx
from .inspect import draw, layout, summary
from .transforms import KeepRelations

__all__ = ['FORMATS', 'GraphBuilder', 'KeepRelations', 'build_graph', 'draw', 'export', 'layout', 'schema',
           'summary', 'to_networkx']
