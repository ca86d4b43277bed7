"""Every export format read back with the same node and edge counts."""
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import networkx as nx
import pytest
import torch
from conftest import fake_features, load_experiment

from graphmner.data.conll import Tweet
from graphmner.features.types import VisualWidths
from graphmner.graph.builder import build_graph
from graphmner.graph.export import FORMATS, export, to_networkx
from graphmner.graph.inspect import display_graph

TWEET = Tweet('demo_1', ['Handsome', 'Rob', 'after', 'http://t.co/x', 'fish', 'dinner'],
              ['O', 'B-PER', 'O', 'O', 'O', 'O'])


BACKEND = 'resnet50 (imagenet); yolov8n.pt'


def graphs():
    return {
        'full': build_graph(TWEET, fake_features(2, 8), aux=[('a', 'caption'), ('dog', 'tag')],
                            grounds=torch.tensor([[0, 1], [1, 4]]), visual_backend=BACKEND),
        'missing': build_graph(TWEET, None, widths=VisualWidths.uniform(8)),
    }


@pytest.fixture(params=['full', 'missing'])
def g(request):
    return graphs()[request.param]


def counts(g):
    """Nodes and edges of the graph as shown: its stored relations and those built on demand."""
    g = display_graph(g)
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


# -- hostile text stays text -------------------------------------------------------------------

#: Words that would run script if the page put them into markup unescaped; each marks the
#: page's <body> with data-pwned if it runs.
HOSTILE_WORDS = ['</script><script>document.body.dataset.pwned=1</script>',
                 '<img src=x onerror="document.body.dataset.pwned=2">',
                 'javascript:document.body.dataset.pwned=3', '&amp;', '<b>bold</b>', '"', "'"]
HOSTILE_ID = 'a&b<c>"d\'</title><img src=x onerror=document.body.dataset.pwned=6>'


def hostile_graph():
    tweet = Tweet(HOSTILE_ID, HOSTILE_WORDS, ['B-PER'] + ['O'] * (len(HOSTILE_WORDS) - 1))
    return build_graph(tweet, fake_features(1, 8, names=('<svg onload=document.body.dataset.pwned=4>', )),
                       aux=[('<img src=x onerror=document.body.dataset.pwned=5>', 'caption')])


def test_hostile_text_is_data_not_markup(tmp_path):
    path = export(hostile_graph(), tmp_path / 'g.html')
    text, data = _read_html(path)
    assert text.count('<script') == 2 and '<img' not in text and '<svg onload' not in text
    assert [n['label'] for n in data['nodes'] if n['node_type'] == 'word'] == HOSTILE_WORDS
    title = re.search(r'<title>(.*?)</title>', text).group(1)
    assert html.unescape(title) == f'tweet graph {HOSTILE_ID}' and '<' not in title


class _Rendered(HTMLParser):
    """What a browser shows: <body> attributes, <title> text, the SVG's <text> contents."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.body, self.title, self.svg_text, self.links, self._in = {}, '', [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == 'body':
            self.body = dict(attrs)
        if any(name == 'href' for name, _ in attrs):
            self.links.append(dict(attrs)['href'])
        self._in = tag if tag in ('title', 'text') else None
        if tag == 'text':
            self.svg_text.append('')

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == 'title':
            self.title += data
        elif self._in == 'text':
            self.svg_text[-1] += data


def browser():
    for name in ('chromium', 'chromium-browser', 'google-chrome', 'chrome'):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(browser() is None,
                    reason='no headless Chromium or Chrome on PATH (apt-get install chromium)')
def test_hostile_text_runs_nothing_in_a_real_browser(tmp_path):
    path = export(hostile_graph(), tmp_path / 'g.html')
    dom = subprocess.run(
        [browser(), '--headless', '--no-sandbox', '--disable-gpu', f'--user-data-dir={tmp_path / "profile"}',
         '--virtual-time-budget=3000', '--dump-dom', path.as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    page = _Rendered()
    page.feed(dom)
    assert '<svg' in dom, 'the page script did not run: nothing was checked'
    assert 'data-pwned' not in page.body, f'hostile text ran as script: {page.body}'
    assert page.title == f'tweet graph {HOSTILE_ID}' and not page.links
    shown = ' '.join(page.svg_text)
    for word in HOSTILE_WORDS:  # shown as the text it is
        assert word in shown, word
