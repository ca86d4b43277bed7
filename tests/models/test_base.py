"""The shared plumbing of graphmner.models.base: gold labels into CRF tags."""
import random

import pytest
import torch
from torch_geometric.data import Batch

from graphmner import models
from graphmner.data.conll import Tweet
from graphmner.data.labels import BIO_LABELS, bio_to_bioes, repair_iob2
from graphmner.features.types import VisualWidths
from graphmner.graph.builder import build_graph


def random_tweets(count: int, seed: int) -> list[Tweet]:
    rng = random.Random(seed)
    tweets = []
    for i in range(count):
        length = rng.randint(1, 9)
        tweets.append(Tweet(f'img{i}', [f'w{j}' for j in range(length)],
                            [rng.choice(BIO_LABELS) for _ in range(length)]))
    return tweets


@pytest.mark.parametrize('tag_scheme', ['bio', 'bioes'])
def test_target_tags_equal_the_string_conversion(tiny_encoder, tag_scheme):
    model = models.build('bert-crf', encoder=tiny_encoder, tag_scheme=tag_scheme)
    tweets = random_tweets(40, seed=3)  # I- after O, type changes, one-word tweets
    batch = Batch.from_data_list([build_graph(tweet, None) for tweet in tweets])
    tags = model.target_tags(batch)
    for row, tweet in zip(tags.tolist(), tweets):
        gold = repair_iob2(tweet.labels)  # what word.y holds
        if tag_scheme == 'bioes':
            gold = bio_to_bioes(gold)
        assert [model.tags[i] for i in row[:len(gold)]] == gold
        assert all(i == 0 for i in row[len(gold):])  # padding


def test_bioes_model_tags_and_repr(tiny_encoder):
    model = models.build('bert-crf', encoder=tiny_encoder, tag_scheme='bioes')
    assert model.labels == BIO_LABELS and len(model.tags) == 17
    assert model.emission.out_features == 17 and model.crf.num_tags == 17
    assert 'tags=17 (bioes)' in repr(model)


def test_unknown_tag_scheme_is_refused(tiny_encoder):
    with pytest.raises(ValueError, match=r"tag_scheme must be one of \('bio', 'bioes'\), got 'bilou'"):
        models.build('bert-crf', encoder=tiny_encoder, tag_scheme='bilou')


# -- the batch checks and the one missing-image policy ---------------------------------
VISUAL_MODELS = ['umgf', 'maf', 'gmf']


def visual_graphs(dim: int = 2048) -> list:
    from conftest import fake_features
    tweets = random_tweets(3, seed=5)
    return [build_graph(t, fake_features(num_objects=i, dim=dim, seed=i) if i < 2 else None,
                        widths=VisualWidths.uniform(dim))
            for i, t in enumerate(tweets)]


@pytest.mark.parametrize('name', VISUAL_MODELS)
def test_every_visual_model_refuses_graphs_without_the_missing_flag(tiny_encoder, name):
    """One policy: no ``image.missing`` is an error (never "the image is there"), in forward and when
    fitting the feature statistics; with the flag, the image mask is its negation."""
    model = models.build(name, encoder=tiny_encoder)
    graphs = [model.graph_transform()(g) for g in visual_graphs()]
    batch = Batch.from_data_list(graphs)
    assert model.image_mask(batch).tolist() == [True, True, False]
    model.eval()(batch)
    for g in graphs:
        del g['image'].missing
    with pytest.raises(ValueError, match=rf"^{type(model).__name__} reads 'image.missing' "):
        model(Batch.from_data_list(graphs))
    with pytest.raises(ValueError, match=rf"^{type(model).__name__} reads 'image.missing' "):
        model.fit_feature_statistics(graphs)


@pytest.mark.parametrize('name', VISUAL_MODELS)
def test_every_visual_model_refuses_another_visual_width(tiny_encoder, name):
    from conftest import batch_for
    model = models.build(name, encoder=tiny_encoder, visual_dim=16)
    with pytest.raises(ValueError, match=rf'^{type(model).__name__} was built for visual_dim=16, got '
                                         r'\w+ features of width 8$'):
        model(batch_for(model, visual_graphs(dim=8)))


