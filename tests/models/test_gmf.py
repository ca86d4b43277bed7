"""GMF on the tiny random encoder: the pyramid it reads (levels sliced from
their padding), the prefix it injects and its masks, consistency matching,
the objective, the ablation switches and persistence."""
import math

import pytest
import torch
from conftest import batch_for, fake_features

from graphmner import models
from graphmner.data.conll import Tweet
from graphmner.features.grid import pack_cells
from graphmner.features.types import NodeFeatures, VisualWidths
from graphmner.graph import schema
from graphmner.graph.builder import build_graph
from graphmner.models.gmf import GMF, GMFConfig

DIM = 8              # visual feature width (the widest level)
DIMS = [2, 4, 6, 8]  # each level's own channels; scale.x is zero-padded to DIM
GRID = 3             # scale cells per side
SMALL = {'visual_dim': DIM, 'scale_dims': DIMS, 'reduction': 2, 'dilation': 2}


def pyramid_features(num_objects=2, seed=0, grid=GRID, dims=DIMS):
    """Fake image features whose pyramid levels are narrower than DIM, zero-padded
    as the vision backbone pads them."""
    g = torch.Generator().manual_seed(seed + 100)
    S = grid * grid
    scales = torch.zeros(len(dims) * S, DIM)
    for level, width in enumerate(dims):
        scales[level * S:(level + 1) * S, :width] = torch.randn(S, width, generator=g) * (level + 1) + level
    features = fake_features(num_objects, DIM, seed=seed)
    features.nodes['scale'] = NodeFeatures(scales, {'level': torch.arange(len(dims)).repeat_interleave(S),
                                                    'box': torch.rand(len(dims) * S, 4, generator=g)})
    return features


NATIVE_DIMS = [2, 4, 8, 8]  # level widths that pack into rows of DIM
SIDES = [16, 8, 4, 2]       # each level's own resolution, halving as ResNet's stages do


def native_features(num_objects=1, seed=0):
    """Fake features with every level at its own resolution, packed as the backbones pack them
    (scale_grid=0), and the maps themselves ``[1, C_l, S_l, S_l]``."""
    g = torch.Generator().manual_seed(seed + 200)
    maps = [torch.randn(1, c, side, side, generator=g) * (level + 1) + level
            for level, (c, side) in enumerate(zip(NATIVE_DIMS, SIDES))]
    packed = [pack_cells(m, DIM) for m in maps]
    features = fake_features(num_objects, DIM, seed=seed)
    features.nodes['scale'] = NodeFeatures(
        torch.cat([rows[0] for rows, _ in packed]),
        {'level': torch.cat([torch.full((rows.shape[1], ), level) for level, (rows, _) in enumerate(packed)]),
         'box': torch.cat([boxes for _, boxes in packed])})
    return features, maps


def make(tiny_encoder, seed=0, **overrides):
    torch.manual_seed(seed)
    return GMF(GMFConfig(encoder=tiny_encoder, **{**SMALL, **overrides})).eval()




@pytest.fixture
def graphs(tweet, long_tweet):
    """Image with 1 object, image with 3 objects, no image, image without objects."""
    return [build_graph(tweet, pyramid_features(1, seed=0)),
            build_graph(long_tweet, pyramid_features(3, seed=1)),
            build_graph(Tweet('demo_3', ['Snow', 'in', 'Boston'], ['O', 'O', 'B-LOC']), None,
                        widths=VisualWidths.uniform(DIM)),
            build_graph(tweet, pyramid_features(0, seed=2))]


def fitted(tiny_encoder, graphs, **overrides):
    model = make(tiny_encoder, **overrides)
    model.fit_feature_statistics(graphs)
    return model


def test_shapes_and_a_tweet_does_not_see_another(tiny_encoder, graphs):
    model = fitted(tiny_encoder, graphs)
    out = model(batch_for(model, graphs))
    assert out.emissions.shape == (4, 10, len(model.tags))
    assert out.mask.sum(1).tolist() == [6, 10, 3, 6]
    assert model.prefix._gates.shape == (4, model.encoder.num_layers, 4)
    torch.testing.assert_close(model.prefix._gates.sum(-1), torch.ones(4, model.encoder.num_layers))
    # Alone, the first tweet has 1 object slot; beside the second it gets 2 padded ones.
    alone = model(batch_for(model, graphs[:1])).emissions
    torch.testing.assert_close(out.emissions[0, :6], alone[0], atol=1e-5, rtol=1e-4)


