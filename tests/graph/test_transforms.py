"""Graph transforms: what a model keeps, and UMGF's rules as transforms."""
import pytest
import torch
from conftest import fake_features
from torch_geometric.data import Batch

from graphmner.data.conll import Tweet
from graphmner.features.types import VisualWidths
from graphmner.graph import schema
from graphmner.graph.builder import build_graph
from graphmner.graph.transforms import (
    BuildRelations,
    CompleteBipartite,
    DropImage,
    GeneralWordObjects,
    ImageAsObject,
    KeepRelations,
    RegionsAsObjects,
    SelectAux,
)


def test_keep_relations_keeps_declared_node_types(tweet):
    g = build_graph(tweet, fake_features(2, 8), aux=[('a', 'caption')])
    kept = KeepRelations([schema.GROUNDS], node_types=[schema.AUX])(g.clone())
    assert set(kept.node_types) == {schema.WORD, schema.IMAGE, schema.AUX, schema.OBJECT}
    assert kept.edge_types == [schema.GROUNDS]
    with pytest.raises(ValueError, match=r"Unknown node type\(s\) \['pixel'\]"):
        KeepRelations([], node_types=['pixel'])


def test_image_as_object_only_for_a_usable_image_without_objects(tweet):
    image_only = build_graph(tweet, fake_features(0, 8, seed=3))
    g = ImageAsObject()(image_only.clone())
    assert torch.equal(g[schema.OBJECT].x, image_only[schema.IMAGE].x)
    assert g[schema.OBJECT].box.tolist() == [[0.0, 0.0, 1.0, 1.0]] and g[schema.OBJECT].cls.tolist() == [-1]
    assert g[schema.GROUNDS].edge_index.tolist() == [[0] * 6, list(range(6))]
    assert torch.equal(g[schema.REV_GROUNDS].edge_index, g[schema.GROUNDS].edge_index.flip(0))
    # the relations built on demand follow the new node
    built = BuildRelations([schema.CONTAINS_OBJECT, schema.OBJECT_INTRA])(g.clone())
    assert built[schema.CONTAINS_OBJECT].edge_index.tolist() == [[0], [0]]
    assert built[schema.OBJECT_INTRA].edge_index.shape == (2, 0)
    assert ImageAsObject()(BuildRelations([schema.CONTAINS_OBJECT])(image_only.clone()))[
        schema.CONTAINS_OBJECT].edge_index.tolist() == [[0], [0]]
    for unchanged in (build_graph(tweet, None, widths=VisualWidths.uniform(8)),
                      build_graph(tweet, fake_features(2, 8))):
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


def every_word(k, n):
    """Object -> word edges linking each of k objects with each of n words, object by object."""
    return [[o for o in range(k) for _ in range(n)], [w for _ in range(k) for w in range(n)]]


def test_general_word_objects_are_the_official_four_crops(tweet):
    """One node per general word in the official order: 'person' takes the most confident
    detected person (not the first, not a more confident dog), the other three the image."""
    g = build_graph(tweet, fake_features(3, 8, names=('person', 'dog'), seed=2))  # person, dog, person
    g[schema.OBJECT].score = torch.tensor([0.3, 0.9, 0.7])
    out = BuildRelations([schema.OBJECT_INTRA])(GeneralWordObjects()(g.clone()))
    objects, image = out[schema.OBJECT], g[schema.IMAGE].x[0]
    assert torch.equal(objects.x, torch.stack([g[schema.OBJECT].x[2], image, image, image]))
    assert torch.equal(objects.box[0], g[schema.OBJECT].box[2])
    assert objects.box[1:].tolist() == [[0.0, 0.0, 1.0, 1.0]] * 3
    assert objects.cls.tolist() == [2, -1, -1, -1] and objects.score.tolist() == pytest.approx([0.7, 1, 1, 1])
    assert out.object_names == ['person: person', 'miscellaneous: whole image', 'location: whole image',
                                'organization: whole image']
    # every crop comes from a general word: linked to every word, whatever the grounding said
    assert out[schema.GROUNDS].edge_index.tolist() == every_word(4, 6)
    assert torch.equal(out[schema.REV_GROUNDS].edge_index, out[schema.GROUNDS].edge_index.flip(0))
    assert out[schema.OBJECT_INTRA].edge_index.shape == (2, 12)
    # no person detected: the image for all four (the official fallback)
    no_person = GeneralWordObjects()(build_graph(tweet, fake_features(2, 8, names=('dog', ), seed=2)))
    assert torch.equal(no_person[schema.OBJECT].x, image.expand(4, -1))
    assert torch.equal(GeneralWordObjects()(build_graph(tweet, fake_features(0, 8, seed=2)))[schema.OBJECT].x,
                       image.expand(4, -1))
    # a word names the classes it takes
    animal = GeneralWordObjects({'animal': ('dog', )})(g.clone())
    assert torch.equal(animal[schema.OBJECT].x, g[schema.OBJECT].x[1:2])
    assert animal.object_names == ['animal: dog']
    # no usable image: no visual node
    missing = GeneralWordObjects()(build_graph(tweet, None, widths=VisualWidths.uniform(8)))
    assert missing[schema.OBJECT].x.shape == (0, 8) and missing[schema.GROUNDS].edge_index.shape == (2, 0)
    Batch.from_data_list([out, missing, no_person])
    with pytest.raises(ValueError, match='at least one general word'):
        GeneralWordObjects({})