@pytest.mark.parametrize('name', models.available())
def test_every_model_refuses_word_nodes_that_are_not_its_words(tiny_encoder, name):
    from conftest import batch_for
    model = models.build(name, encoder=tiny_encoder)
    batch = batch_for(model, visual_graphs())
    batch.words = [words[:-1] if i == 0 else words for i, words in enumerate(batch.words)]
    nodes = batch['word'].num_nodes
    with pytest.raises(ValueError, match=f"^The batch has {nodes} word nodes but its 'words' lists "
                                         f'{nodes - 1} words$'):
        model.eval()(batch)


def test_fitting_skips_the_visual_nodes_of_graphs_without_an_image_and_cuts_each_level(tiny_encoder):
    """GMF's level standardizers see only their level's rows and channels, from graphs with an image."""
    model = models.build('gmf', encoder=tiny_encoder, visual_dim=8, scale_dims=[2, 4, 6, 8])
    graphs = [model.graph_transform()(g) for g in visual_graphs(dim=8)]
    graphs[2]['scale'].x = torch.full((16, 8), 1e6)  # a tweet without an image: never read
    graphs[2]['scale'].level = torch.arange(4).repeat_interleave(4)
    model.fit_feature_statistics(graphs)
    for i, standardizer in enumerate(model.scale_standardizers):
        rows = torch.cat([g['scale'].x[g['scale'].level == i, :2 * (i + 1)] for g in graphs[:2]]).double()
        torch.testing.assert_close(standardizer.mean, rows.mean(0).float())
        torch.testing.assert_close(standardizer.std, rows.std(0, unbiased=False).float())


# -- decode with marginals -----------------------------------------------------------------
def test_decode_with_marginals_gives_each_decoded_tag_its_posterior(tiny_encoder):
    """For a one-word tweet the posterior of tag k is softmax_k(start + emission + end)."""
    torch.manual_seed(0)
    model = models.build('bert-crf', encoder=tiny_encoder).eval()
    tweets = [Tweet('a', ['Obama'], ['B-PER']), Tweet('b', ['Paris'], ['B-LOC']),
              Tweet('c', ['w0', 'w1', 'w2'], ['O'] * 3)]
    batch = Batch.from_data_list([build_graph(t) for t in tweets])
    labels, marginals = model.decode(batch, marginals=True)
    assert labels == model.decode(batch) and [len(m) for m in marginals] == [1, 1, 3]
    with torch.no_grad():
        emissions = model(batch).emissions
        start, _, end = model.crf._scores()
    for b in range(2):
        posterior = (start + emissions[b, 0] + end).softmax(-1)
        assert marginals[b][0] == pytest.approx(float(posterior.max()), rel=1e-5)
        assert labels[b][0] == model.tags[int(posterior.argmax())]
    assert all(0.0 < p <= 1.0 for p in marginals[2])


def test_without_repair_the_targets_are_the_files_labels(tiny_encoder):
    """repair_targets=False (the BIO official codes): stray I- labels train as written, and an
    unconstrained CRF scores them like any other path."""
    model = models.build('bert-crf', encoder=tiny_encoder, constrained_decoding=False, repair_targets=False)
    repaired = models.build('bert-crf', encoder=tiny_encoder, constrained_decoding=False)
    tweets = random_tweets(40, seed=3)
    assert any(repair_iob2(t.labels) != list(t.labels) for t in tweets)  # the check sees stray I-
    batch = Batch.from_data_list([build_graph(tweet, None) for tweet in tweets])
    rows = zip(model.target_tags(batch).tolist(), repaired.target_tags(batch).tolist(), tweets)
    for got, want, tweet in rows:
        n = len(tweet.labels)
        assert [model.tags[i] for i in got[:n]] == list(tweet.labels) and all(i == 0 for i in got[n:])
        assert [model.tags[i] for i in want[:n]] == repair_iob2(tweet.labels)
    _, parts = model.loss(batch)
    assert parts['nll'] < 100  # a constrained CRF would charge about 10000 per stray I-


@pytest.mark.parametrize('settings, got', [({}, "True and 'bio'"),
                                           ({'constrained_decoding': False, 'tag_scheme': 'bioes'},
                                            "False and 'bioes'")])
def test_unrepaired_targets_need_an_unconstrained_bio_crf(tiny_encoder, settings, got):
    with pytest.raises(ValueError, match=rf"repair_targets=False .* \(got {got}\)"):
        models.build('bert-crf', encoder=tiny_encoder, repair_targets=False, **settings)
