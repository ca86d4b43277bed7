"""UMGF on the tiny random encoder: shapes, masking, the graph it reads, its
ablation switches and persistence."""
import dataclasses

import pytest
import torch
from conftest import batch_for, fake_features

from graphmner import models
from graphmner.graph import schema
from graphmner.graph.builder import build_graph
from graphmner.models.umgf import UMGF, UMGFConfig

DIM = 8  # visual feature width of the fake features
SMALL = {'d_model': 16, 'heads': 2, 'ffn': 8, 'visual_dim': DIM}


def make(tiny_encoder, seed=0, **overrides):
    torch.manual_seed(seed)
    return UMGF(UMGFConfig(encoder=tiny_encoder, **{**SMALL, **overrides})).eval()




@pytest.fixture
def grounded(tweet):
    """6 words, 2 objects: object 0 grounds 'Rob' (a noun phrase), object 1 is general."""
    grounds = torch.tensor([[0, 1, 1, 1, 1, 1, 1], [1, 0, 1, 2, 3, 4, 5]])
    return build_graph(tweet, fake_features(2, DIM), grounds=grounds)


def test_output_shapes_and_loss(tiny_encoder, tweet, long_tweet, grounded):
    model = make(tiny_encoder)
    out = model(batch_for(model, [grounded, build_graph(long_tweet, fake_features(3, DIM, seed=1))]))
    assert out.emissions.shape == (2, 10, len(model.labels))
    assert out.mask.sum(1).tolist() == [6, 10]
    loss, _ = model.loss(batch_for(model, [grounded, build_graph(long_tweet, fake_features(3, DIM, seed=1))]))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert model.name == 'umgf' and set(model.relations) <= set(schema.EDGE_TYPES)


def test_words_do_not_see_another_tweet(tiny_encoder, long_tweet, grounded):
    model = make(tiny_encoder)
    alone = model(batch_for(model, [grounded])).emissions
    other = build_graph(long_tweet, fake_features(3, DIM, seed=1))
    with_other = model(batch_for(model, [grounded, other])).emissions
    torch.testing.assert_close(with_other[0, :6], alone[0], atol=1e-5, rtol=1e-4)


def test_gate_and_attention_are_kept_per_edge(tiny_encoder, grounded):
    model = make(tiny_encoder)
    model(batch_for(model, [grounded]))
    layer = model.layers[0]
    assert layer.gate['object__grounds__word']._alpha.shape == (7, )
    assert layer.gate['word__rev_grounds__object']._alpha.shape == (7, )
    assert layer.attention['word__intra__word']._alpha.shape == (6 * 5 + 6, 2)
    assert layer.attention['object__intra__object']._alpha.shape == (2 + 2, 2)
    assert 'word__rev_grounds__object' not in model.layers[-1].gate  # dead in the last layer


def test_grounds_edges_change_the_output(tiny_encoder, tweet, grounded):
    model = make(tiny_encoder)
    general = build_graph(tweet, fake_features(2, DIM))  # every object -> every word
    a, b = model(batch_for(model, [grounded])).emissions, model(batch_for(model, [general])).emissions
    assert not torch.allclose(a, b)
    # ... unless the model ignores the rule
    everything = make(tiny_encoder, edges='all')
    torch.testing.assert_close(everything(batch_for(everything, [grounded])).emissions,
                               everything(batch_for(everything, [general])).emissions)


@pytest.mark.parametrize('switch', [{'targeted_objects': False}, {'edges': 'all'},
                                    {'visual_self_attention': False}, {'gate': False},
                                    {'visual_value_projection': False}])
def test_each_ablation_changes_the_output(tiny_encoder, grounded, switch):
    full = make(tiny_encoder)
    ablated = make(tiny_encoder, **switch)
    # same weights where both have them: only the switch differs
    missing, _ = ablated.load_state_dict(full.state_dict(), strict=False)
    assert missing == []
    assert not torch.allclose(full(batch_for(full, [grounded])).emissions,
                              ablated(batch_for(ablated, [grounded])).emissions)


def test_missing_image_means_no_visual_node(tiny_encoder, tweet):
    model = make(tiny_encoder)
    missing = batch_for(model, [build_graph(tweet, None, feature_dim=DIM)])
    assert missing[schema.OBJECT].x.shape == (0, DIM) and missing[schema.GROUNDS].edge_index.shape == (2, 0)
    # an image without objects becomes one object node, the whole image, linked to every word
    no_object = build_graph(tweet, fake_features(0, DIM))
    batch = batch_for(model, [build_graph(tweet, None, feature_dim=DIM), no_object])
    assert batch[schema.OBJECT].batch.tolist() == [1]
    torch.testing.assert_close(batch[schema.OBJECT].x[0], no_object[schema.IMAGE].x[0])
    assert batch[schema.GROUNDS].edge_index.tolist() == [[0] * 6, list(range(6, 12))]
    assert batch[schema.REV_GROUNDS].edge_index.tolist() == [list(range(6, 12)), [0] * 6]


def test_batch_mixing_graphs_with_and_without_images(tiny_encoder, tweet, long_tweet, grounded):
    model = make(tiny_encoder)
    graphs = [build_graph(long_tweet, None, feature_dim=DIM), grounded,
              build_graph(tweet, fake_features(0, DIM)), build_graph(tweet, None, feature_dim=DIM)]
    batch = batch_for(model, graphs)
    model.train()
    loss, _ = model.loss(batch)
    loss.backward()
    model.eval()
    assert [len(p) for p in model.decode(batch)] == [10, 6, 6, 6]
    # per-graph results do not depend on the company
    torch.testing.assert_close(model(batch).emissions[1, :6],
                               model(batch_for(model, [grounded])).emissions[0], atol=1e-5, rtol=1e-4)
    # an all-text batch runs too
    assert model(batch_for(model, [graphs[0], graphs[3]])).emissions.shape[:2] == (2, 10)


def test_save_load_round_trip(tiny_encoder, grounded, tmp_path):
    models.register(UMGF)
    model = make(tiny_encoder, num_layers=3, gate=False)
    batch = batch_for(model, [grounded])
    model.save(tmp_path / 'umgf.pt')
    loaded = models.load(tmp_path / 'umgf.pt').eval()
    assert type(loaded) is UMGF and loaded.config == model.config
    torch.testing.assert_close(loaded(batch).emissions, model(batch).emissions)
    assert loaded.decode(batch) == model.decode(batch)


def test_config_errors(tiny_encoder, tweet):
    with pytest.raises(ValueError, match="edges must be one of .* got 'np'"):
        UMGFConfig(edges='np')
    with pytest.raises(ValueError, match='heads must divide d_model'):
        UMGFConfig(d_model=10, heads=3)
    model = make(tiny_encoder, visual_dim=2048)
    with pytest.raises(ValueError, match='visual_dim=2048, got object features of width 8'):
        model(batch_for(model, [build_graph(tweet, fake_features(2, DIM))]))


def test_paper_defaults():
    config = UMGFConfig()
    assert (config.d_model, config.heads, config.num_layers, config.dropout, config.visual_dim) == \
        (512, 8, 2, 0.5, 2048)
    assert dataclasses.asdict(config)['edges'] == 'grounded'


def test_dense_word_attention_gives_the_message_passing_values(tiny_encoder, long_tweet, grounded):
    dense = make(tiny_encoder).eval()
    sparse = make(tiny_encoder, dense_word_attention=False).eval()
    sparse.load_state_dict(dense.state_dict())
    batch = batch_for(dense, [grounded, build_graph(long_tweet, feature_dim=DIM)])
    torch.testing.assert_close(dense(batch).emissions, sparse(batch).emissions)
