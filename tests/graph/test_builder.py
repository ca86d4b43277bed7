import pytest
import torch
from conftest import fake_features
from torch_geometric.data import Batch

from graphmner.data.conll import Tweet
from graphmner.features.types import VISUAL_NODES, VisualWidths
from graphmner.graph import schema
from graphmner.graph.builder import (
    all_pairs,
    build_graph,
    chain,
    complete_bipartite,
    graph_features,
    relation_edges,
)
from graphmner.graph.transforms import BuildRelations, KeepRelations


def test_edge_helpers_by_hand():
    assert chain(3).tolist() == [[0, 1], [1, 2]]
    assert chain(1).shape == (2, 0)
    assert all_pairs(3).tolist() == [[0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]]
    assert complete_bipartite(2, 2).tolist() == [[0, 0, 1, 1], [0, 1, 0, 1]]


def test_graph_with_image_has_every_node_type_and_the_stored_relations(tweet):
    aux = [('a', 'caption'), ('cat', 'caption'), ('cat', 'tag')]
    grounds = torch.tensor([[0, 1], [1, 1]])  # object 0 -> 'Rob', object 1 -> 'Rob'
    features = fake_features(num_objects=2, dim=8)
    g = build_graph(tweet, features, aux=aux, grounds=grounds)
    assert set(g.node_types) == set(schema.NODE_TYPES)
    assert g.edge_types == list(schema.STORED) == [schema.GROUNDS, schema.REV_GROUNDS]
    assert g['word'].num_nodes == 6 and g['word'].y.tolist() == [0, 1, 0, 0, 0, 0]
    assert g['region'].x.shape == (49, 8) and g['scale'].level.tolist()[:5] == [0, 0, 0, 0, 1]
    assert g[schema.GROUNDS].edge_index.tolist() == [[0, 1], [1, 1]]
    assert g[schema.REV_GROUNDS].edge_index.tolist() == [[1, 1], [0, 1]]
    # every other relation follows from the node counts, built on demand, in schema order
    full = BuildRelations(schema.EDGE_TYPES)(g.clone())
    assert full.validate() and full.edge_types == list(schema.EDGE_TYPES)
    counts = {schema.WORD_NEXT: 5, schema.WORD_INTRA: 30, schema.OBJECT_INTRA: 2, schema.GROUNDS: 2,
              schema.REV_GROUNDS: 2, schema.INFORMS: 49 * 6, schema.GUIDES: 16 * 6, schema.AUX_NEXT: 2,
              schema.AUX_INTRA: 6, schema.DESCRIBES: 18, schema.REV_DESCRIBES: 18, schema.CONTAINS_REGION: 49,
              schema.CONTAINS_OBJECT: 2}
    assert {e: full[e].num_edges for e in full.edge_types} == counts
    assert full[schema.AUX_NEXT].edge_index.tolist() == [[0, 1], [1, 2]]
    assert full[schema.CONTAINS_OBJECT].edge_index.tolist() == [[0, 0], [0, 1]]
    assert torch.equal(full[schema.INFORMS].edge_index, complete_bipartite(49, 6))
    assert g['aux'].source.tolist() == [0, 0, 2]
    assert g.aux_words == ['a', 'cat', 'cat'] and g.object_names == ['person', 'dog']
    assert not g['image'].missing.item()
    # every visual node carries the extractor's output, row for row
    f = features
    for node, attr, value in [('image', 'x', f['image'].x), ('region', 'x', f['region'].x),
                              ('region', 'box', f['region']['box']), ('scale', 'x', f['scale'].x),
                              ('scale', 'level', f['scale']['level']), ('scale', 'box', f['scale']['box']),
                              ('object', 'x', f['object'].x), ('object', 'box', f['object']['box']),
                              ('object', 'cls', f['object']['cls']),
                              ('object', 'score', f['object']['score'])]:
        assert torch.equal(g[node][attr], value), f'{node}.{attr}'
    # the graph gives back what it was built from
    back = graph_features(g)
    assert back.to_dict().keys() == f.to_dict().keys() and back.names('object') == ['person', 'dog']
    for node_type, node in f.to_dict().items():
        for key, value in node.items():
            same = torch.equal(back[node_type].x if key == 'x' else back[node_type][key], value) \
                if key != 'names' else back.names(node_type) == value
            assert same, f'{node_type}.{key}'
    assert graph_features(build_graph(tweet)) is None


