"""UMGF on the tiny random encoder: shapes, masking, the graph it reads, its
ablation switches and persistence."""
import dataclasses

import pytest
import torch
from conftest import batch_for, fake_features

from graphmner import models
from graphmner.features.types import ImageFeatures, NodeFeatures, VisualWidths
from graphmner.graph import schema
from graphmner.graph.builder import build_graph
from graphmner.models.umgf import UMGF, UMGFConfig, UMGFFusionLayer

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


@pytest.mark.parametrize('switch', [{'visual_input': 'official'}, {'visual_input': 'regions'},
                                    {'edges': 'all'}, {'visual_self_attention': False}, {'gate': False},
                                    {'visual_value_projection': False}])
def test_each_ablation_changes_the_output(tiny_encoder, grounded, switch):
    full = make(tiny_encoder)
    ablated = make(tiny_encoder, **switch)
    # same weights where both have them: only the switch differs
    missing, _ = ablated.load_state_dict(full.state_dict(), strict=False)
    assert missing == []
    assert not torch.allclose(full(batch_for(full, [grounded])).emissions,
                              ablated(batch_for(ablated, [grounded])).emissions)


def with_objects(features, x):
    """``features`` whose objects are the rows ``x``, with no class (boxes are not read)."""
    k = x.shape[0]
    objects = NodeFeatures(x, {'box': torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(k, 4),
                               'cls': torch.full((k, ), -1), 'score': torch.ones(k)}, ['node'] * k)
    return ImageFeatures({**features.nodes, schema.OBJECT: objects})


@pytest.mark.parametrize('visual_input', ['official', 'regions'])
def test_visual_inputs_read_their_nodes_from_the_graph(tiny_encoder, tweet, long_tweet, visual_input):
    """'official': the four general-word crops (the detected person, then the image three times;
    the image four times without a person); 'regions' ("w/o Tar."): the 49 grid cells; both
    linked to every word. The same weights reading a graph built with exactly those objects
    (every one general) tag alike."""
    person, dogs = fake_features(2, DIM, seed=5), fake_features(3, DIM, names=('dog', ), seed=6)
    graphs = [build_graph(tweet, person, grounds=torch.tensor([[0], [1]])), build_graph(long_tweet, dogs),
              build_graph(tweet, None, widths=VisualWidths.uniform(DIM))]
    model = make(tiny_encoder, visual_input=visual_input)
    if visual_input == 'official':
        crops = [torch.cat([person[schema.OBJECT].x[:1], person[schema.IMAGE].x.expand(3, -1)]),
                 dogs[schema.IMAGE].x.expand(4, -1)]
    else:
        crops = [person[schema.REGION].x, dogs[schema.REGION].x]
    batch = batch_for(model, graphs)
    k = [len(x) for x in crops]
    assert batch[schema.OBJECT].batch.tolist() == [0] * k[0] + [1] * k[1]
    assert batch[schema.GROUNDS].num_edges == 6 * k[0] + 10 * k[1]  # every node -> every word
    reference = make(tiny_encoder)  # the paper's input, the same weights
    reference.load_state_dict(model.state_dict())
    given = [build_graph(tweet, with_objects(person, crops[0])),
             build_graph(long_tweet, with_objects(dogs, crops[1])), graphs[2]]
    torch.testing.assert_close(model(batch).emissions, reference(batch_for(reference, given)).emissions)
    # explain names the nodes by what they are, each gating every word
    gate = model.explain(batch)[0].gates[0]
    whole = ('miscellaneous', 'location', 'organization')
    official = ['person: person', *(f'{w}: whole image' for w in whole)]
    names = official if visual_input == 'official' else [f'region {i}' for i in range(49)]
    assert [s.label for s in gate.sources] == names
    assert all(v is not None for row in gate.values for v in row)


def test_regions_read_the_grid_cells_width(tiny_encoder):
    widths = VisualWidths({'image': 8, 'region': 8, 'scale': 8, 'object': 5}, (8, ) * 4)
    assert UMGFConfig(visual_input='regions').fit_visual_widths(widths).visual_dim == 8
    with pytest.raises(ValueError, match='UMGF reads object, image through one visual_dim'):
        UMGFConfig().fit_visual_widths(widths)


