"""MAF on the tiny random encoder: shapes and masking, the losses against
straightforward loops, the swap, image-less tweets, ablations, persistence."""
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import batch_for, fake_features
from torch_geometric.data import Batch

from graphmner import models
from graphmner.features.types import VisualWidths
from graphmner.graph import schema
from graphmner.graph.builder import build_graph
from graphmner.models.maf import MAF, MAFConfig

DIM = 8  # visual feature width of the fake features


def make(tiny_encoder, seed=0, **overrides):
    torch.manual_seed(seed)
    return MAF(MAFConfig(encoder=tiny_encoder, visual_dim=DIM, **overrides)).eval()




def with_image(tweet, seed=0):
    return build_graph(tweet, fake_features(0, DIM, seed=seed))


def image_less(tweet):
    return build_graph(tweet, None, widths=VisualWidths.uniform(DIM))


def mixed_graphs(tweet, long_tweet, n):
    """n graphs alternating short / long tweets, every third one without an image."""
    return [image_less(t) if i % 3 == 2 else with_image(t, seed=i)
            for i, t in enumerate([tweet, long_tweet] * (n // 2))]


def test_reads_regions_images_and_informs_only(tiny_encoder, tweet):
    model = make(tiny_encoder)
    batch = batch_for(model, [with_image(tweet)])
    assert batch.edge_types == [schema.INFORMS]
    assert set(batch.node_types) == {schema.WORD, schema.IMAGE, schema.REGION}
    assert model.loss_weights() == {'nll': 0.62, 'ca': pytest.approx(0.38), 'cm': pytest.approx(0.38)}


def test_shapes_and_a_tweet_unchanged_by_a_longer_one(tiny_encoder, tweet, long_tweet):
    model = make(tiny_encoder)
    alone = model(batch_for(model, [with_image(tweet)]))
    out = model(batch_for(model, [with_image(tweet), with_image(long_tweet, seed=1)]))
    assert out.emissions.shape == (2, 10, len(model.tags))
    assert out.mask.sum(1).tolist() == [6, 10]
    torch.testing.assert_close(out.emissions[0, :6], alone.emissions[0], atol=1e-5, rtol=1e-4)


def test_the_image_changes_the_emissions(tiny_encoder, tweet):
    model = make(tiny_encoder)
    a = model(batch_for(model, [with_image(tweet, seed=0)])).emissions
    b = model(batch_for(model, [with_image(tweet, seed=1)])).emissions
    assert not torch.allclose(a, b)


def test_image_less_tweet_gets_exactly_the_text_path(tiny_encoder, tweet, long_tweet):
    model = make(tiny_encoder)
    out = model(batch_for(model, [with_image(long_tweet), image_less(tweet)]))
    words = model.encoder([tweet.words]).words[0]                      # T of the tweet alone [6, H]
    text_path = model.emission(torch.cat([words, torch.zeros_like(words)], dim=-1))
    torch.testing.assert_close(out.emissions[1, :6], text_path, atol=1e-5, rtol=1e-4)
    assert out.extras['has_image'].tolist() == [True, False]


def test_image_less_tweets_take_no_part_in_the_losses(tiny_encoder, tweet, long_tweet):
    model = make(tiny_encoder)
    graphs = [with_image(tweet, seed=0), with_image(long_tweet, seed=1), with_image(tweet, seed=2)]
    _, parts = model.loss(batch_for(model, graphs))
    _, parts_more = model.loss(batch_for(model, graphs + [image_less(long_tweet), image_less(tweet)]))
    assert parts_more['ca'] == pytest.approx(parts['ca'], rel=1e-5)
    assert parts_more['cm'] == pytest.approx(parts['cm'], rel=1e-5)
    _, none = model.loss(batch_for(model, [image_less(tweet), image_less(long_tweet)]))
    assert none['ca'] == 0.0 and none['cm'] == 0.0


def test_alignment_loss_equals_the_official_loop(tiny_encoder, tweet, long_tweet):
    """L_ca = 1/N sum_i (lambda_c L_i(t->v) + (1 - lambda_c) L_i(v->t)) over tweets with an image."""
    model = make(tiny_encoder)
    batch = batch_for(model, mixed_graphs(tweet, long_tweet, 6))
    out = model(batch)
    loss = model.auxiliary_losses(batch, out)['ca']
    has = out.extras['has_image']
    t, v = out.extras['text_vector'][has], out.extras['image_vector'][has]
    # t = W2 ReLU(W1 tanh(W [CLS])): the encoder's pooler output, as the official code
    torch.testing.assert_close(t[0], model.text_head(model.encoder([tweet.words]).pooler_output)[0],
                               atol=1e-5, rtol=1e-4)
    tau, lam = 0.179, 0.7
    sim = lambda a, b: F.cosine_similarity(a, b, dim=0).item() / tau
    total = 0.0
    for i in range(len(t)):
        t2v = -math.log(math.exp(sim(t[i], v[i])) / sum(math.exp(sim(t[i], v[j])) for j in range(len(t))))
        v2t = -math.log(math.exp(sim(v[i], t[i])) / sum(math.exp(sim(v[i], t[j])) for j in range(len(t))))
        total += lam * t2v + (1 - lam) * v2t
    assert has.sum() == 4
    assert loss.item() == pytest.approx(total / len(t), rel=1e-5)


def test_matching_loss_and_swap_in_training(tiny_encoder, tweet, long_tweet):
    model = make(tiny_encoder, negatives=2).train()
    batch = batch_for(model, mixed_graphs(tweet, long_tweet, 6))  # images: 0, 1, 3, 4
    out = model(batch)
    assert out.extras['match_target'].tolist() == [1, 1, 1, 0, 0, 1]  # the last 2k image tweets
    has = out.extras['has_image']
    expected = F.cross_entropy(out.extras['match_logits'][has], out.extras['match_target'][has])
    torch.testing.assert_close(model.auxiliary_losses(batch, out)['cm'], expected)


@pytest.mark.parametrize('negatives', [4, 16])
def test_no_negatives_with_2k_or_fewer_image_tweets(tiny_encoder, tweet, long_tweet, negatives):
    model = make(tiny_encoder, negatives=negatives).train()
    out = model(batch_for(model, mixed_graphs(tweet, long_tweet, 6)))  # 4 tweets with an image
    assert out.extras['match_target'].tolist() == [1] * 6


def test_the_trainer_warns_about_an_epoch_without_negatives(tiny_encoder, tweet, long_tweet, tmp_path,
                                                            caplog):
    """One batch of 6 tweets, 4 with an image: 2k = 4 swaps nothing (warned), 2k = 2 swaps 2."""
    from graphmner.train import TrainConfig, Trainer

    for negatives, swapped in ((4, 0), (2, 2)):
        model = make(tiny_encoder, negatives=negatives)
        graphs = [model.graph_transform()(g) for g in mixed_graphs(tweet, long_tweet, 6)]
        caplog.clear()
        with caplog.at_level('WARNING', logger='graphmner.train'):
            [epoch] = Trainer(model, graphs, graphs[:2], TrainConfig(epochs=1, batch_size=6),
                              tmp_path / str(negatives)).fit()
        assert epoch['negatives'] == swapped
        warned = [r.getMessage() for r in caplog.records if 'CM negatives' in r.getMessage()]
        assert warned == ([] if swapped else [
            'epoch 1: MAF trained with 0 CM negatives: no training batch held more than 2k = 4 tweets with '
            'a usable image (only then are 2k swapped), so L_cm saw matched pairs only; raise '
            'train.batch_size above 4 or lower model.negatives'])
    assert make(tiny_encoder, negatives=0).epoch_warnings({'negatives': 0}) == []  # 2k = 0 is a choice


def test_no_swap_and_deterministic_decoding_in_eval(tiny_encoder, tweet, long_tweet):
    model = make(tiny_encoder, negatives=2)
    batch = batch_for(model, mixed_graphs(tweet, long_tweet, 6))
    out = model(batch)
    assert out.extras['match_target'].tolist() == [1] * 6
    torch.testing.assert_close(model(batch).emissions, out.emissions)
    assert model.decode(batch) == model.decode(batch)


def test_swapped_negatives_feed_the_tagger_in_training(tiny_encoder, tweet, long_tweet):
    """Tweets 3 and 4 share their text and differ in their image, and they are the pair swapped
    in training: with dropout off (the encoder's too), training gives each of them the emissions
    evaluation gives the other; the tweets not swapped keep theirs."""
    graphs = [with_image(tweet, 0), with_image(long_tweet, 1), image_less(tweet),
              with_image(tweet, 3), with_image(tweet, 4), image_less(long_tweet)]
    model = make(tiny_encoder, negatives=2, dropout=0.0, attention_dropout=0.0)
    batch = batch_for(model, graphs)
    evaluated = model(batch).emissions
    model.train().encoder.eval()
    out = model(batch)
    assert out.extras['match_target'].tolist() == [1, 1, 1, 0, 0, 1]
    trained = out.emissions
    torch.testing.assert_close(trained[:3], evaluated[:3])
    torch.testing.assert_close(trained[3], evaluated[4])
    torch.testing.assert_close(trained[4], evaluated[3])
    assert not torch.allclose(trained[3], evaluated[3])


def test_the_official_matching_classifier_is_an_option(tiny_encoder, tweet, long_tweet):
    model = make(tiny_encoder, negatives=2, matching_positions=16).train()
    assert model.matching.classifier.in_features == 2 * 32 * 16
    loss, parts = model.loss(batch_for(model, mixed_graphs(tweet, long_tweet, 6)))
    loss.backward()
    assert parts['negatives'] == 2 and math.isfinite(parts['cm'])
    assert model.matching.classifier.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('ablation', [{'gate': False}, {'matching': False}])
def test_ablations_change_the_emissions(tiny_encoder, tweet, long_tweet, ablation):
    graphs = mixed_graphs(tweet, long_tweet, 4)
    full, ablated = make(tiny_encoder), make(tiny_encoder, **ablation)
    ablated.load_state_dict(full.state_dict(), strict=False)  # the same weights where both have them
    a, b = full(batch_for(full, graphs)).emissions, ablated(batch_for(ablated, graphs)).emissions
    assert not torch.allclose(a, b)
    torch.testing.assert_close(a[2, :6], b[2, :6])  # the image-less tweet: text path either way


def test_without_alignment_no_ca_term_and_other_training(tiny_encoder, tweet, long_tweet):
    graphs = mixed_graphs(tweet, long_tweet, 4)
    full, ablated = make(tiny_encoder), make(tiny_encoder, alignment=False)
    ablated.load_state_dict(full.state_dict(), strict=False)
    assert not hasattr(ablated, 'text_head') and 'ca' not in ablated.loss_weights()
    losses = []
    for model in (full, ablated):
        loss, parts = model.loss(batch_for(model, graphs))
        losses.append((loss, parts))
        model.zero_grad()
        loss.backward()
        torch.optim.SGD(model.parameters(), lr=0.1).step()
    (loss, parts), (ablated_loss, ablated_parts) = losses
    assert 'ca' in parts and 'ca' not in ablated_parts
    assert parts['nll'] == pytest.approx(ablated_parts['nll'])  # same weights, same emissions
    assert loss.item() == pytest.approx(ablated_loss.item() + 0.38 * parts['ca'], rel=1e-5)
    # One step later the CA gradient (through the pooler into the encoder) shows in the tagging.
    batch = batch_for(full, graphs)
    assert not torch.allclose(full(batch).emissions, ablated(batch).emissions)


def test_total_loss_is_the_official_weighting(tiny_encoder, tweet, long_tweet):
    model = make(tiny_encoder, negatives=2).train()
    torch.manual_seed(0)
    loss, parts = model.loss(batch_for(model, mixed_graphs(tweet, long_tweet, 6)))
    assert set(parts) == {'loss', 'nll', 'ca', 'cm', 'negatives'} and parts['negatives'] == 2
    assert loss.item() == pytest.approx(0.62 * parts['nll'] + 0.38 * (parts['cm'] + parts['ca']), rel=1e-5)


def test_standardizers_fit_on_training_regions_and_images(tiny_encoder, tweet, long_tweet):
    model = make(tiny_encoder)
    graphs = mixed_graphs(tweet, long_tweet, 6)
    model.fit_feature_statistics(graphs)
    regions = torch.cat([g[schema.REGION].x for g in graphs])
    images = torch.cat([g[schema.IMAGE].x for g in graphs if not g[schema.IMAGE].missing.item()])
    torch.testing.assert_close(model.region_standardizer.mean, regions.mean(0))
    torch.testing.assert_close(model.image_standardizer.mean, images.mean(0))


def test_save_load_gives_identical_emissions(tiny_encoder, tweet, long_tweet, tmp_path):
    model = make(tiny_encoder)
    graphs = mixed_graphs(tweet, long_tweet, 6)
    model.fit_feature_statistics(graphs)
    batch = batch_for(model, graphs)
    model.save(tmp_path / 'maf.pt')
    loaded = models.load(tmp_path / 'maf.pt').eval()
    assert isinstance(loaded, MAF) and loaded.config == model.config
    assert bool(loaded.region_standardizer.fitted)
    assert torch.equal(loaded(batch).emissions, model(batch).emissions)
    assert loaded.decode(batch) == model.decode(batch)


def test_explains_bad_inputs(tiny_encoder, tweet):
    model = make(tiny_encoder)
    wide = build_graph(tweet, fake_features(0, DIM + 1))
    with pytest.raises(ValueError, match='visual_dim=8, got region features of width 9'):
        model(batch_for(model, [wide]))
    no_flag = with_image(tweet)
    del no_flag[schema.IMAGE].missing
    with pytest.raises(ValueError, match="image.missing"):
        model(Batch.from_data_list([model.graph_transform()(no_flag)]))
    with pytest.raises(ValueError, match=r'negatives \(2k\) must be even'):
        MAFConfig(negatives=3)
    with pytest.raises(ValueError, match='heads must divide the encoder width 32, got 5'):
        make(tiny_encoder, heads=5)


def test_visual_inputs_are_standardised(tiny_encoder, tweet, long_tweet):
    """Once fitted, a common offset and scale in every region and image feature change nothing."""
    graphs = mixed_graphs(tweet, long_tweet, 6)
    shifted = [g.clone() for g in graphs]
    for g in shifted:
        for node_type in (schema.REGION, schema.IMAGE):
            g[node_type].x = g[node_type].x * 3.0 + 100.0
    outputs = []
    for data in (graphs, shifted):
        model = make(tiny_encoder)
        model.fit_feature_statistics(data)
        outputs.append(model(batch_for(model, data)))
    torch.testing.assert_close(outputs[1].emissions, outputs[0].emissions, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(outputs[1].extras['image_vector'], outputs[0].extras['image_vector'],
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('aux_sources', [[], ['caption']])
def test_dense_interaction_gives_the_message_passing_values(tiny_encoder, tweet, long_tweet, aux_sources):
    """Tweets with and without image and caption words: the dense interaction (regions and aux
    words, not grouped by tweet) reads the same edges as the message passing, weights included."""
    dense = make(tiny_encoder, aux_sources=aux_sources)
    sparse = make(tiny_encoder, aux_sources=aux_sources, dense_interaction=False)
    sparse.load_state_dict(dense.state_dict())
    caption = [('a', 'caption'), ('dog', 'caption')]
    graphs = [build_graph(t, fake_features(0, DIM, seed=i) if i % 3 != 2 else None,
                          aux=caption if i % 2 else (), widths=VisualWidths.uniform(DIM))
              for i, t in enumerate([tweet, long_tweet] * 3)]
    batch = batch_for(dense, graphs)
    with torch.no_grad():
        torch.testing.assert_close(dense(batch).emissions, sparse(batch).emissions, rtol=0, atol=1e-6)
    attention, reference = dense.interaction.attention, sparse.interaction.attention
    assert torch.equal(attention._edge_index, reference._edge_index)
    torch.testing.assert_close(attention._alpha, reference._alpha, rtol=0, atol=1e-6)
