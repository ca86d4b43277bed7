"""MNERModel.explain: what each model read, from its own forward pass."""
import pytest
import torch
from conftest import batch_for, fake_features

from graphmner import models
from graphmner.data.conll import Tweet
from graphmner.features.types import VisualWidths
from graphmner.graph.builder import build_graph
from graphmner.models.evidence import Attention, Evidence, Gate, Source

DIM = 8
TWEET = Tweet('t', ['Handsome', 'Rob', 'after', 'a', 'fish', 'dinner'], ['O', 'B-PER', 'O', 'O', 'O', 'O'])
VISUAL = ('gmf', 'maf', 'umgf')


def graphs(seed=0):
    aux = [('a', 'caption'), ('dog', 'caption')]
    return [build_graph(TWEET, fake_features(2, DIM, seed=seed), aux=aux),
            build_graph(TWEET, None, widths=VisualWidths.uniform(DIM))]


def make(name, tiny_encoder):
    torch.manual_seed(0)
    extra = {} if name in ('bert-crf', 'ita') else {'visual_dim': DIM}
    return models.build(name, encoder=tiny_encoder, **extra).eval()


@pytest.mark.parametrize('name', models.MODEL_NAMES)
def test_attention_of_a_word_sums_to_one_over_what_it_reads(name, tiny_encoder):
    model = make(name, tiny_encoder)
    evidence = model.explain(batch_for(model, graphs()))
    assert [e.words for e in evidence] == [TWEET.words] * 2
    assert [e.image_used for e in evidence] == ([True, False] if name != 'bert-crf' else [False, False])
    for e in evidence:
        for a in e.attention:
            assert len(a.weights) == len(e.words) and all(len(r) == len(a.sources) for r in a.weights)
            for row in a.weights:
                assert sum(row) == pytest.approx(1.0, abs=1e-5) and min(row) >= 0
        for g in e.gates:
            assert all(v is None or 0 < v < 1 for row in g.values for v in row)
    visual = {s.kind for a in evidence[0].attention + evidence[0].gates for s in a.sources} & \
        {'region', 'scale', 'object', 'aux', 'image'}
    assert bool(visual) == (name != 'bert-crf')
    if name == 'bert-crf':
        assert not evidence[0].reads_image and 'reads no image' in evidence[0].notes[0]


def test_another_photo_changes_a_visual_models_evidence_not_bert_crfs(tiny_encoder):
    for name in (*VISUAL, 'bert-crf'):
        model = make(name, tiny_encoder)
        first, second = (model.explain(batch_for(model, graphs(seed)))[0] for seed in (0, 1))
        if name == 'bert-crf':
            assert first == second
        else:
            assert first.attention + first.gates != second.attention + second.gates, name


def test_maf_says_how_well_the_image_fits_and_its_gate(tiny_encoder):
    model = make('maf', tiny_encoder)
    batch = batch_for(model, graphs())
    with_image, without = model.explain(batch)
    expected = model(batch).extras['match_logits'].softmax(-1)[0, 1].item()
    assert with_image.match_probability == pytest.approx(expected)
    assert without.match_probability is None and without.gates == [] and 'no usable image' in without.notes[0]
    assert [s.kind for s in with_image.attention[0].sources] == ['region'] * 49
    assert all(s.box is not None for s in with_image.attention[0].sources)


def test_gmf_layer_gates_and_prefix_sources(tiny_encoder):
    model = make('gmf', tiny_encoder)
    e = model.explain(batch_for(model, graphs()))[0]
    assert len(e.layer_gates) == model.encoder.num_layers
    assert all(sum(row) == pytest.approx(1.0) and len(row) == 4 for row in e.layer_gates)
    kinds = [s.kind for s in e.attention[0].sources]
    # the 2 x 2 cells of the fake pyramid, the two objects, the words, [CLS]/[SEP]
    assert kinds == ['scale'] * 4 + ['object'] * 2 + ['word'] * 6 + ['special']
    assert [s.label for s in e.attention[0].sources[4:6]] == ['person', 'dog']


def test_ita_marginals_of_both_views_are_the_decoders(tiny_encoder):
    model = make('ita', tiny_encoder)
    batch = batch_for(model, graphs())
    evidence = model.explain(batch)
    for view in ('image-text', 'text'):
        with model.inference_view(view):
            labels, chosen = model.decode(batch, marginals=True)
            tags = model.tagging.to_tags(*_ids(model, labels))
        for b, e in enumerate(evidence):
            got = [e.view_marginals[view][i][t] for i, t in enumerate(tags[b, :len(e.words)].tolist())]
            assert got == pytest.approx(chosen[b], abs=1e-5)
    aux = [s.label for s in evidence[0].attention[0].sources if s.kind == 'aux']
    assert aux == ['a', 'dog'] and "'image-text' view" in evidence[0].notes[0]
    assert not any(s.kind == 'aux' for s in evidence[1].attention[0].sources)


def _ids(model, labels):
    T = max(len(x) for x in labels)
    ids = torch.zeros(len(labels), T, dtype=torch.long)
    mask = torch.zeros(len(labels), T, dtype=torch.bool)
    for b, x in enumerate(labels):
        ids[b, :len(x)] = torch.tensor([model.labels.index(label) for label in x])
        mask[b, :len(x)] = True
    return ids, mask


def test_explain_refuses_training_mode(tiny_encoder):
    model = make('maf', tiny_encoder).train()
    with pytest.raises(ValueError, match=r'call model\.eval\(\) first'):
        model.explain(batch_for(model, graphs()))


def test_top_evidence_of_a_span_is_the_mean_over_its_words():
    region = [Source('region', f'region {i}') for i in range(3)]
    e = Evidence('m', ['a', 'b', 'c'], True, True,
                 attention=[Attention('att', [*region, Source('word', 'a')],
                                      [[0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.1, 0.3], [0.0, 0.0, 0.0, 1.0]])],
                 gates=[Gate('gate', region[:2], [[0.9, None], [0.7, None], [0.2, 0.4]])])
    top = e.top(0, 2, k=2)
    assert [(i.read_by, i.source.label) for i in top] == [('att', 'region 0'), ('att', 'region 2'),
                                                          ('gate', 'region 0')]
    assert [i.weight for i in top] == pytest.approx([0.3, 0.2, 0.8])  # words, not sources, are averaged
    assert [i.weight for i in e.top(1, 3)][-1] == pytest.approx(0.4)    # None (no edge) is left out
    with pytest.raises(ValueError, match='0 <= start < end <= 3, got 2:2'):
        e.top(2, 2)
