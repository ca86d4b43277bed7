import pytest
import torch

from graphmner.nn.aux_reader import AuxReader
from graphmner.nn.encoder import TextEncoder


@pytest.fixture(scope='module')
def encoder(tiny_encoder):
    return TextEncoder(tiny_encoder).eval()


def test_states_are_the_projected_encoder_states_of_the_aux_words_alone(encoder):
    torch.manual_seed(0)
    reader = AuxReader(encoder.hidden_size, 8)
    aux = [['a', 'man', 'eating'], [], ['raptors']]
    with torch.no_grad():
        states, mask = reader(encoder, aux)
        alone = encoder([['a', 'man', 'eating'], ['raptors']])
        expected = reader.projection(alone.words) * alone.word_mask.unsqueeze(-1)
    assert states.shape == (3, 3, 8) and mask.tolist() == [[True] * 3, [False] * 3, [True, False, False]]
    assert torch.equal(states[0], expected[0]) and torch.equal(states[2], expected[1])
    assert torch.equal(states[1], torch.zeros(3, 8))


def test_no_aux_word_costs_no_encoder_pass(encoder):
    reader = AuxReader(encoder.hidden_size, 8)
    with encoder.recording_attention() as record:
        states, mask = reader(encoder, [[], []])
    assert states.shape == (2, 0, 8) and mask.shape == (2, 0) and record == []


def test_another_encoder_width_is_refused(encoder):
    with pytest.raises(ValueError, match='built for an encoder of width 16, got one of width 32'):
        AuxReader(16, 8)(encoder, [['a']])


def test_reset_parameters():
    reader = AuxReader(4, 3)
    reader.projection.bias.data.fill_(1.0)
    reader.reset_parameters()
    assert torch.equal(reader.projection.bias, torch.zeros(3))
    assert repr(reader) == 'AuxReader(4, 3)'