def test_checkpoints_written_with_targeted_objects_still_load(tiny_encoder):
    """Before visual_input, False linked every object to every word: that is edges='all'."""
    assert UMGF.from_config(encoder=tiny_encoder, targeted_objects=False, **SMALL).config.edges == 'all'
    kept = UMGF.from_config(encoder=tiny_encoder, targeted_objects=True, **SMALL).config
    assert kept == UMGFConfig(encoder=tiny_encoder, **SMALL)
    with pytest.raises(ValueError, match="Unknown config key.*: targets"):
        UMGF.from_config(encoder=tiny_encoder, targets=True, **SMALL)


def test_twitter_configs_read_the_paper_graph():
    from graphmner.train.experiment import load_spec
    for dataset in ('twitter2015', 'twitter2017'):
        config = load_spec('umgf', dataset).model_config
        assert (config.visual_input, config.edges) == ('paper', 'grounded')


def test_missing_image_means_no_visual_node(tiny_encoder, tweet):
    model = make(tiny_encoder)
    missing = batch_for(model, [build_graph(tweet, None, widths=VisualWidths.uniform(DIM))])
    assert missing[schema.OBJECT].x.shape == (0, DIM) and missing[schema.GROUNDS].edge_index.shape == (2, 0)
    # an image without objects becomes one object node, the whole image, linked to every word
    no_object = build_graph(tweet, fake_features(0, DIM))
    batch = batch_for(model, [build_graph(tweet, None, widths=VisualWidths.uniform(DIM)), no_object])
    assert batch[schema.OBJECT].batch.tolist() == [1]
    torch.testing.assert_close(batch[schema.OBJECT].x[0], no_object[schema.IMAGE].x[0])
    assert batch[schema.GROUNDS].edge_index.tolist() == [[0] * 6, list(range(6, 12))]
    assert batch[schema.REV_GROUNDS].edge_index.tolist() == [list(range(6, 12)), [0] * 6]


def test_batch_mixing_graphs_with_and_without_images(tiny_encoder, tweet, long_tweet, grounded):
    model = make(tiny_encoder)
    graphs = [build_graph(long_tweet, None, widths=VisualWidths.uniform(DIM)), grounded,
              build_graph(tweet, fake_features(0, DIM)),
              build_graph(tweet, None, widths=VisualWidths.uniform(DIM))]
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
    with pytest.raises(ValueError, match=r"visual_input must be one of \('paper', .*\), got 'x'"):
        UMGFConfig(visual_input='x')
    with pytest.raises(ValueError, match='heads must divide d_model'):
        UMGFConfig(d_model=10, heads=3)
    model = make(tiny_encoder, visual_dim=2048)
    with pytest.raises(ValueError, match='visual_dim=2048, got object features of width 8'):
        model(batch_for(model, [build_graph(tweet, fake_features(2, DIM))]))


def test_paper_defaults():
    config = UMGFConfig()
    assert (config.d_model, config.heads, config.num_layers, config.dropout, config.visual_dim) == \
        (512, 8, 2, 0.5, 2048)
    assert dataclasses.asdict(config)['edges'] == 'grounded' and config.visual_input == 'paper'


def test_dense_word_attention_gives_the_message_passing_values(tiny_encoder, long_tweet, grounded):
    dense = make(tiny_encoder).eval()
    sparse = make(tiny_encoder, dense_word_attention=False).eval()
    sparse.load_state_dict(dense.state_dict())
    batch = batch_for(dense, [grounded, build_graph(long_tweet, widths=VisualWidths.uniform(DIM))])
    torch.testing.assert_close(dense(batch).emissions, sparse(batch).emissions)


# -- one fusion layer against a by-hand computation of Eqs. 1-8 --------------------------------

def by_hand_attention(attention, x, edges):
    """Eqs. 1-2 node by node: each node attends to itself and to its in-neighbours."""
    heads, d = attention.heads, attention.channels // attention.heads
    q, k = attention.lin_query(x), attention.lin_key(x)
    v = attention.lin_value(x) if attention.project_value else x
    out = []
    for i in range(len(x)):
        sources = [i] + [j for j, t in edges if t == i and j != i]
        per_head = []
        for h in range(heads):
            part = slice(h * d, (h + 1) * d)
            scores = torch.stack([q[i, part] @ k[j, part] / d ** 0.5 for j in sources])
            alpha = torch.softmax(scores, 0)
            per_head.append(sum(a * v[j, part] for a, j in zip(alpha, sources)))
        out.append(torch.cat(per_head))
    out = torch.stack(out)
    return attention.lin_out(out) if attention.project_value else out