def test_the_visual_node_types_are_the_schemas():
    visual = {schema.IMAGE, schema.REGION, schema.SCALE, schema.OBJECT}
    assert set(VISUAL_NODES) == visual and visual <= set(schema.NODE_TYPES)


def test_missing_image_gives_no_visual_evidence(tweet):
    widths = VisualWidths({'image': 5, 'region': 6, 'scale': 7, 'object': 8}, (7, ) * 4)
    g = build_graph(tweet, widths=widths)
    assert g.validate()
    assert g['image'].missing.item() and g['image'].x.abs().sum() == 0 and g['image'].x.shape == (1, 5)
    for node_type, width in (('region', 6), ('scale', 7), ('object', 8)):
        assert g[node_type].x.shape == (0, width)
    assert g['scale'].level.dtype == torch.long and g['object'].box.shape == (0, 4) and g.object_names == []
    assert g[schema.GROUNDS].edge_index.shape == (2, 0)
    # without the backend's widths, a text-only graph: visual x is 0 wide
    assert build_graph(tweet)['image'].x.shape == (1, 0) and build_graph(tweet)['region'].x.shape == (0, 0)


def test_unmatched_objects_are_general(tweet):
    g = build_graph(tweet, fake_features(num_objects=2, dim=8))
    assert g[schema.GROUNDS].edge_index.shape == (2, 12)  # 2 objects x 6 words


def test_relation_edges_refuses_a_stored_relation(tweet):
    with pytest.raises(ValueError, match=r"^\('object', 'grounds', 'word'\) is not built on demand"):
        relation_edges(build_graph(tweet), schema.GROUNDS)


def test_graphs_with_and_without_images_batch_together(tweet):
    relations = [schema.WORD_NEXT, schema.GROUNDS, schema.INFORMS]
    keep = lambda g: BuildRelations(relations)(KeepRelations(relations)(g))
    batch = Batch.from_data_list([keep(build_graph(tweet, fake_features(2, dim=2048))),
                                  keep(build_graph(tweet, widths=VisualWidths.uniform(2048)))])
    assert batch['word'].num_nodes == 12 and batch['region'].num_nodes == 49
    assert batch[schema.GROUNDS].edge_index[1].max() < 6  # the second graph has no objects
    assert batch[schema.INFORMS].num_edges == 49 * 6 and batch[schema.WORD_NEXT].num_edges == 10
    assert schema.WORD_INTRA not in batch.edge_types and 'scale' not in batch.node_types
    assert batch.words[1] == tweet.words


def test_bad_input_is_explained(tweet):
    with pytest.raises(ValueError, match='no words'):
        build_graph(Tweet('x', [], []))
    with pytest.raises(ValueError, match='outside the label set'):
        build_graph(Tweet('x', ['a'], ['B-FOO']))
    with pytest.raises(ValueError, match='outside the graph'):
        build_graph(tweet, fake_features(1, dim=8), grounds=torch.tensor([[3], [0]]))
    with pytest.raises(ValueError, match='Unknown aux source'):
        build_graph(tweet, aux=[('x', 'speech')])
    with pytest.raises(ValueError, match='Unknown relation'):
        KeepRelations([('word', 'likes', 'word')])


def test_targets_are_iob2_repaired_but_labels_are_kept():
    from graphmner.data.labels import BIO_LABELS
    g = build_graph(Tweet('x', ['a', 'b'], ['O', 'I-PER']))
    assert g.labels == ['O', 'I-PER'] and g['word'].y.tolist() == [0, BIO_LABELS.index('B-PER')]


def test_builder_records_the_backend_and_its_width_on_every_graph(tmp_path, tweet):
    """Descriptors without a detector: 42-d visual nodes, no objects; a tweet whose
    image is missing gets the same width, so the two batch."""
    from PIL import Image

    from graphmner.graph.builder import GraphBuilder
    from graphmner.graph.options import GraphOptions

    Image.new('RGB', (64, 48), (200, 40, 40)).save(tmp_path / 'red.png')
    options = GraphOptions(vision_arch='descriptors', vision_weights=None, detector_weights=None)
    builder = GraphBuilder(options, image_root=tmp_path, feature_cache=tmp_path / 'cache')
    tweets = [Tweet('red', tweet.words, tweet.labels), Tweet('gone', tweet.words, tweet.labels)]
    graphs, report = builder(tweets)
    backend = 'descriptors (42-d colour, gradient and LBP histograms; no weights); no detector'
    assert [g.visual_backend for g in graphs] == [backend] * 2 and report['visual_backend'] == backend
    assert graphs[0]['region'].x.shape == (49, 42) and graphs[0]['object'].x.shape == (0, 42)
    assert graphs[1]['image'].missing.item() and graphs[1]['image'].x.shape == (1, 42)
    assert builder.widths() == VisualWidths.uniform(42)
    batch = Batch.from_data_list(graphs)
    assert batch['image'].x.shape == (2, 42) and batch.visual_backend == [backend] * 2