def test_regions_as_objects_is_the_untargeted_ablation(tweet):
    """"w/o Tar.": the 49 grid cells become the visual nodes, each linked to every word."""
    g = build_graph(tweet, fake_features(2, 8, seed=4), grounds=torch.tensor([[0], [1]]))
    out = BuildRelations([schema.OBJECT_INTRA])(RegionsAsObjects()(g.clone()))
    assert torch.equal(out[schema.OBJECT].x, g[schema.REGION].x)
    assert torch.equal(out[schema.OBJECT].box, g[schema.REGION].box)
    assert out[schema.OBJECT].cls.tolist() == [-1] * 49 and out[schema.OBJECT].score.tolist() == [1.0] * 49
    assert out.object_names == [f'region {i}' for i in range(49)]
    assert schema.REGION not in out.node_types
    assert out[schema.GROUNDS].edge_index.tolist() == every_word(49, 6)
    assert torch.equal(out[schema.REV_GROUNDS].edge_index, out[schema.GROUNDS].edge_index.flip(0))
    assert out[schema.OBJECT_INTRA].edge_index.shape == (2, 49 * 48)
    missing = RegionsAsObjects()(build_graph(tweet, None, widths=VisualWidths.uniform(8)))
    assert missing[schema.OBJECT].x.shape == (0, 8) and missing[schema.GROUNDS].edge_index.shape == (2, 0)
    Batch.from_data_list([out, missing])
    with pytest.raises(ValueError, match="RegionsAsObjects needs the graph's 'region' nodes"):
        RegionsAsObjects()(KeepRelations([schema.GROUNDS])(g.clone()))


def assert_same_graph(a, b):
    """Every node and edge store, key and tensor (values, dtype, shape) and every graph attribute equal."""
    assert a.node_types == b.node_types and a.edge_types == b.edge_types
    for name in a.node_types + a.edge_types:
        assert sorted(a[name].keys()) == sorted(b[name].keys()), name
        for key in a[name].keys():
            x, y = a[name][key], b[name][key]
            if isinstance(x, torch.Tensor):
                assert x.dtype == y.dtype and torch.equal(x, y), (name, key)
            else:
                assert x == y, (name, key)
    for key in ('words', 'labels', 'aux_words', 'object_names', 'image_id', 'visual_backend'):
        assert a[key] == b[key], key


def test_dropped_image_graph_is_the_builders_no_image_graph(tweet):
    aux = [('a', 'caption'), ('dog', 'caption'), ('person', 'tag'), ('dog', 'tag'), ('EXIT', 'ocr')]
    with_image = build_graph(tweet, fake_features(2, 8), aux=aux, grounds=torch.tensor([[0], [1]]),
                             visual_backend='fake')
    no_image = build_graph(tweet, None, aux=aux[:2], widths=VisualWidths.uniform(8), visual_backend='fake')
    assert_same_graph(DropImage(1.0)(with_image.clone()), no_image)
    assert_same_graph(DropImage(0.0)(with_image.clone()), with_image)
    # what a model keeps of the graph, relations built on demand included, is dropped the same way
    relations = [schema.GROUNDS, schema.DESCRIBES, schema.AUX_NEXT, schema.INFORMS]
    keep = lambda g: BuildRelations(relations)(KeepRelations(relations, node_types=[schema.AUX])(g))
    kept = keep(with_image.clone())
    assert kept[schema.DESCRIBES].num_edges == 5 * 6
    assert_same_graph(DropImage(1.0)(keep(with_image.clone())), keep(no_image.clone()))