def test_prefix_mask_covers_cells_and_real_objects_only(tiny_encoder, graphs):
    model = fitted(tiny_encoder, graphs)
    layer_prefix, prefix_mask = model.visual_clues(batch_for(model, graphs))
    S = GRID * GRID
    assert len(layer_prefix) == model.encoder.num_layers
    assert all(k.shape == v.shape == (4, S + 3, model.encoder.hidden_size) for k, v in layer_prefix)
    assert prefix_mask.tolist() == [[True] * S + [True, False, False], [True] * (S + 3),
                                    [False] * (S + 3), [True] * S + [False] * 3]


def test_prefix_attention_is_a_softmax_over_prefix_and_word_keys(tiny_encoder, graphs):
    """Eq. 13 in the first encoder layer, by hand: softmax(Q [phi_k ; K]^T / sqrt(d)) [phi_v ; V]."""
    model = fitted(tiny_encoder, graphs)
    batch = batch_for(model, graphs)
    layer_prefix, prefix_mask = model.visual_clues(batch)
    encoder = model.encoder
    layer = encoder.model.encoder.layer[0]
    captured = {}
    handle = layer.register_forward_hook(
        lambda m, a, o: captured.setdefault('out', o[0] if isinstance(o, tuple) else o))
    model(batch)
    handle.remove()
    enc = encoder.tokenize(batch.words)
    B, H = 4, encoder.hidden_size
    with torch.no_grad():
        x = encoder.model.embeddings(input_ids=enc.input_ids, token_type_ids=enc.token_type_ids)
        att = layer.attention.self
        heads, d = encoder.num_heads, H // encoder.num_heads
        split = lambda t: t.view(B, -1, heads, d).transpose(1, 2)          # [B, h, *, d]
        q = split(att.query(x))
        k = torch.cat([split(layer_prefix[0][0]), split(att.key(x))], dim=2)
        v = torch.cat([split(layer_prefix[0][1]), split(att.value(x))], dim=2)
        keep = torch.cat([prefix_mask, enc.attention_mask.bool()], dim=1)  # [B, P + L]
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        weights = scores.masked_fill(~keep[:, None, None, :], float('-inf')).softmax(-1)
        context = (weights @ v).transpose(1, 2).reshape(B, -1, H)
        attended = layer.attention.output(context, x)
        expected = layer.output(layer.intermediate(attended), attended)
    real = enc.attention_mask.bool()
    torch.testing.assert_close(captured['out'][real], expected[real], atol=1e-5, rtol=1e-4)
    # the padded object slots got no weight: changing their keys changes nothing
    assert weights[0, :, :, GRID * GRID + 1:GRID * GRID + 3].abs().sum() == 0


def test_a_missing_image_gives_exactly_the_prefix_free_word_states(tiny_encoder, graphs):
    model = fitted(tiny_encoder, graphs)
    batch = batch_for(model, graphs)
    guided = model(batch).emissions
    plain = model.emission(model.encoder(batch.words).words)  # the same batch, no prefix at all
    assert torch.equal(guided[2], plain[2])
    assert not torch.allclose(guided[0], plain[0])
    # a batch without any image passes no prefix
    no_image = batch_for(model, [graphs[2], graphs[2]])
    assert model.visual_clues(no_image) is None
    assert torch.equal(model(no_image).emissions, model.emission(model.encoder(no_image.words).words))


def test_level_padding_is_never_read(tiny_encoder, graphs):
    model = fitted(tiny_encoder, graphs)
    noisy = graphs[0].clone()
    x, level = noisy[schema.SCALE].x, noisy[schema.SCALE].level
    for i, width in enumerate(DIMS):
        x[level == i, width:] = 1e3 * torch.randn(int((level == i).sum()), DIM - width)
    torch.testing.assert_close(model(batch_for(model, [noisy])).emissions,
                               model(batch_for(model, [graphs[0]])).emissions)


