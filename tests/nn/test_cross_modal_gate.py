"""UMGF's cross-modal gate (Eqs. 3-6) as message passing."""
import pytest
import torch

from graphmner.graph.builder import all_pairs
from graphmner.nn.cross_modal_gate import CrossModalGate
from graphmner.nn.graph_attention import GraphMultiHeadAttention


@pytest.fixture
def small_graph():
    """3 words, 2 objects; object 0 grounds words 0 and 1, object 1 grounds every word."""
    torch.manual_seed(0)
    words, objects = torch.randn(3, 4), torch.randn(2, 4)
    grounds = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 0, 1, 2]])  # object -> word
    return words, objects, grounds


def test_gate_matches_hand_computation(small_graph):
    words, objects, grounds = small_graph
    gate = CrossModalGate(4)
    out = gate((objects, words), grounds)
    W1, b1, W2 = gate.lin_dst.weight, gate.lin_dst.bias, gate.lin_src.weight
    expected = torch.zeros(3, 4)
    gates = []
    for j, i in grounds.t().tolist():  # Eqs. 3-4: sum_j sigmoid(W1 c_i + W2 c_j) * c_j
        b = torch.sigmoid(W1 @ words[i] + b1 + W2 @ objects[j])
        gates.append(b.mean())
        expected[i] += b * objects[j]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(gate._alpha, torch.stack(gates).detach())
    assert gate._alpha.shape == (grounds.shape[1], )


def test_reverse_gate_and_targets_without_neighbours(small_graph):
    words, objects, grounds = small_graph
    gate = CrossModalGate(4)
    rev = grounds.flip(0)[:, grounds[0] == 1]  # only object 1 hears words
    out = gate((words, objects), rev)
    assert out.shape == (2, 4)
    assert torch.equal(out[0], torch.zeros(4))
    b = torch.sigmoid(gate.lin_dst(objects[1]) + gate.lin_src(words))  # Eqs. 5-6
    torch.testing.assert_close(out[1], (b * words).sum(0))


def test_ungated_is_a_plain_sum(small_graph):
    words, objects, grounds = small_graph
    gate = CrossModalGate(4, gated=False)
    assert list(gate.parameters()) == []
    out = gate((objects, words), grounds)
    torch.testing.assert_close(out, torch.stack([objects.sum(0), objects.sum(0), objects[1]]))


def test_gate_explains_bad_shapes():
    gate = CrossModalGate(4)
    with pytest.raises(ValueError, match=r'\[N, 4\], got \(3, 5\)'):
        gate((torch.randn(2, 4), torch.randn(3, 5)), torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match='edge_index'):
        gate(torch.randn(2, 4), torch.zeros(3, dtype=torch.long))


def test_attention_passes_alpha_to_propagate(small_graph):
    """AttentionExplainer reads ``alpha`` from the message kwargs through a hook."""
    words, objects, grounds = small_graph
    seen = []
    for layer, args in ((CrossModalGate(4), ((objects, words), grounds)),
                        (GraphMultiHeadAttention(4, heads=2), (words, all_pairs(3)))):
        handle = layer.register_message_forward_hook(lambda m, kw, out: seen.append(kw[0]['alpha']))
        layer(*args)
        handle.remove()
    assert seen[0].shape == (5, 4) and seen[1].shape == (9, 2)  # 6 pairs + 3 self-loops


def test_gate_without_edges_aggregates_nothing():
    gate = CrossModalGate(8)
    words, objects = torch.randn(5, 8), torch.zeros(0, 8)
    out = gate((objects, words), torch.zeros(2, 0, dtype=torch.long))
    assert out.shape == (5, 8) and out.abs().sum() == 0
    assert gate._alpha.numel() == 0