def test_build_relations_builds_only_the_on_demand_ones_in_schema_order(tweet):
    g = build_graph(tweet, fake_features(2, 8), grounds=torch.tensor([[0], [1]]))
    built = BuildRelations([schema.INFORMS, schema.GROUNDS, schema.WORD_NEXT])(g.clone())
    assert built.edge_types == [schema.WORD_NEXT, schema.GROUNDS, schema.REV_GROUNDS, schema.INFORMS]
    assert torch.equal(built[schema.GROUNDS].edge_index, g[schema.GROUNDS].edge_index)  # stored: kept
    assert built[schema.WORD_NEXT].edge_index.tolist() == [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]
    with pytest.raises(ValueError, match='Unknown relation'):
        BuildRelations([('word', 'likes', 'word')])


def test_dropped_demo_tweets_equal_the_builder_without_their_photos(tmp_path):
    from graphmner.data.conll import read_conll
    from graphmner.data.demo import DEMO_CAPTIONS, DEMO_OPTIONS, demo_image_root, demo_split_path
    from graphmner.graph import GraphBuilder, GraphOptions

    tweets = read_conll(demo_split_path('test'))[:4]
    builder = GraphBuilder(GraphOptions(**{**DEMO_OPTIONS, 'aux_sources': ('caption', 'tag')}),
                           image_root=demo_image_root(), captions=DEMO_CAPTIONS, feature_cache=tmp_path,
                           progress=False)
    with_images, report = builder(tweets)
    assert report['images_missing'] == 0 and all(g[schema.REGION].num_nodes > 0 for g in with_images)
    without, _ = builder(tweets, image_paths=[None] * len(tweets))
    assert any(g.aux_words for g in without)  # the caption words outlive the image
    for g, expected in zip(with_images, without):
        assert_same_graph(DropImage(1.0, seed=3)(g.clone()), expected)


def test_drop_image_draws_the_same_tweets_in_any_order_and_nests(tweet):
    graphs = [build_graph(Tweet(f'img{i}', tweet.words, tweet.labels), fake_features(1, 8, seed=i))
              for i in range(400)]
    dropped = {p: [DropImage(p, seed=1).drops(g) for g in graphs] for p in (0.0, 0.25, 0.5, 1.0)}
    assert sum(dropped[0.0]) == 0 and sum(dropped[1.0]) == 400
    assert 170 < sum(dropped[0.5]) < 230 and 70 < sum(dropped[0.25]) < 130
    assert all(a <= b for a, b in zip(dropped[0.25], dropped[0.5]))  # dropped at 0.25 -> dropped at 0.5
    assert [DropImage(0.5, seed=1).drops(g) for g in reversed(graphs)] == dropped[0.5][::-1]
    assert [DropImage(0.5, seed=2).drops(g) for g in graphs] != dropped[0.5]
    out = [DropImage(0.5, seed=1)(g.clone()) for g in graphs]
    assert [bool(g[schema.IMAGE].missing) for g in out] == dropped[0.5]
    assert Batch.from_data_list(out).num_graphs == 400  # dropped and kept graphs batch together
    with pytest.raises(ValueError, match=r"'p' is a probability in \[0, 1\], got 1.5"):
        DropImage(1.5)


def test_select_aux_keeps_the_sources_read_in_their_order(tweet):
    aux = [('a', 'caption'), ('dog', 'caption'), ('person', 'tag'), ('EXIT', 'ocr')]
    g = SelectAux(['ocr', 'caption'])(build_graph(tweet, fake_features(2, 8), aux=aux))
    assert g.aux_words == ['EXIT', 'a', 'dog']
    assert g[schema.AUX].num_nodes == 3
    sources = [schema.AUX_SOURCES.index(s) for s in ('ocr', 'caption', 'caption')]
    assert g[schema.AUX].source.tolist() == sources
    built = BuildRelations([schema.DESCRIBES, schema.AUX_INTRA, schema.REV_DESCRIBES])(g)
    assert built[schema.DESCRIBES].num_edges == 3 * 6 and built[schema.AUX_INTRA].num_edges == 3 * 2
    pairs = lambda relation: set(map(tuple, built[relation].edge_index.T.tolist()))
    assert {(a, w) for w, a in pairs(schema.REV_DESCRIBES)} == pairs(schema.DESCRIBES)
    with pytest.raises(ValueError, match=r"Unknown aux source\(s\) \['speech'\]"):
        SelectAux(['speech'])