def test_levels_become_row_major_grids_of_their_own_channels(tiny_encoder, graphs):
    """CSA of level i receives [N, C_i, g, g] with cell (r, c) = scale node r * g + c of that level."""
    model = fitted(tiny_encoder, graphs)
    seen = {}
    handles = [csa.register_forward_pre_hook(lambda m, args, i=i: seen.setdefault(i, args[0]))
               for i, csa in enumerate(model.csa)]
    model(batch_for(model, graphs))
    for handle in handles:
        handle.remove()
    with_image = [graphs[0], graphs[1], graphs[3]]
    for i, width in enumerate(DIMS):
        assert seen[i].shape == (3, width, GRID, GRID)
        for n, g in enumerate(with_image):
            cells = model.scale_standardizers[i](g[schema.SCALE].x[g[schema.SCALE].level == i, :width])
            for r in range(GRID):
                for c in range(GRID):
                    torch.testing.assert_close(seen[i][n, :, r, c], cells[r * GRID + c])


def test_native_pyramid_runs_csa_at_each_stage_resolution_then_pools(tiny_encoder, tweet, long_tweet):
    """pyramid='native' (the paper's order, Eqs. 1-6): each level standardised over all its cells,
    CSA on the whole stage map, then pooled to the last level's grid, then the 1x1 map; the pooled
    order (CSA after pooling) gives other cells from the same maps."""
    (f0, maps0), (f1, maps1) = native_features(1, seed=0), native_features(2, seed=1)
    graphs = [build_graph(tweet, f0), build_graph(long_tweet, f1),
              build_graph(Tweet('demo_3', ['Snow'], ['O']), None, widths=VisualWidths.uniform(DIM))]
    model = make(tiny_encoder, pyramid='native', scale_dims=NATIVE_DIMS)
    model.fit_feature_statistics(graphs)
    levels, ids = model.pyramid(batch_for(model, graphs))
    assert ids.tolist() == [0, 1] and levels.shape == (2, 4, SIDES[-1] ** 2, 32)
    with torch.no_grad():
        for i, c in enumerate(NATIVE_DIMS):
            F_i = torch.cat([maps0[i], maps1[i]])                                     # [2, C_i, S_i, S_i]
            cells = F_i.permute(0, 2, 3, 1).reshape(-1, c).double()
            mean, std = cells.mean(0), cells.std(0, unbiased=False)
            F_i = (F_i - mean.float()[:, None, None]) / std.float()[:, None, None]
            want = model.level_maps[i](torch.nn.functional.adaptive_avg_pool2d(model.csa[i](F_i), SIDES[-1]))
            torch.testing.assert_close(levels[:, i], want.flatten(2).transpose(1, 2), atol=1e-4, rtol=1e-4)
            pooled_first = model.level_maps[i](model.csa[i](torch.nn.functional.adaptive_avg_pool2d(F_i,
                                                                                                   SIDES[-1])))
            if i < 3:  # the last level is already on the grid: both orders agree there
                assert not torch.allclose(levels[:, i], pooled_first.flatten(2).transpose(1, 2), atol=1e-3)
    # The prefix holds the last level's cells, then the objects: explain names them so.
    evidence = model.explain(batch_for(model, graphs[:1]))[0]
    labels = [s.label for s in evidence.attention[0].sources]
    assert sum(label.endswith('(L3)') or label.startswith('cell') for label in labels) == SIDES[-1] ** 2