def by_hand_gate(gate, c_target, c_source, edges):
    """Eqs. 3-6 node by node: sum_j sigmoid(W1 c_i + W2 c_j) * c_j over the neighbours j."""
    out = torch.zeros_like(c_target)
    for j, i in edges:
        b = torch.sigmoid(gate.lin_dst(c_target[i]) + gate.lin_src(c_source[j])) if gate.gated else 1.0
        out[i] = out[i] + b * c_source[j]
    return out


def by_hand_norm(sublayer, x, y):
    """LayerNorm(x + y) from its formula."""
    z = x + y
    mean, var = z.mean(-1, keepdim=True), z.var(-1, unbiased=False, keepdim=True)
    return (z - mean) / torch.sqrt(var + sublayer.norm.eps) * sublayer.norm.weight + sublayer.norm.bias


def by_hand_ffn(ffn, x):
    first, second = ffn[0], ffn[2]
    return torch.relu(x @ first.weight.T + first.bias) @ second.weight.T + second.bias


@pytest.mark.parametrize('switches', [{}, {'update_visual': False}, {'gate': False},
                                      {'visual_value_projection': False}, {'visual_self_attention': False}],
                         ids=['full', 'last-layer', 'no-gate', 'no-visual-value-projection',
                              'no-visual-self-attention'])
@pytest.mark.parametrize('dense', [True, False], ids=['dense', 'message-passing'])
def test_fusion_layer_matches_eqs_1_to_8_by_hand(switches, dense):
    """3 words, 2 objects, d = 4, 2 heads: object 0 grounds word 1, object 1 is general;
    each ablation switch turns off exactly its own term."""
    torch.manual_seed(0)
    layer = UMGFFusionLayer(4, heads=2, ffn=3, dropout=0.0, **switches).eval()
    update_visual = switches.get('update_visual', True)
    for parameter in layer.parameters():  # no zero biases or unit norms: every term counts
        torch.nn.init.normal_(parameter, std=0.5)
    h_word, h_object = torch.randn(3, 4), torch.randn(2, 4)
    word_pairs = [(i, j) for i in range(3) for j in range(3) if i != j]
    grounds = [(0, 1), (1, 0), (1, 1), (1, 2)]  # (object, word)
    edge_index = {'word__intra__word': torch.tensor(word_pairs).T,
                  'object__intra__object': torch.tensor([(0, 1), (1, 0)]).T,
                  'object__grounds__word': torch.tensor(grounds).T,
                  'word__rev_grounds__object': torch.tensor(grounds).T.flip(0)}
    with torch.no_grad():
        got_word, got_visual = layer(h_word, {'object': h_object}, edge_index,
                                     torch.zeros(3, dtype=torch.long) if dense else None)
        got_object = got_visual['object']
        r = layer.residual
        c_word = by_hand_norm(r['word_attention'], h_word,
                              by_hand_attention(layer.attention['word__intra__word'], h_word, word_pairs))
        if switches.get('visual_self_attention', True):
            c_object = by_hand_norm(r['object_attention'], h_object,
                                    by_hand_attention(layer.attention['object__intra__object'], h_object,
                                                      [(0, 1), (1, 0)]))
        else:
            c_object = h_object
        r_word = by_hand_norm(r['word_gate'], c_word,
                              by_hand_gate(layer.gate['object__grounds__word'], c_word, c_object, grounds))
        want_word = by_hand_norm(r['word_ffn'], r_word, by_hand_ffn(layer.ffn['word'], r_word))
        if update_visual:
            r_object = by_hand_norm(r['object_gate'], c_object,
                                    by_hand_gate(layer.gate['word__rev_grounds__object'], c_object, c_word,
                                                 [(w, o) for o, w in grounds]))
            want_object = by_hand_norm(r['object_ffn'], r_object, by_hand_ffn(layer.ffn['object'], r_object))
        else:
            want_object = c_object  # the last layer's visual update would be dead weight
    torch.testing.assert_close(got_word, want_word, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_object, want_object, atol=1e-5, rtol=1e-4)
