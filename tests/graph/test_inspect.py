"""summary() and draw() on small tweet graphs (with objects and aux words, and
with a missing image)."""
import matplotlib

matplotlib.use('Agg')

import pytest
import torch
from conftest import fake_features

from graphmner.data.conll import Tweet
from graphmner.features.types import VisualWidths
from graphmner.graph import schema
from graphmner.graph.builder import build_graph
from graphmner.graph.inspect import display_graph, draw, layout, summary

TWEET = Tweet('demo_1', ['Handsome', 'Rob', 'after', 'a', 'fish', 'dinner'],
              ['O', 'B-PER', 'O', 'O', 'O', 'O'])


BACKEND = 'descriptors (42-d colour, gradient and LBP histograms; no weights); no detector'


@pytest.fixture
def full():
    return build_graph(TWEET, fake_features(3, 8, ('person', 'dog', 'fish')),
                       aux=[('a', 'caption'), ('man', 'caption'), ('person', 'tag')],
                       grounds=torch.tensor([[0, 2], [1, 4]]), visual_backend=BACKEND)


@pytest.fixture
def missing():
    return build_graph(TWEET, None, widths=VisualWidths.uniform(8))


def test_summary_full(full):
    text = summary(full)
    assert 'image missing: False' in text
    assert f'Visual features: {BACKEND}' in text
    assert 'Rob/B-PER' in text and 'dinner/O' in text
    assert 'person (cls 0, score' in text and 'fish' in text
    assert 'caption: a man' in text and 'tag: person' in text
    assert 'region   49' in text and 'object   3' in text
    assert 'object__grounds__word        2' in text


def test_summary_missing(missing):
    text = summary(missing)
    assert 'image missing: True' in text
    assert 'Visual features: not recorded' in text
    assert 'Objects: none' in text and 'Aux: none' in text
    assert 'word     6' in text


def test_layout_positions(full):
    pos = layout(full)
    assert pos['word'].shape == (6, 2) and (pos['word'][:, 1] == 0).all()
    assert (pos['object'][:, 1] > 0).all()
    assert (pos['aux'][:, 1] > pos['region'][:, 1].max()).all()


@pytest.mark.parametrize('which', ['full', 'missing'])
def test_draw_saves_png(which, request, tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    g = request.getfixturevalue(which)
    ax = draw(g, edge_weights={('object', 'grounds', 'word'): torch.tensor([0.1, 0.9])}
              if which == 'full' else None)
    assert isinstance(ax, Axes)
    path = tmp_path / 'g.png'
    ax.figure.savefig(path, dpi=40)
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    plt.close(ax.figure)


def drawn_edges(ax):
    """The edges draw() put on ``ax``: one arrow annotation each."""
    from matplotlib.text import Annotation
    return sum(isinstance(t, Annotation) and t.arrow_patch is not None for t in ax.texts)


def test_draw_hides_dense_by_default(full):
    import matplotlib.pyplot as plt

    dense = {'word__intra__word', 'region__informs__word', 'scale__guides__word', 'aux__intra__aux',
             'aux__describes__word', 'word__rev_grounds__object', 'word__rev_describes__aux'}
    shown = display_graph(full)
    assert shown.edge_types == list(schema.EDGE_TYPES) and full.edge_types == list(schema.STORED)
    edges = {'__'.join(e): shown[e].num_edges for e in shown.edge_types}
    assert all(edges[name] > 0 for name in dense)
    ax = plt.subplots()[1]
    draw(full, ax=ax, boxes=False)
    assert drawn_edges(ax) == sum(n for name, n in edges.items() if name not in dense)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert not any(name in label for name in dense for label in labels)
    ax2 = plt.subplots()[1]
    draw(full, ax=ax2, show=[('word', 'intra', 'word')], boxes=False)
    assert drawn_edges(ax2) == drawn_edges(ax) + edges['word__intra__word'] == drawn_edges(ax) + 30
    assert any('word__intra__word (30)' in t.get_text() for t in ax2.get_legend().get_texts())
    plt.close('all')


def test_draw_title_names_the_visual_backend(full, missing):
    import matplotlib.pyplot as plt

    assert draw(full).get_title() == f'tweet graph demo_1\nvisual features: {BACKEND}'
    assert draw(missing).get_title().endswith('visual features: not recorded')
    plt.close('all')