def test_each_pyramid_order_refuses_the_other_layout(tiny_encoder, graphs, tweet):
    native = make(tiny_encoder, pyramid='native')          # the 3 x 3 grids of DIMS, zero-padded
    with pytest.raises(ValueError, match=r"pyramid='native' reads every stage at its own resolution "
                                         r'\(graphs built with data.scale_grid=0\); level 1: 9 rows of 8 '
                                         r'values are no square map of 4 channels'):
        native(batch_for(native, graphs[:1]))
    native = make(tiny_encoder, pyramid='native', scale_dims=None)  # every level as wide as x: 3 x 3 maps
    with pytest.raises(ValueError, match=r"pyramid='native' .* got levels of \[3, 3, 3, 3\] cells a side"):
        native(batch_for(native, graphs[:1]))
    pooled = make(tiny_encoder, scale_dims=NATIVE_DIMS)    # 64 (8 x 8), 32, 16 and 4 packed nodes
    with pytest.raises(ValueError, match=r"got 32 cells at level 1 .*scale_grid=0, need pyramid='native'"):
        pooled(batch_for(pooled, [build_graph(tweet, native_features()[0])]))
    pooled = make(tiny_encoder, scale_dims=None)            # 16 / 8 / 4 / 2 a side, one cell per node
    squares = [build_graph(tweet, fake_features(0, DIM))]
    squares[0]['scale'].x = torch.randn(16 ** 2 + 8 ** 2 + 4 ** 2 + 2 ** 2, DIM)
    squares[0]['scale'].level = torch.arange(4).repeat_interleave(torch.tensor([256, 64, 16, 4]))
    squares[0]['scale'].box = torch.rand(340, 4)
    with pytest.raises(ValueError, match=r"levels of \[16, 8, 4, 2\] cells a side .*need pyramid='native'"):
        pooled(batch_for(pooled, squares))
    with pytest.raises(ValueError, match="pyramid must be one of 'pooled', 'native', got 'full'"):
        GMFConfig(pyramid='full')


def test_feature_statistics_per_level_on_its_own_channels(tiny_encoder, graphs):
    model = fitted(tiny_encoder, graphs)
    with_image = [graphs[0], graphs[1], graphs[3]]
    for i, width in enumerate(DIMS):
        rows = torch.cat([g[schema.SCALE].x[g[schema.SCALE].level == i, :width] for g in with_image])
        standardizer = model.scale_standardizers[i]
        torch.testing.assert_close(standardizer.mean, rows.mean(0))
        torch.testing.assert_close(standardizer.std, rows.std(0, unbiased=False))
    images = torch.cat([g[schema.IMAGE].x for g in with_image])  # the missing image's zeros stay out
    torch.testing.assert_close(model.image_standardizer.mean, images.mean(0))
    objects = torch.cat([g[schema.OBJECT].x for g in with_image])
    torch.testing.assert_close(model.object_standardizer.mean, objects.mean(0))


def text_vectors(model, batch, idx, cm_text):
    """C_n of the tweets ``idx``, written out: the pooler of a pass without the prefix, or of the
    tagging pass (words read with the visual prefix)."""
    if cm_text == 'prefix-free':
        return model.text_mlp(model.encoder([batch.words[i] for i in idx]).pooler_output)
    layer_prefix, prefix_mask = model.visual_clues(batch)
    text = model.encoder(batch.words, layer_prefix=layer_prefix, prefix_mask=prefix_mask)
    return model.text_mlp(text.pooler_output[idx])


@pytest.mark.parametrize('cm_text', ['prefix-free', 'guided'])
def test_consistency_matching_equals_a_loop(tiny_encoder, graphs, cm_text):
    """Eqs. 14-16 written out, C_g from the pass cm_text names; the tweet without an image takes
    no part; each anchor has the other two image tweets as negatives."""
    model = fitted(tiny_encoder, graphs, temperature=0.3, cm_lambda=0.7, cm_text=cm_text)
    batch = batch_for(model, graphs)
    out = model(batch)
    cm = model.auxiliary_losses(batch, out)['cm']
    assert out.counts['cm_negatives'] == 3 * 2
    idx = [0, 1, 3]
    with torch.no_grad():
        C = text_vectors(model, batch, idx, cm_text)
        P = model.image_mlp(model.image_standardizer(batch[schema.IMAGE].x[idx]))
    cos = lambda a, b: float(a @ b / (a.norm() * b.norm()))
    tau, lam, N = 0.3, 0.7, len(idx)
    total = 0.0
    for i in range(N):
        p_to_c = -math.log(math.exp(cos(P[i], C[i]) / tau)
                           / sum(math.exp(cos(P[i], C[k]) / tau) for k in range(N)))  # Eq. 14
        c_to_p = -math.log(math.exp(cos(C[i], P[i]) / tau)
                           / sum(math.exp(cos(C[i], P[k]) / tau) for k in range(N)))  # Eq. 15
        total += lam * p_to_c + (1 - lam) * c_to_p
    assert float(cm.detach()) == pytest.approx(total / N, rel=1e-4)                             # Eq. 16


