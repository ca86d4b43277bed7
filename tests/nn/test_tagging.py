"""TagScheme: gold BIO ids into CRF tags and decoded tags back into BIO."""
import random

import pytest
import torch
from torch_geometric.utils import to_dense_batch

from graphmner.data.labels import BIO_LABELS, bio_to_bioes, label_to_id, repair_iob2
from graphmner.nn.tagging import TagScheme


def random_labels(count: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(BIO_LABELS) for _ in range(rng.randint(1, 9))] for _ in range(count)]


@pytest.mark.parametrize('scheme', ['bio', 'bioes'])
def test_to_tags_equals_the_string_conversion(scheme):
    tagging = TagScheme(BIO_LABELS, scheme)
    sentences = [repair_iob2(s) for s in random_labels(60, seed=3)]  # what word.y holds
    ids = torch.tensor([i for s in sentences for i in label_to_id(s)])
    graph = torch.arange(len(sentences)).repeat_interleave(torch.tensor([len(s) for s in sentences]))
    bio, mask = to_dense_batch(ids, graph, fill_value=0)
    tags = tagging.to_tags(bio, mask)
    for row, gold in zip(tags.tolist(), sentences):
        expected = bio_to_bioes(gold) if scheme == 'bioes' else gold
        assert [tagging.tags[i] for i in row[:len(gold)]] == expected
        assert all(i == 0 for i in row[len(gold):])


def test_to_labels_turns_bioes_paths_back_into_bio():
    tagging = TagScheme(BIO_LABELS, 'bioes')
    path = ['S-PER', 'O', 'B-LOC', 'I-LOC', 'E-LOC', 'S-ORG']
    ids = torch.tensor([[tagging.tags.index(t) for t in path], [0] * 6])
    assert tagging.to_labels(ids, [6, 2]) == [['B-PER', 'O', 'B-LOC', 'I-LOC', 'I-LOC', 'B-ORG'], ['O', 'O']]
    assert TagScheme(BIO_LABELS).to_labels(torch.tensor([[1, 2, 0]]), [2]) == [['B-PER', 'I-PER']]


def test_tag_sets_and_errors():
    assert TagScheme(BIO_LABELS).tags == BIO_LABELS
    assert TagScheme(BIO_LABELS, 'bioes').num_tags == 17
    assert len(TagScheme(BIO_LABELS, 'bioes').constraints()) == 3  # BIOES forbids ending inside a chunk
    with pytest.raises(ValueError, match=r"tag_scheme must be one of \('bio', 'bioes'\), got 'bilou'"):
        TagScheme(BIO_LABELS, 'bilou')
