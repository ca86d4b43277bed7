"""Tweets over the encoder's max_length: trained on, scored and tagged in windows, every word."""
import pytest
import torch
from conftest import batch_for, fake_features
from torch_geometric.data import Batch

from graphmner import models
from graphmner.data.conll import Tweet
from graphmner.graph.builder import build_graph


def test_a_sentence_over_the_limit_is_trained_and_tagged_on_all_its_words(tiny_encoder, long_tweet):
    # 10 words repeated 6 times, read in windows of 14 subwords
    tweet = Tweet('long', long_tweet.words * 6, long_tweet.labels * 6)
    torch.manual_seed(0)
    model = models.build('bert-crf', encoder=tiny_encoder, max_length=16, dropout=0.0)
    batch = Batch.from_data_list([build_graph(tweet, None)])
    assert model.encoder.tokenize([tweet.words]).input_ids.shape[0] > 4
    # the loss reads the labels of the last words: changing the last label changes it
    wrong = Tweet('long', tweet.words, tweet.labels[:-2] + ['B-MISC', 'I-MISC'])
    with torch.no_grad():
        model.eval()
        assert model.loss(batch)[0] != model.loss(Batch.from_data_list([build_graph(wrong, None)]))[0]
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        optimizer.zero_grad()
        model.loss(batch)[0].backward()
        optimizer.step()
    model.eval()
    labels = model.decode(batch)[0]
    assert labels[-10:] == labels[:10] == long_tweet.labels  # the last repetition as the first
    assert labels == tweet.labels


@pytest.mark.parametrize('name', models.available())
def test_every_model_reads_a_long_tweet_with_its_image_and_aux_words(name, tiny_encoder, tweet, long_tweet):
    """GMF's prefix and ITA's aux words go with the windows; the tweet that fits beside the long
    one is tagged as when alone."""
    torch.manual_seed(0)
    model = models.build(name, encoder=tiny_encoder, max_length=16, dropout=0.0).eval()
    long = Tweet('long', long_tweet.words * 4, long_tweet.labels * 4)
    aux = [('a', 'caption'), ('dog', 'tag')]
    graphs = [build_graph(long, fake_features(dim=2048, seed=1), aux=aux),
              build_graph(tweet, fake_features(dim=2048, seed=2), aux=aux)]
    with torch.no_grad():
        loss, _ = model.loss(batch_for(model, graphs))
        labels = model.decode(batch_for(model, graphs))
        alone = model(batch_for(model, graphs[1:])).emissions[0]
        both = model(batch_for(model, graphs)).emissions[1, :len(tweet.words)]
    assert torch.isfinite(loss) and [len(x) for x in labels] == [40, len(tweet.words)]
    torch.testing.assert_close(both, alone, atol=1e-5, rtol=1e-4)