def test_guided_text_vector_reads_the_prefix_in_the_tagging_pass(tiny_encoder, graphs):
    """cm_text='guided' takes C_g from the one tagging pass (no second encoder pass) and so depends
    on the image through the prefix; the prefix-free vector does not."""
    guided = fitted(tiny_encoder, graphs, cm_text='guided')
    free = fitted(tiny_encoder, graphs)
    batch = batch_for(guided, graphs)
    outputs = {name: model(batch) for name, model in (('guided', guided), ('free', free))}
    calls = []
    handles = [m.encoder.register_forward_hook(lambda *args: calls.append(1)) for m in (guided, free)]
    losses = {name: float(model.auxiliary_losses(batch, outputs[name])['cm'].detach())
              for name, model in (('guided', guided), ('free', free))}
    for handle in handles:
        handle.remove()
    assert calls == [1]  # the prefix-free pass only
    assert losses['guided'] != pytest.approx(losses['free'])
    with torch.no_grad():
        idx = [0, 1, 3]
        torch.testing.assert_close(text_vectors(guided, batch, idx, 'guided'),
                                   guided.text_mlp(outputs['guided'].extras['text_vector'][idx]))
        assert not torch.allclose(text_vectors(free, batch, idx, 'guided'),
                                  text_vectors(free, batch, idx, 'prefix-free'))
    with pytest.raises(ValueError, match="cm_text must be one of 'prefix-free', 'guided', got 'text'"):
        GMFConfig(cm_text='text')


def test_cm_needs_two_images_and_skips_the_extra_pass(tiny_encoder, graphs):
    model = fitted(tiny_encoder, graphs)
    batch = batch_for(model, [graphs[0], graphs[2]])
    out = model(batch)
    calls = []
    handle = model.encoder.register_forward_hook(lambda *args: calls.append(1))
    assert float(model.auxiliary_losses(batch, out)['cm']) == 0.0
    handle.remove()
    assert calls == []


