"""Graph files: tweet graphs written back to back and read one at a time, and the
streamed splits load_dataset(on_disk=True) builds from them."""
import pickle

import pytest
import torch
from torch_geometric.data import HeteroData
from torch_geometric.loader import DataLoader

from graphmner.data import read_conll
from graphmner.data.demo import demo_split_path
from graphmner.graph import build_graph, load_dataset, schema
from graphmner.graph.datasets import StreamedTweetGraphs, merge_reports
from graphmner.graph.storage import (
    GraphFile,
    GraphFileError,
    GraphFileWriter,
    graph_from_bytes,
    graph_to_bytes,
)
from graphmner.graph.transforms import KeepRelations


@pytest.fixture(scope='module')
def demo(graph_cache):
    """The demo's training graphs as load_dataset holds them in memory (photos, captions)."""
    return load_dataset('demo', 'train', cache_dir=graph_cache)


def assert_same_graph(a: HeteroData, b: HeteroData):
    assert a.node_types == b.node_types and a.edge_types == b.edge_types
    for store_a, store_b in zip(a.stores, b.stores, strict=True):
        assert sorted(store_a.keys()) == sorted(store_b.keys())
        for key, value in store_a.items():
            other = store_b[key]
            if isinstance(value, torch.Tensor):
                assert value.dtype == other.dtype and torch.equal(value, other), key
            else:
                assert value == other, key


def test_a_graph_round_trips_with_its_types_in_order(demo):
    for graph in demo:
        record = graph_to_bytes(graph)
        assert_same_graph(graph, graph_from_bytes(record))
        # only the graph's own tensors: not the collated split its tensors view
        own = sum(v.numel() * v.element_size() for store in graph.stores for v in store.values()
                  if isinstance(v, torch.Tensor))
        assert len(record) < own + 16_000  # the header and the words: a few kB


def test_graph_file_reads_each_graph_by_index(demo, tmp_path):
    path = tmp_path / 'train.graphs'
    with GraphFileWriter(path) as writer:
        for graph in demo:
            writer.append(graph)
    graphs = GraphFile(path)
    assert len(graphs) == len(demo) == 24
    for i in (0, 5, 23, -1):
        assert_same_graph(graphs[i], demo[i])
    with pytest.raises(IndexError, match='graph 24 of a file of 24'):
        graphs[24]
    assert [g.image_id for g in graphs] == [g.image_id for g in demo]
    keep = KeepRelations((schema.GROUNDS, ))
    assert GraphFile(path, transform=keep)[0].edge_types == [schema.GROUNDS]
    # DataLoader workers (forked, and pickled copies) each read through their own handle
    copy = pickle.loads(pickle.dumps(graphs))
    assert_same_graph(copy[3], demo[3])
    batches = list(DataLoader(graphs, batch_size=5, num_workers=2))
    assert [w for b in batches for w in b.image_id] == [g.image_id for g in demo]


def test_a_cut_off_or_foreign_file_is_refused(demo, tmp_path):
    path = tmp_path / 'train.graphs'
    with GraphFileWriter(path) as writer:
        for graph in demo:
            writer.append(graph)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(GraphFileError, match='is not a graph file or is cut off'):
        GraphFile(path)
    path.write_bytes(b'abc')
    with pytest.raises(GraphFileError, match=r'is not a graph file \(only 3 bytes\)'):
        GraphFile(path)


def test_a_failed_write_leaves_no_file(demo, tmp_path):
    path = tmp_path / 'train.graphs'
    with pytest.raises(RuntimeError), GraphFileWriter(path) as writer:
        writer.append(demo[0])
        raise RuntimeError('killed')
    assert list(tmp_path.iterdir()) == []


def test_reports_of_chunks_add_up():
    total = {}
    merge_reports(total, {'tweets': 3, 'image_problems': {'unreadable': 1}, 'visual_backend': 'b',
                          'extraction': '3 images'})
    merge_reports(total, {'tweets': 2, 'image_problems': {'unreadable': 1, 'too small': 1},
                          'visual_backend': 'b', 'extraction': '2 images'})
    assert total == {'tweets': 5, 'image_problems': {'unreadable': 2, 'too small': 1}, 'visual_backend': 'b',
                     'extraction': ['3 images', '2 images']}


def chunk_builder(calls):
    def build(tweets):
        calls.append(len(tweets))
        graphs = [build_graph(t) for t in tweets]
        return graphs, {'tweets': len(tweets), 'images_missing': len(tweets)}
    return build


def test_a_streamed_split_is_built_in_chunks_and_read_from_the_cache(tmp_path, caplog):
    conll = demo_split_path('train')
    calls = []
    split = StreamedTweetGraphs(conll, tmp_path, chunk_builder(calls), 'k', chunk_size=5)
    assert calls == [5, 5, 5, 5, 4] and split.built
    assert split.report == {'tweets': 24, 'images_missing': 24}
    for graph, tweet in zip(split, read_conll(conll), strict=True):
        assert_same_graph(graph, build_graph(tweet))
    again = StreamedTweetGraphs(conll, tmp_path, chunk_builder(calls), 'k', chunk_size=5)
    assert not again.built and len(again) == 24 and len(calls) == 5
    [path] = (tmp_path / 'processed').glob('*.graphs')
    path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level('INFO', logger='graphmner.data'):
        rebuilt = StreamedTweetGraphs(conll, tmp_path, chunk_builder(calls), 'k', chunk_size=5)
    assert rebuilt.built and len(rebuilt) == 24
    assert any('is not usable (GraphFileError' in r.getMessage() for r in caplog.records)


def test_load_dataset_on_disk_gives_the_in_memory_graphs(demo, graph_cache):
    streamed = load_dataset('demo', 'train', cache_dir=graph_cache, on_disk=True)
    assert isinstance(streamed, StreamedTweetGraphs)
    assert streamed.report['tweets'] == 24 and streamed.labels == demo.labels
    for a, b in zip(demo, streamed, strict=True):
        assert_same_graph(a, b)
