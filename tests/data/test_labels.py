"""Tests of the label set and the BIO/BIOES conversions."""
import numpy as np
import pytest
import torch

from graphmner.data.labels import (
    BIO_LABELS,
    ENTITY_TYPES,
    LABEL2ID,
    allowed_bio_starts,
    allowed_bio_transitions,
    bio_to_bioes,
    bioes_to_bio,
    id_to_label,
    label_to_id,
)


def test_label_set_is_fixed():
    assert ENTITY_TYPES == ('PER', 'LOC', 'ORG', 'MISC')
    assert BIO_LABELS == ('O', 'B-PER', 'I-PER', 'B-LOC', 'I-LOC',
                          'B-ORG', 'I-ORG', 'B-MISC', 'I-MISC')
    assert dict(LABEL2ID) == {label: i for i, label in enumerate(BIO_LABELS)}
    with pytest.raises(TypeError):
        LABEL2ID['B-DATE'] = 9  # read-only


def test_label_ids_round_trip():
    labels = ['O', 'B-PER', 'I-PER', 'O', 'B-MISC']
    ids = label_to_id(labels)
    assert ids == [0, 1, 2, 0, 7]
    assert id_to_label(ids) == labels
    # Integer ids from NumPy and PyTorch work as they are.
    assert id_to_label(np.array(ids)) == labels
    assert id_to_label(torch.tensor(ids)) == labels


def test_label_id_errors():
    with pytest.raises(ValueError, match="Unknown label 'B-OTHER'"):
        label_to_id(['O', 'B-OTHER'])
    with pytest.raises(ValueError, match="Label id 9 is out of range"):
        id_to_label([0, 9])
    with pytest.raises(ValueError, match="Label id -1 is out of range"):
        id_to_label([-1])
    with pytest.raises(TypeError):
        id_to_label([1.0])


@pytest.mark.parametrize('bio,bioes', [
    ([], []),
    (['O', 'O'], ['O', 'O']),
    (['B-PER'], ['S-PER']),
    (['B-PER', 'I-PER', 'I-PER', 'O', 'B-LOC'], ['B-PER', 'I-PER', 'E-PER', 'O', 'S-LOC']),
    (['B-PER', 'B-PER', 'I-PER'], ['S-PER', 'B-PER', 'E-PER']),
    (['B-ORG', 'I-ORG', 'B-MISC', 'I-MISC'], ['B-ORG', 'E-ORG', 'B-MISC', 'E-MISC']),
    (['O', 'B-LOC', 'I-LOC', 'O'], ['O', 'B-LOC', 'E-LOC', 'O']),
])
def test_bioes_round_trip(bio, bioes):
    assert bio_to_bioes(bio) == bioes
    assert bioes_to_bio(bioes) == bio


@pytest.mark.parametrize('ill_formed,bioes,repaired', [
    # An I- that begins a chunk is read as conlleval reads it.
    (['O', 'I-PER', 'I-PER'], ['O', 'B-PER', 'E-PER'], ['O', 'B-PER', 'I-PER']),
    (['I-LOC'], ['S-LOC'], ['B-LOC']),
    (['B-LOC', 'I-PER', 'O'], ['S-LOC', 'S-PER', 'O'], ['B-LOC', 'B-PER', 'O']),
])
def test_bio_to_bioes_reads_stray_inside_as_a_chunk_start(ill_formed, bioes, repaired):
    assert bio_to_bioes(ill_formed) == bioes
    assert bioes_to_bio(bioes) == repaired


def test_conversions_accept_any_entity_type_and_reject_malformed_labels():
    assert bio_to_bioes(['B-DATE', 'I-DATE']) == ['B-DATE', 'E-DATE']
    with pytest.raises(ValueError, match="Malformed label 'S-PER'"):
        bio_to_bioes(['S-PER'])
    with pytest.raises(ValueError, match="Malformed label 'B-'"):
        bio_to_bioes(['B-'])
    with pytest.raises(ValueError, match="Malformed label 'L-PER'"):
        bioes_to_bio(['L-PER'])


def test_allowed_transitions_on_a_small_label_set():
    labels = ('O', 'B-PER', 'I-PER', 'B-LOC', 'I-LOC')
    everything_but_inside = {(i, j) for i in range(5) for j in (0, 1, 3)}
    assert set(allowed_bio_transitions(labels)) == everything_but_inside | {
        (1, 2), (2, 2),   # B-PER -> I-PER, I-PER -> I-PER
        (3, 4), (4, 4),   # B-LOC -> I-LOC, I-LOC -> I-LOC
    }
    assert allowed_bio_transitions(labels) == sorted(allowed_bio_transitions(labels))
    assert allowed_bio_starts(labels) == [0, 1, 3]


def test_allowed_transitions_on_the_default_label_set():
    allowed = set(allowed_bio_transitions())
    ids = LABEL2ID
    assert len(allowed) == 9 * 5 + 4 * 2
    assert (ids['B-MISC'], ids['I-MISC']) in allowed
    assert (ids['O'], ids['I-MISC']) not in allowed
    assert (ids['I-PER'], ids['I-LOC']) not in allowed
    assert allowed_bio_starts() == [ids['O'], ids['B-PER'], ids['B-LOC'],
                                    ids['B-ORG'], ids['B-MISC']]
    with pytest.raises(ValueError, match="Malformed label 'E-PER'"):
        allowed_bio_transitions(['O', 'E-PER'])


def test_repair_iob2_turns_chunk_starting_i_into_b():
    from graphmner.data.labels import repair_iob2
    assert repair_iob2(['I-PER', 'I-PER', 'O', 'I-LOC', 'B-LOC', 'I-ORG']) == \
        ['B-PER', 'I-PER', 'O', 'B-LOC', 'B-LOC', 'B-ORG']
    assert repair_iob2(['B-MISC', 'I-MISC']) == ['B-MISC', 'I-MISC']
