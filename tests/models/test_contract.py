"""The model contract, checked once for every registered model (flair style)."""
import dataclasses

import pytest
import torch
from conftest import batch_for, fake_features

from graphmner import models
from graphmner.data.conll import read_conll
from graphmner.data.demo import demo_split_path
from graphmner.graph.builder import build_graph


@pytest.fixture(scope='module')
def graphs():
    tweets = read_conll(demo_split_path('train'))[:6]
    out = []
    for i, tweet in enumerate(tweets):
        features = None if i % 3 == 2 else fake_features(num_objects=i % 3, dim=2048, seed=i)
        aux = [('a', 'caption'), ('dog', 'caption'), ('dog', 'tag')] if i % 2 == 0 else []
        out.append(build_graph(tweet, features, aux=aux))
    return out


@pytest.fixture(params=[(name, scheme) for name in models.available() for scheme in ('bio', 'bioes')],
                ids='-'.join)
def model(request, tiny_encoder):
    name, tag_scheme = request.param
    torch.manual_seed(0)
    return models.build(name, encoder=tiny_encoder, tag_scheme=tag_scheme)


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


def test_decode_gives_one_label_per_word(model, graphs):
    model.eval()
    pred = model.decode(batch_for(model, graphs))
    assert [len(p) for p in pred] == [len(g.words) for g in graphs]
    assert all(label in model.labels for p in pred for label in p)


def test_evaluate_returns_span_scores(model, graphs):
    scores = model.evaluate([batch_for(model, graphs[:3]), batch_for(model, graphs[3:])])
    assert {'precision', 'recall', 'f1', 'per_type'} <= set(scores)


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
