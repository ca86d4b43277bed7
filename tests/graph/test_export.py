"""Every export format read back with the same node and edge counts."""
import json
import re

import networkx as nx
import pytest
import torch
from conftest import fake_features, load_experiment

from graphmner.data.conll import Tweet
from graphmner.graph.builder import build_graph
from graphmner.graph.export import FORMATS, export, to_networkx

TWEET = Tweet('demo_1', ['Handsome', 'Rob', 'after', 'http://t.co/x', 'fish', 'dinner'],
              ['O', 'B-PER', 'O', 'O', 'O', 'O'])


BACKEND = 'resnet50 (imagenet); yolov8n.pt'


def graphs():
    return {
        'full': build_graph(TWEET, fake_features(2, 8), aux=[('a', 'caption'), ('dog', 'tag')],
                            grounds=torch.tensor([[0, 1], [1, 4]]), visual_backend=BACKEND),
        'missing': build_graph(TWEET, None, feature_dim=8),
    }


@pytest.fixture(params=['full', 'missing'])
def g(request):
    return graphs()[request.param]


def counts(g):
    nodes = sum(g[t].num_nodes for t in g.node_types)
    edges = sum(g[e].num_edges for e in g.edge_types)
    return nodes, edges


def test_to_networkx(g):
    G = to_networkx(g)
    assert isinstance(G, nx.MultiDiGraph)
    assert (G.number_of_nodes(), G.number_of_edges()) == counts(g)
    assert G.nodes['word:1']['label'] == 'Rob' and G.nodes['word:1']['tag'] == 'B-PER'
    assert G.nodes['word:0']['node_type'] == 'word'
    for _, data in G.nodes(data=True):
        assert 'type' not in data and {'x', 'y', 'label', 'node_type'} <= set(data)
        assert all(isinstance(v, (int, float, bool, str)) for v in data.values())
    for _, _, data in G.edges(data=True):
        assert 'type' not in data and data['edge_type'].count('__') == 2
        assert all(isinstance(v, (int, float, bool, str)) for v in data.values())
    assert G.nodes['image:0']['missing'] == (g['region'].num_nodes == 0)


def test_visual_backend_is_a_graph_attribute(tmp_path):
    g = graphs()['full']
    assert to_networkx(g).graph['visual_backend'] == BACKEND
    assert to_networkx(graphs()['missing']).graph['visual_backend'] == 'not recorded'
    assert nx.read_graphml(export(g, tmp_path / 'g.graphml')).graph['visual_backend'] == BACKEND
    text, data = _read_html(export(g, tmp_path / 'g.html'))
    assert data['graph']['visual_backend'] == BACKEND
    assert "visual features: '+esc(G.graph.visual_backend" in text  # shown in the side panel


def test_object_attributes():
    G = to_networkx(graphs()['full'])
    obj = G.nodes['object:1']
    assert obj['label'] == 'dog' and obj['cls'] == 1 and 0 <= obj['score'] <= 1
    assert G.nodes['region:3']['label'] == 'region 3'
    assert G.nodes['aux:1']['source'] == 'tag'
    assert G.has_edge('object:0', 'word:1', key='object__grounds__word')


def test_edge_weights():
    g = graphs()['full']
    G = to_networkx(g, edge_weights={('object', 'grounds', 'word'): torch.tensor([0.25, 0.5])})
    assert G.edges['object:0', 'word:1', 'object__grounds__word']['weight'] == 0.25


def _read_html(path):
    text = path.read_text()
    m = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', text, re.DOTALL)
    return text, json.loads(m.group(1))


def test_formats_round_trip(g, tmp_path):
    n, e = counts(g)
    for suffix in FORMATS:
        path = export(g, tmp_path / f'g{suffix}')
        assert path.exists()
        if suffix == '.graphml':
            H = nx.read_graphml(path)
            assert (H.number_of_nodes(), H.number_of_edges()) == (n, e)
            assert H.nodes['word:1']['label'] == 'Rob'
        elif suffix == '.gexf':
            H = nx.read_gexf(path)
            assert (H.number_of_nodes(), H.number_of_edges()) == (n, e)
            assert H.nodes['word:1']['label'] == 'Rob'
            assert H.nodes['word:1']['viz']['position']['x'] == 60.0
            assert ' type="' not in path.read_text().split('<edges', 1)[-1].replace(' type="directed"', '')
        elif suffix == '.json':
            data = json.loads(path.read_text())
            assert (len(data['nodes']), len(data['links'])) == (n, e)
            assert nx.node_link_graph(data, edges='links').number_of_edges() == e
        elif suffix == '.cyjs':
            data = json.loads(path.read_text())['elements']
            assert (len(data['nodes']), len(data['edges'])) == (n, e)
            assert {'x', 'y'} <= set(data['nodes'][0]['position'])
        else:
            text, data = _read_html(path)
            assert (len(data['nodes']), len(data['links'])) == (n, e)
            assert 'http://' not in text and 'https://' not in text
            assert any(node['label'] == 'http://t.co/x' for node in data['nodes'])
            assert '<svg' in text and '<script src' not in text


def test_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match=r'\.graphml.*\.html'):
        export(graphs()['missing'], tmp_path / 'g.dot')


def test_script_args_and_fake_visual():
    script = load_experiment('export_graphs')
    args = script.parse_args(['--count', '3', '--format', 'graphml,.HTML,png'])
    assert args.formats == ['graphml', 'html', 'png'] and args.count == 3
    with pytest.raises(SystemExit):
        script.parse_args(['--format', 'dot'])
    g = graphs()['missing']
    g.aux_words = ['a', 'dog']
    g['aux'].num_nodes, g['aux'].source = 2, torch.tensor([0, 2])
    fake = script.with_fake_visual(g)
    assert fake['region'].num_nodes == 49 and fake['object'].num_nodes == 3
    assert fake.words == g.words and fake.aux_words == ['a', 'dog']
