"""Graph transforms: what a model keeps, and UMGF's rules as transforms."""
import pytest
import torch
from conftest import fake_features
from torch_geometric.data import Batch

from graphmner.graph import schema
from graphmner.graph.builder import build_graph
from graphmner.graph.transforms import CompleteBipartite, ImageAsObject, KeepRelations


def test_keep_relations_keeps_declared_node_types(tweet):
    g = build_graph(tweet, fake_features(2, 8), aux=[('a', 'caption')])
    kept = KeepRelations([schema.WORD_NEXT], node_types=[schema.AUX])(g.clone())
    assert set(kept.node_types) == {schema.WORD, schema.IMAGE, schema.AUX}
    assert kept.edge_types == [schema.WORD_NEXT]
    with pytest.raises(ValueError, match=r"Unknown node type\(s\) \['pixel'\]"):
        KeepRelations([], node_types=['pixel'])


def test_image_as_object_only_for_a_usable_image_without_objects(tweet):
    image_only = build_graph(tweet, fake_features(0, 8, seed=3))
    g = ImageAsObject()(image_only.clone())
    assert torch.equal(g[schema.OBJECT].x, image_only[schema.IMAGE].x)
    assert g[schema.OBJECT].box.tolist() == [[0.0, 0.0, 1.0, 1.0]] and g[schema.OBJECT].cls.tolist() == [-1]
    assert g[schema.GROUNDS].edge_index.tolist() == [[0] * 6, list(range(6))]
    assert torch.equal(g[schema.REV_GROUNDS].edge_index, g[schema.GROUNDS].edge_index.flip(0))
    assert g[schema.CONTAINS_OBJECT].edge_index.tolist() == [[0], [0]]
    for unchanged in (build_graph(tweet, None, feature_dim=8), build_graph(tweet, fake_features(2, 8))):
        out = ImageAsObject()(unchanged.clone())
        assert torch.equal(out[schema.OBJECT].x, unchanged[schema.OBJECT].x)
        assert torch.equal(out[schema.GROUNDS].edge_index, unchanged[schema.GROUNDS].edge_index)
    # graphs with and without the fallback node still batch
    Batch.from_data_list([g, build_graph(tweet, fake_features(2, 8))])


def test_complete_bipartite_links_every_object_to_every_word(tweet):
    grounded = build_graph(tweet, fake_features(2, 8), grounds=torch.tensor([[0], [1]]))
    g = CompleteBipartite(schema.GROUNDS, schema.REV_GROUNDS)(grounded.clone())
    assert g[schema.GROUNDS].edge_index.shape == (2, 12)
    assert set(map(tuple, g[schema.GROUNDS].edge_index.t().tolist())) == {(o, w) for o in range(2)
                                                                          for w in range(6)}
    assert torch.equal(g[schema.REV_GROUNDS].edge_index, g[schema.GROUNDS].edge_index.flip(0))
    with pytest.raises(ValueError, match='Unknown relation'):
        CompleteBipartite(('object', 'likes', 'word'))
