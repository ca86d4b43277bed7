"""ITA on the tiny random encoder: views, CVA term, text-only inference, persistence."""
import math

import pytest
import torch
from torch_geometric.data import Batch

from graphmner import models
from graphmner.graph.builder import build_graph
from graphmner.models.ita import ITA, ITAConfig, cross_view_kl

AUX = [('a', 'caption'), ('man', 'caption'), ('smiling', 'caption')]


def make(tiny_encoder, **kw):
    torch.manual_seed(0)
    return ITA(ITAConfig(encoder=tiny_encoder, **kw)).eval()


def test_aux_in_input_not_in_emissions(tiny_encoder, tweet):
    model = make(tiny_encoder)
    batch = Batch.from_data_list([build_graph(tweet, aux=AUX)])
    aux = model.aux_of(batch)
    assert aux == [['a', 'man', 'smiling']]
    enc = model.encoder.tokenize(model.words_of(batch), aux)
    ids = set(enc.input_ids[0].tolist())
    for w in aux[0]:
        assert set(model.encoder._word_pieces([w])[0]) <= ids
    out = model(batch)
    assert out.emissions.shape[1] == len(tweet.words)


def test_cross_view_kl_hand():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]])
    q = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]])
    mask = torch.tensor([[True, True, True, False]])
    lp, lq = p.log()[None], q.log()[None]
    assert cross_view_kl(lp, lp, mask, 2.0).item() == pytest.approx(0.0, abs=1e-7)
    hand = sum(sum(p[t, c] * math.log(p[t, c] / q[t, c]) for c in range(3)) for t in range(3))
    assert cross_view_kl(lp, lq, mask, 2.0).item() == pytest.approx(4 * float(hand), rel=1e-5)
    assert cross_view_kl(lp, lq, mask, 2.0).item() > 0


def test_text_only_inference(tiny_encoder, tweet):
    model = make(tiny_encoder, inference_view='text')
    assert model.view == 'text'
    plain = Batch.from_data_list([build_graph(tweet)])
    with_aux = Batch.from_data_list([build_graph(tweet, aux=AUX)])
    with torch.no_grad():
        a, b = model(plain).emissions, model(with_aux).emissions
    torch.testing.assert_close(a, b)
    auto = make(tiny_encoder)
    with torch.no_grad():
        torch.testing.assert_close(auto(plain).emissions, a)


def test_loss_parts(tiny_encoder, tweet):
    model = make(tiny_encoder, temperature=4.0).train()
    batch = Batch.from_data_list([build_graph(tweet, aux=AUX), build_graph(tweet)])
    loss, parts = model.loss(batch)
    loss.backward()
    assert {'nll', 'nll_image_text', 'cva', 'aux_words_truncated'} <= set(parts)
    assert parts['cva'] >= 0 and math.isfinite(loss.item())


def test_save_load(tiny_encoder, tweet, tmp_path):
    models.register(ITA)
    model = make(tiny_encoder)
    model.save(tmp_path / 'ita.pt')
    again = models.load(tmp_path / 'ita.pt') if hasattr(models, 'load') else ITA.load(tmp_path / 'ita.pt')
    batch = Batch.from_data_list([build_graph(tweet, aux=AUX)])
    with torch.no_grad():
        torch.testing.assert_close(model(batch).emissions, again.eval()(batch).emissions)


def test_aux_sources_filter(tiny_encoder, tweet):
    model = make(tiny_encoder, aux_sources=['tag', 'caption'])
    batch = Batch.from_data_list([build_graph(tweet, aux=[('a', 'caption'), ('dog', 'tag')])])
    assert model.aux_of(batch) == [['dog', 'a']]
    assert make(tiny_encoder, aux_sources=['ocr']).aux_of(batch) == [[]]
