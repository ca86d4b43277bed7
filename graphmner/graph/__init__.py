"""The tweet graph: schema, options, builder, datasets, transforms, inspection and export."""
from . import schema
from .builder import GraphBuilder, backend_widths, build_graph, graph_features
from .datasets import DEFAULT_CACHE, TweetGraphs, load_dataset, visual_width
from .export import FORMATS, export, to_networkx
from .inspect import display_graph, draw, layout, summary
from .options import GraphOptions
from .transforms import BuildRelations, KeepRelations

__all__ = ['BuildRelations', 'DEFAULT_CACHE', 'FORMATS', 'GraphBuilder', 'GraphOptions', 'KeepRelations',
           'TweetGraphs', 'backend_widths', 'build_graph', 'display_graph', 'draw', 'export',
           'graph_features', 'layout', 'load_dataset', 'schema', 'summary', 'to_networkx', 'visual_width']
