"""UMGF, MAF and GMF reading aux words (captions, OCR, object tags) with
``aux_sources`` set (issue 28): tweets without aux words are tagged exactly
as by the paper's model, aux words change the emissions, the pipeline is told."""
import pytest
import torch
from conftest import batch_for, fake_features

from graphmner import models
from graphmner.data.conll import Tweet
from graphmner.features.types import VisualWidths
from graphmner.graph.builder import build_graph

TWEETS = [Tweet('a', ['Handsome', 'Rob', 'after', 'a', 'fish', 'dinner'], ['O', 'B-PER', 'O', 'O', 'O', 'O']),
          Tweet('b', ['Kawhi', 'Leonard', 'wins'], ['B-PER', 'I-PER', 'O'])]
AUX = [[('a', 'caption'), ('man', 'caption'), ('eating', 'caption'), ('RAPTORS', 'ocr')],
       [('person', 'tag'), ('basketball', 'caption')]]
METHODS = ['umgf', 'maf', 'gmf']


def graphs(aux=AUX, dim=2048):
    grounds = torch.tensor([[0], [1]])
    return [build_graph(t, fake_features(num_objects=2, dim=dim, seed=i), aux=a, grounds=grounds)
            for i, (t, a) in enumerate(zip(TWEETS, aux))]


def pair(name, tiny_encoder, sources=('caption', 'ocr')):
    """The paper's model and the same weights with aux_sources on (its aux parts fresh)."""
    torch.manual_seed(0)
    off = models.build(name, encoder=tiny_encoder).eval()
    on = models.build(name, encoder=tiny_encoder, aux_sources=list(sources)).eval()
    missing, unexpected = on.load_state_dict(off.state_dict(), strict=False)
    assert not unexpected and missing and all('aux' in key for key in missing), missing
    return off, on


@pytest.mark.parametrize('name', METHODS)
def test_no_aux_words_is_the_papers_model(tiny_encoder, name):
    off, on = pair(name, tiny_encoder)
    with torch.no_grad():
        plain = off(batch_for(off, graphs(aux=[[], []]))).emissions
        assert torch.equal(on(batch_for(on, graphs(aux=[[], []]))).emissions, plain)
        # Switched off, the aux words of the graphs are not read.
        assert torch.equal(off(batch_for(off, graphs())).emissions, plain)


@pytest.mark.parametrize('name', METHODS)
def test_aux_words_change_the_emissions(tiny_encoder, name):
    off, on = pair(name, tiny_encoder)
    with torch.no_grad():
        plain = off(batch_for(off, graphs())).emissions
        read = on(batch_for(on, graphs())).emissions
        # Only the first tweet has aux words of the sources read ('tag' is not one): the second keeps
        # exactly the paper's emissions.
        batch = batch_for(on, graphs(aux=[AUX[0], AUX[1][:1]]))
        mixed = on(batch).emissions
    assert not torch.allclose(read[0], plain[0])
    # Up to float rounding: GMF pads the batch's prefix to its longest, and a masked key changes the
    # order of the attention's sums, not their value (1.2e-7 here, on emissions up to 1.8).
    torch.testing.assert_close(mixed[1, :3], plain[1, :3], rtol=0, atol=1e-6)
    assert batch.aux_words == [['a', 'man', 'eating', 'RAPTORS'], []]  # ordered by aux_sources


@pytest.mark.parametrize('name', METHODS)
def test_the_model_says_it_reads_aux(tiny_encoder, name):
    cls = models.model_class(name)
    config = cls.config_class(encoder=tiny_encoder)
    assert cls.aux_sources(config) == ()
    both = cls.config_class(encoder=tiny_encoder, aux_sources=['ocr', 'tag'])
    assert cls.aux_sources(both) == ('ocr', 'tag')
    with pytest.raises(ValueError, match=r"Unknown aux_sources \['speech'\]"):
        models.build(name, encoder=tiny_encoder, aux_sources=['speech'])
    on = models.build(name, encoder=tiny_encoder, aux_sources=['caption'])
    assert set(cls.aux_relations) <= set(on.relations)
    assert not set(cls.aux_relations) & set(cls.relations)


@pytest.mark.parametrize('name', METHODS)
def test_explain_shows_the_aux_words(tiny_encoder, name):
    _, on = pair(name, tiny_encoder)
    evidence = on.explain(batch_for(on, graphs()))
    read = [(s.kind, s.label) for e in evidence[:1] for part in (*e.gates, *e.attention) for s in part.sources
            if s.kind == 'aux']
    assert ('aux', 'RAPTORS') in read


@pytest.mark.parametrize('name', METHODS)
def test_aux_words_are_evidence_without_an_image(tiny_encoder, name):
    """Twitter here has no photos: with aux_sources a tweet without an image reads its caption."""
    off, on = pair(name, tiny_encoder)
    widths = VisualWidths.uniform(2048)
    blind = [build_graph(t, None, aux=a, widths=widths) for t, a in zip(TWEETS, AUX)]
    with torch.no_grad():
        plain = off(batch_for(off, blind)).emissions
        read = on(batch_for(on, blind)).emissions
        without = on(batch_for(on, [build_graph(t, None, widths=widths) for t in TWEETS])).emissions
    assert not torch.allclose(read[0], plain[0]) and not torch.allclose(read[1, :3], plain[1, :3])
    assert torch.equal(without, plain)
    assert on.explain(batch_for(on, blind))[0].image_used


def test_gmf_needs_its_prefix_for_aux(tiny_encoder):
    with pytest.raises(ValueError, match=r"\['caption'\] are read as prefix tokens, which vcg=False"):
        models.build('gmf', encoder=tiny_encoder, aux_sources=['caption'], vcg=False)


def test_a_batch_not_from_the_graph_transform_is_refused(tiny_encoder):
    model = models.build('umgf', encoder=tiny_encoder, aux_sources=['caption']).eval()
    batch = batch_for(model, graphs())
    batch.aux_words = [words[:1] for words in batch.aux_words]
    with pytest.raises(ValueError, match='The batch has 4 aux nodes but its aux_words list 2 words'):
        model(batch)


@pytest.mark.parametrize('name', METHODS)
def test_a_checkpoint_keeps_the_switch(tiny_encoder, name, tmp_path):
    _, on = pair(name, tiny_encoder)
    on.save(tmp_path / 'model.pt')
    loaded = models.load(tmp_path / 'model.pt').eval()
    assert loaded.config.aux_sources == ['caption', 'ocr']
    with torch.no_grad():
        expected = on(batch_for(on, graphs())).emissions
        assert torch.equal(loaded(batch_for(loaded, graphs())).emissions, expected)
