"""Tagger.predict(..., explain=True), the explain command and its picture."""
import pytest
import torch

from graphmner import Tagger, models
from graphmner.data.demo import DEMO_OPTIONS, demo_image_root

TEXT = 'Handsome Rob after a fish dinner in Paris'


def photo(name):
    return next(demo_image_root().glob(f'{name}.*'))


def untrained_tagger(name, tiny_encoder, cache):
    torch.manual_seed(0)
    extra = {} if name == 'bert-crf' else {'visual_dim': 42}  # the descriptors' width
    model = models.build(name, encoder=tiny_encoder, **extra)
    model.data_config = {'options': dict(DEMO_OPTIONS), 'tokenizer': 'twitter2015'}
    return Tagger(model, cache_dir=cache)


@pytest.fixture(scope='module')
def maf(tiny_encoder, graph_cache):
    return untrained_tagger('maf', tiny_encoder, graph_cache)


def test_explain_gives_what_the_model_read_per_word_and_entity(maf):
    p = maf.predict(TEXT, image=photo('astronaut'), explain=True)
    plain = maf.predict(TEXT, image=photo('astronaut'))
    assert p.labels == plain.labels and plain.evidence is None and 'evidence' not in plain.to_dict()
    e = p.evidence
    assert e.words == p.words and e.image_used == p.image_used is True
    assert len(e.entities) == len(p.entities)
    for entity, items in zip(p.entities, e.entities):
        assert items == e.top(entity.start, entity.end)
    regions = e.attention[0]
    assert len(regions.sources) == 49 and all(sum(r) == pytest.approx(1.0) for r in regions.weights)
    assert 0 < e.match_probability < 1
    assert p.to_dict()['evidence']['match_probability'] == e.match_probability


def test_another_photo_changes_the_evidence_of_maf_not_of_bert_crf(maf, tiny_encoder, graph_cache):
    bert = untrained_tagger('bert-crf', tiny_encoder, graph_cache)
    for tagger, changes in ((maf, True), (bert, False)):
        a, b = (tagger.predict(TEXT, image=photo(n), explain=True).evidence for n in ('astronaut', 'coffee'))
        assert (a != b) is changes
    assert not a.reads_image and "'bert-crf' reads no image" in a.notes[0]
