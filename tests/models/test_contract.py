"""The model contract, checked once for every registered model (flair style)."""
import copy
import dataclasses

import pytest
import torch
from conftest import batch_for, fake_features

from graphmner import models
from graphmner.data.conll import read_conll
from graphmner.data.demo import demo_split_path
from graphmner.features.types import VisualWidths
from graphmner.graph.builder import build_graph
from graphmner.metrics import get_spans, span_scores


@pytest.fixture(scope='module')
def graphs():
    tweets = read_conll(demo_split_path('train'))[:6]
    out = []
    for i, tweet in enumerate(tweets):
        features = None if i % 3 == 2 else fake_features(num_objects=i % 3, dim=2048, seed=i)
        aux = [('a', 'caption'), ('dog', 'caption'), ('dog', 'tag')] if i % 2 == 0 else []
        out.append(build_graph(tweet, features, aux=aux, widths=VisualWidths.uniform(2048)))
    return out


#: The tagging forms every model must honour the contract in: BIO and BIOES on words, and BIO on
#: subword pieces (the official codes' unit: X on continuations, unconstrained).
FORMS = {'bio': {'tag_scheme': 'bio'}, 'bioes': {'tag_scheme': 'bioes'},
         'subword': {'tagging_unit': 'subword', 'constrained_decoding': False, 'tag_scheme': 'bio'}}


@pytest.fixture(params=[(name, form) for name in models.available() for form in FORMS], ids='-'.join)
def model(request, tiny_encoder):
    name, form = request.param
    torch.manual_seed(0)
    return models.build(name, encoder=tiny_encoder, **FORMS[form])


def test_loss_is_finite_and_trains_every_head_parameter(model, graphs):
    model.train()
    loss, parts = model.loss(batch_for(model, graphs))
    assert loss.ndim == 0 and torch.isfinite(loss) and parts['loss'] == pytest.approx(loss.item())
    # the total is the weighted sum of the logged parts
    weights = model.loss_weights()
    total = sum(weights[key] * parts[key] for key in weights if key in parts)
    assert parts['loss'] == pytest.approx(total, rel=1e-5)
    loss.backward()
    _, head = model.parameter_groups()
    assert all(p.grad is not None for p in head if p.requires_grad)


#: A decoded tag path and the BIO labels it means, in each scheme: a decoder that passed
#: BIOES tags through unconverted, or mapped them wrongly, gives other labels.
FORCED_PATHS = {
    'bio': (['B-PER', 'I-PER', 'O', 'B-LOC', 'B-ORG', 'I-ORG'],
            ['B-PER', 'I-PER', 'O', 'B-LOC', 'B-ORG', 'I-ORG']),
    'bioes': (['B-PER', 'E-PER', 'O', 'S-LOC', 'B-ORG', 'I-ORG', 'E-ORG'],
              ['B-PER', 'I-PER', 'O', 'B-LOC', 'B-ORG', 'I-ORG', 'I-ORG']),
    # over pieces, then each word's first piece (an X there is O)
    'subword': (['B-PER', 'X', 'I-PER', 'O', 'X'], ['B-PER', 'O', 'I-PER', 'O', 'O']),
}


def test_decode_gives_one_label_per_word(model, graphs, monkeypatch):
    model.eval()
    pred = model.decode(batch_for(model, graphs))
    assert [len(p) for p in pred] == [len(g.words) for g in graphs]
    assert all(label in model.labels for p in pred for label in p)
    # whatever tags the CRF decodes (S- and E- included), decode speaks BIO
    form = 'subword' if model.config.tagging_unit == 'subword' else model.config.tag_scheme
    tags, labels = FORCED_PATHS[form]

    def forced(emissions, mask):
        path = torch.full(mask.shape, -1, dtype=torch.long)
        for b, n in enumerate(mask.sum(1).tolist()):
            path[b, :n] = torch.tensor([model.tags.index(tags[t % len(tags)]) for t in range(n)])
        return path
    monkeypatch.setattr(model.crf, 'decode', forced)
    batch = batch_for(model, graphs)
    pred = model.decode(batch)
    if form != 'subword':
        assert pred == [[labels[t % len(labels)] for t in range(len(g.words))] for g in graphs]
        return
    store = batch['word']
    firsts = [store.first[store.batch == b].nonzero().view(-1).tolist() for b in range(len(graphs))]
    assert any(len(f) < int((store.batch == b).sum()) for b, f in enumerate(firsts))  # some word has pieces
    assert pred == [[labels[t % len(labels)] for t in f] for f in firsts]