def test_image_ids_that_leave_the_image_folder_are_never_followed(tmp_path, tweet, caplog):
    """Ids written in code (the CoNLL reader already refuses them) that point outside the
    folder: each such tweet gets no image and is reported; the photo outside is never read."""
    from PIL import Image

    from graphmner.data.demo import DEMO_OPTIONS
    from graphmner.graph.builder import GraphBuilder
    from graphmner.graph.options import GraphOptions

    images = tmp_path / 'images'
    images.mkdir()
    outside = tmp_path / 'secret.png'
    Image.new('RGB', (32, 32), 'red').save(outside)
    ids = ['../secret', str(outside.with_suffix('')), 'secret\x00', '9' * 300, 'x/../../secret', 'absent']
    tweets = [Tweet(i, tweet.words, tweet.labels) for i in ids]
    builder = GraphBuilder(GraphOptions(**DEMO_OPTIONS), image_root=images, feature_cache=tmp_path / 'cache')
    with caplog.at_level('WARNING', logger='graphmner.data'):
        graphs, report = builder(tweets)
    assert [g['image'].missing.item() for g in graphs] == [True] * 6
    assert report['image_problems'] == {'unsafe_image_id': 5, 'no_image': 1}  # 'absent': no such file
    assert list(report['unsafe_image_ids']) == [i[:80] for i in ids[:5]]
    assert '5 tweet(s) with an image id that is not a plain file name' in caplog.text
    assert not (tmp_path / 'cache').exists()  # nothing was read, so nothing was extracted


def test_ocr_words_come_from_the_text_reader_and_are_cached(tmp_path, tweet, monkeypatch):
    """options.ocr reads the printed words with RapidOCR (the aux 'ocr' words, in reading
    order); a second build reads them from the cache beside the features: no engine loads."""
    import os

    import matplotlib
    from PIL import Image, ImageDraw, ImageFont
    from skimage import data

    from graphmner.features import ocr
    from graphmner.graph.builder import GraphBuilder
    from graphmner.graph.options import GraphOptions

    images = tmp_path / 'images'
    images.mkdir()
    sign = Image.fromarray(data.coffee())
    font = ImageFont.truetype(os.path.join(matplotlib.get_data_path(), 'fonts', 'ttf', 'DejaVuSans-Bold.ttf'),
                              40)
    ImageDraw.Draw(sign).text((60, 300), 'Pikolo Espresso Bar', font=font, fill='white', stroke_width=2,
                              stroke_fill='black')
    sign.save(images / 'sign.png')
    Image.new('RGB', (64, 48), 'white').save(images / 'plain.png')
    options = GraphOptions(vision_arch='descriptors', vision_weights=None, detector_weights=None, ocr=True,
                           aux_sources=('ocr',))
    tweets = [Tweet('sign', tweet.words, tweet.labels), Tweet('plain', tweet.words, tweet.labels),
              Tweet('sign', tweet.words, tweet.labels)]

    def build():
        builder = GraphBuilder(options, image_root=images, feature_cache=tmp_path / 'cache', progress=False)
        return builder(tweets)

    graphs, report = build()
    assert [g.aux_words for g in graphs] == [['Pikolo', 'Espresso', 'Bar'], [], ['Pikolo', 'Espresso', 'Bar']]
    assert graphs[0]['aux'].source.tolist() == [schema.AUX_SOURCES.index('ocr')] * 3
    assert report['ocr'] == {'images': 2, 'read': 2, 'with_words': 1}

    def no_engine():
        raise AssertionError('the OCR engine was loaded although every image was cached')
    monkeypatch.setattr(ocr, '_import_rapidocr', no_engine)
    again, report = build()
    assert [g.aux_words for g in again] == [g.aux_words for g in graphs]
    assert report['ocr'] == {'images': 2, 'read': 0, 'with_words': 1}
    options = GraphOptions(**{**options.__dict__, 'ocr_min_confidence': 0.99})  # another cache folder
    with pytest.raises(AssertionError, match='engine was loaded'):
        build()
