"""ITA on the tiny random encoder: views, CVA term, text-only inference, persistence."""
import math

import pytest
import torch
from torch_geometric.data import Batch

from graphmner import models
from graphmner.data.conll import Tweet
from graphmner.graph.builder import build_graph
from graphmner.models.ita import ITA, ITAConfig, cross_view_kl

AUX = [('a', 'caption'), ('man', 'caption'), ('smiling', 'caption')]


@pytest.fixture
def long_tweet():
    return Tweet('demo_2', ['RT', 'Kevin', 'Durant', 'in', 'Oakland', 'tonight'],
                 ['O', 'B-PER', 'I-PER', 'O', 'B-LOC', 'O'])


def make(tiny_encoder, **kw):
    torch.manual_seed(0)
    return ITA(ITAConfig(encoder=tiny_encoder, **kw)).eval()


def spy_on_encoder(model):
    """Records the aux words of every encoder call."""
    calls = []
    forward = model.encoder.forward

    def recording(words, aux_words=None, **kwargs):
        calls.append(aux_words)
        return forward(words, aux_words, **kwargs)
    model.encoder.forward = recording
    return calls


def test_aux_in_input_not_in_emissions(tiny_encoder, tweet):
    """The image-text view feeds the encoder the words and the aux words; only words are tagged;
    the text view feeds the words alone; the two give different emissions from the same weights."""
    model = make(tiny_encoder)
    calls = spy_on_encoder(model)
    batch = Batch.from_data_list([build_graph(tweet, aux=AUX)])
    assert model.aux_words_of(batch) == [['a', 'man', 'smiling']]
    views = {}
    for view in ('image-text', 'auto', 'text'):
        with model.inference_view(view), torch.no_grad():
            views[view] = model(batch).emissions
    assert calls == [[['a', 'man', 'smiling']]] * 2 + [None]
    assert views['image-text'].shape == views['text'].shape == (1, len(tweet.words), len(model.tags))
    torch.testing.assert_close(views['auto'], views['image-text'])
    assert not torch.allclose(views['image-text'], views['text'], atol=1e-3)
    # in training the output is the text view (the student); the image-text view rides in its extras
    calls.clear()
    out = model.train()(batch)
    assert calls == [None, [['a', 'man', 'smiling']]]
    assert set(out.extras) == {'image_text_index', 'image_text_emissions', 'image_text_mask'}
    assert out.extras['image_text_index'].tolist() == [0] and out.counts == {'aux_words_truncated': 0}


def no_dropout(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def reference_parts(model, batch):
    """The ITA objective computed from its definition: the text view's NLL over every tweet,
    the image-text view's NLL over the tweets with aux words, and T^2 sum KL(teacher || student)
    over those tweets' words divided by their number."""
    words, aux = model.words_of(batch), model.aux_words_of(batch)
    tags = model.target_tags(batch)
    text = model.encoder(words)
    e_text = model.emission(text.words)
    has = [i for i, a in enumerate(aux) if a]
    image_text = model.encoder([words[i] for i in has], [aux[i] for i in has])
    e_it, mask = model.emission(image_text.words), image_text.word_mask
    T = model.config.temperature
    teacher = model.crf.log_marginals(e_it, mask, temperature=T)
    student = model.crf.log_marginals(e_text[has], mask, temperature=T)
    kl = sum(float((teacher[b, t].exp() * (teacher[b, t] - student[b, t])).sum())
             for b in range(len(has)) for t in range(int(mask[b].sum())))
    return {'nll': float(model.crf.nll(e_text, tags, text.word_mask)),
            'nll_image_text': float(model.crf.nll(e_it, tags[has], mask)),
            'cva': T ** 2 * kl / len(has)}


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


@pytest.mark.parametrize('cva', [True, False])
def test_loss_is_text_nll_plus_weighted_image_text_nll_and_cva(tiny_encoder, tweet, long_tweet, cva):
    """loss = nll + (1 - r) nll_image_text + r cva (r = 0.3); without CVA, nll + nll_image_text;
    each part as its definition computes it."""
    model = no_dropout(make(tiny_encoder, temperature=4.0, cva_weight=0.3, cva=cva).train())
    with torch.no_grad():
        model.emission.weight.mul_(10)  # sharper marginals: the views disagree more
    caption = [(w, 'caption') for w in 'a man in a red shirt smiling next to a large fish on a boat'.split()]
    other = Tweet('demo_3', ['Oakland', 'wins'], ['B-ORG', 'O'])
    batch = Batch.from_data_list([build_graph(tweet, aux=caption), build_graph(long_tweet),
                                  build_graph(other, aux=AUX)])  # the tweet without aux words in between
    loss, parts = model.loss(batch)
    with torch.no_grad():
        want = reference_parts(model, batch)
    if cva:
        weights = {'nll': 1.0, 'nll_image_text': 0.7, 'cva': 0.3}
        assert want['cva'] > 1e-3  # the views disagree
    else:
        weights, _ = {'nll': 1.0, 'nll_image_text': 1.0}, want.pop('cva')
    assert model.loss_weights() == pytest.approx(weights)
    assert set(parts) - {'loss', 'aux_words_truncated'} == set(want)
    for key, value in want.items():
        assert parts[key] == pytest.approx(value, rel=1e-3, abs=1e-6), key
    assert loss.item() == pytest.approx(sum(weights[k] * want[k] for k in want), rel=1e-5)
    assert parts['loss'] == pytest.approx(loss.item())


def test_no_gradient_reaches_the_teacher_view(tiny_encoder, tweet):
    """CVA trains the text view (the student) towards the image-text view (the teacher):
    the gradient of the CVA term reaches the student's emissions and never the teacher's."""
    model = no_dropout(make(tiny_encoder).train())
    emissions = []
    view_output = model._view_output

    def keep_emissions(words, aux):
        out, truncated = view_output(words, aux)
        out.emissions.retain_grad()
        emissions.append(out.emissions)
        return out, truncated
    model._view_output = keep_emissions
    batch = Batch.from_data_list([build_graph(tweet, aux=AUX)])
    student = model(batch)
    model.auxiliary_losses(batch, student)['cva'].backward()
    [student_emissions, teacher_emissions] = emissions
    assert student_emissions.grad is not None and student_emissions.grad.abs().sum() > 0
    assert teacher_emissions.grad is None or not teacher_emissions.grad.any()


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
    assert model.aux_words_of(batch) == [['dog', 'a']]
    assert make(tiny_encoder, aux_sources=['ocr']).aux_words_of(batch) == [[]]