def test_evaluate_returns_span_scores(model, graphs):
    """evaluate() is span_scores(gold labels, decode()) over all its batches, in order."""
    model.eval()
    batches = [batch_for(model, graphs[:3]), batch_for(model, graphs[3:])]
    scores = model.evaluate(batches)
    pred = [labels for batch in batches for labels in model.decode(batch)]
    assert scores == span_scores([g.labels for g in graphs], pred)
    assert scores['support'] == sum(len(get_spans(g.labels)) for g in graphs) > 0


def test_save_load_round_trip_gives_identical_predictions(model, graphs, tmp_path):
    model.eval()
    batch = batch_for(model, graphs)
    path = tmp_path / 'model.pt'
    model.save(path)
    loaded = models.load(path).eval()
    assert type(loaded) is type(model) and loaded.config == model.config
    torch.testing.assert_close(loaded(batch).emissions, model(batch).emissions)
    assert loaded.decode(batch) == model.decode(batch)
    assert type(model).load(path).name == model.name


def test_decode_and_evaluate_compute_no_loss(model, graphs, monkeypatch):
    def no_nll(*args, **kwargs):
        raise AssertionError('decode/evaluate computed the CRF NLL')
    monkeypatch.setattr(model.crf, 'nll', no_nll)
    batch = batch_for(model, graphs)
    model.decode(batch)
    model.evaluate([batch])


def test_every_view_decodes_and_the_view_is_restored(model, graphs):
    model.eval()
    batch = batch_for(model, graphs)
    config = dataclasses.replace(model.config)
    default = model.view
    for view in model.views:
        with model.inference_view(view):
            assert model.view == view
            assert [len(p) for p in model.decode(batch)] == [len(g.words) for g in graphs]
        assert model.view == default
    assert model.config == config  # views never mutate the config
    with pytest.raises(ValueError, match='views'):
        with model.inference_view('no-such-view'):
            pass


def test_a_graph_is_not_a_batch(model, graphs):
    with pytest.raises(TypeError, match='Batch'):
        model(graphs[0])


def test_registry_explains_unknown_names_and_keys(tiny_encoder):
    with pytest.raises(ValueError, match='available: .*bert-crf'):
        models.build('no-such-model')
    with pytest.raises(ValueError, match="Unknown config key.*'?dropuot"):
        models.build('bert-crf', encoder=tiny_encoder, dropuot=0.2)


def snapshot(value):
    """A deep copy of tensors in dicts / lists / dataclass fields, to compare after a call."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [snapshot(v) for v in value]
    return value


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b.detach())
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_no_method_mutates_its_inputs(model, graphs):
    """The output given to auxiliary_losses (emissions, mask, extras, counts) and the batch given
    to loss / decode come back as they went in."""
    model.train()
    batch = batch_for(model, graphs)
    stores = lambda b: {**{t: dict(b[t]) for t in b.node_types}, **{e: dict(b[e]) for e in b.edge_types},
                        'words': b.words, 'aux_words': b.aux_words}
    before_batch = snapshot(stores(batch))
    out = model(batch)
    fields = lambda o: {'emissions': o.emissions, 'mask': o.mask, 'extras': o.extras, 'counts': o.counts}
    before = snapshot(fields(out))
    model.auxiliary_losses(batch, out)
    assert same(before, fields(out))
    model.loss(batch)
    model.eval()
    model.decode(batch, marginals=True)
    assert same(before_batch, stores(batch))


def test_the_graph_transform_leaves_the_graph_it_copies_as_it_was(model, graphs):
    """A model's graph transform replaces values and never writes into a tensor or a list, so it may
    run on a shallow copy (``copy.copy``, as the Tagger does) without changing the graph copied."""
    stores = lambda g: {'graph': dict(g._global_store), **{t: dict(g[t]) for t in g.node_types},
                        **{e: dict(g[e]) for e in g.edge_types}}
    transform = model.graph_transform()
    for graph in graphs:
        before = snapshot(stores(graph))
        transformed = transform(copy.copy(graph))
        assert same(before, stores(graph))
        assert set(transformed.node_types) < set(graph.node_types)  # the copy itself did change


def test_the_text_view_is_declared_among_the_views(model):
    """A model that tags tweets without image text in a fallback view names it; the others have none."""
    assert model.text_view is None or model.text_view in model.views
    assert (model.text_view is not None) == (model.name == 'ita')