def test_objective_is_eq_22(tiny_encoder, graphs):
    model = fitted(tiny_encoder, graphs, alpha=0.3)
    loss, logs = model.loss(batch_for(model, graphs))
    assert model.loss_weights() == {'nll': 0.3, 'cm': pytest.approx(0.7)}
    assert logs['cm'] > 0 and loss.item() == pytest.approx(0.3 * logs['nll'] + 0.7 * logs['cm'], rel=1e-5)
    loss.backward()
    assert model.prefix.gate.weight.grad.abs().sum() > 0
    assert all(any(p.grad.abs().sum() > 0 for p in csa.parameters()) for csa in model.csa)
    assert model.image_mlp[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize('switch', ['vcg', 'csa'])
def test_vcg_and_csa_ablations_change_the_output(tiny_encoder, graphs, switch):
    full = fitted(tiny_encoder, graphs)
    ablated = make(tiny_encoder, **{switch: False})
    missing, _ = ablated.load_state_dict(full.state_dict(), strict=False)
    assert missing == []  # same weights where both have them: only the switch differs
    batch = batch_for(full, graphs)
    assert not torch.allclose(full(batch).emissions, ablated(batch).emissions)
    if switch == 'vcg':  # no prefix: the text encoder's emissions
        torch.testing.assert_close(ablated(batch).emissions,
                                   full.emission(full.encoder(batch.words).words))


def test_cm_ablation_changes_the_objective(tiny_encoder, graphs):
    full = fitted(tiny_encoder, graphs)
    ablated = make(tiny_encoder, cm=False)
    missing, _ = ablated.load_state_dict(full.state_dict(), strict=False)
    assert missing == []
    batch = batch_for(full, graphs)
    torch.testing.assert_close(ablated(batch).emissions, full(batch).emissions)
    assert ablated.loss_weights() == {'nll': 1.0} and ablated.auxiliary_losses(batch, ablated(batch)) == {}
    (full_loss, full_logs), (ablated_loss, ablated_logs) = full.loss(batch), ablated.loss(batch)
    full_loss, ablated_loss = full_loss.detach(), ablated_loss.detach()
    assert 'cm' not in ablated_logs and float(ablated_loss) == pytest.approx(full_logs['nll'], rel=1e-5)
    assert float(full_loss) != pytest.approx(float(ablated_loss))


def test_training_step_with_a_single_image_and_without_objects(tiny_encoder, graphs):
    model = fitted(tiny_encoder, graphs).train()
    loss, logs = model.loss(batch_for(model, [graphs[3], graphs[2]]))  # one image (batch norm), no object
    loss.backward()
    assert torch.isfinite(loss) and logs['cm'] == 0.0


def test_save_load_round_trip(tiny_encoder, graphs, tmp_path):
    models.register(GMF)
    model = fitted(tiny_encoder, graphs)
    model.train()
    model.loss(batch_for(model, graphs))[0].backward()  # batch-norm running statistics move
    model.eval()
    batch = batch_for(model, graphs)
    model.save(tmp_path / 'gmf.pt')
    loaded = models.load(tmp_path / 'gmf.pt').eval()
    assert type(loaded) is GMF and loaded.config == model.config
    assert bool(loaded.scale_standardizers[2].fitted)
    torch.testing.assert_close(loaded(batch).emissions, model(batch).emissions)
    assert loaded.decode(batch) == model.decode(batch)


@pytest.mark.parametrize('lr_groups, head_modules', [
    ('encoder', {'emission', 'crf', 'csa', 'level_maps', 'object_map', 'prefix', 'text_mlp', 'image_mlp'}),
    ('single', set()),               # the paper's one rate: nothing takes head_lr
    ('hvpnet', {'emission', 'crf'}),  # HVPNeT's 5e-2 group; the visual modules join the encoder's rate
])
def test_learning_rate_groups(tiny_encoder, lr_groups, head_modules):
    """Each lr_groups form hands every parameter to exactly one rate, the one its source gives it:
    AdamW's groups (the trainer's) carry encoder_lr / head_lr on exactly those modules."""
    from graphmner.train import TrainConfig, optimizer_groups

    model = make(tiny_encoder, lr_groups=lr_groups)
    module = {id(p): name.split('.')[0] for name, p in model.named_parameters()}
    encoder, head = model.parameter_groups()
    assert sorted(map(id, encoder + head)) == sorted(module)
    assert {module[id(p)] for p in head} == head_modules
    assert {module[id(p)] for p in encoder} == set(module.values()) - head_modules
    rate = {}
    for group in optimizer_groups(model, TrainConfig(encoder_lr=5e-5, head_lr=5e-2)):
        rate.update({id(p): group['lr'] for p in group['params']})
    assert {module[i] for i, lr in rate.items() if lr == 5e-2} == head_modules
    assert len(rate) == len(module)


def test_lr_groups_refuses_an_unknown_form():
    with pytest.raises(ValueError, match="lr_groups must be one of 'encoder', 'single', 'hvpnet', got 'crf'"):
        GMFConfig(lr_groups='crf')


def test_config_and_data_errors(tiny_encoder, graphs, tweet):
    with pytest.raises(ValueError, match=r'scale_dims must give 4 level widths .* got \[2, 4\]'):
        GMFConfig(visual_dim=8, scale_dims=[2, 4])
    with pytest.raises(ValueError, match=r'alpha must be in \(0, 1\], got 0'):
        GMFConfig(alpha=0)
    model = make(tiny_encoder, visual_dim=16, scale_dims=None)
    with pytest.raises(ValueError, match='visual_dim=16, got scale features of width 8'):
        model(batch_for(model, graphs[:1]))
    model = make(tiny_encoder)
    uneven = build_graph(tweet, pyramid_features(0, grid=2))
    with pytest.raises(ValueError, match=r'the same number of level-0 scale nodes in every image, '
                                         r'got \[4, 9\]'):
        model(batch_for(model, [graphs[0], uneven]))


def test_demo_defaults_follow_the_paper():
    config = GMFConfig()
    assert (config.cm_lambda, config.reduction, config.dilation) == (0.7, 16, 4)
    assert config.level_dims == [2048] * 4 and GMF.node_types == (schema.SCALE, schema.OBJECT)
