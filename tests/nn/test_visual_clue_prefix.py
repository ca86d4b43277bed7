"""GMF's dynamic gate (Eqs. 7-9) and per-layer prefix projection (Eqs. 10-12)."""
import pytest
import torch
import torch.nn.functional as F

from graphmner.nn.visual_clue_prefix import VisualCluePrefix


@pytest.fixture
def levels():
    torch.manual_seed(0)
    return torch.randn(3, 4, 5, 8)  # N=3 images, D=4 levels, S=5 cells, d=8


def test_gates_match_the_equations_and_rows_sum_to_one(levels):
    prefix = VisualCluePrefix(8, levels=4, num_layers=2)
    gates = prefix.gates(levels)
    assert gates.shape == (3, 2, 4)
    torch.testing.assert_close(gates.sum(-1), torch.ones(3, 2))
    for n in range(3):
        pooled = sum(levels[n, i].mean(0) for i in range(4)) / 4         # (1/d) sum_i GAP(V_i)
        for layer in range(2):
            W = prefix.gate.weight[layer * 4:(layer + 1) * 4]
            b = prefix.gate.bias[layer * 4:(layer + 1) * 4]
            gamma = F.leaky_relu(W @ pooled + b, 0.01)                      # Eq. 7
            torch.testing.assert_close(gates[n, layer], gamma.softmax(0))  # Eq. 8


def test_one_hot_gate_reproduces_a_single_level(levels):
    prefix = VisualCluePrefix(8, levels=4, num_layers=2)
    for level in range(4):
        one_hot = F.one_hot(torch.full((3, 2), level), 4).float()
        mixed = prefix.mix(levels, one_hot)
        for layer in range(2):
            torch.testing.assert_close(mixed[:, layer], levels[:, level])
    # ... and a gate driven to one-hot by its parameters does the same inside forward
    with torch.no_grad():
        prefix.gate.weight.zero_()
        prefix.gate.bias.copy_(torch.tensor([0., 0., 50., 0., 50., 0., 0., 0.]))  # layer 0 -> 2, layer 1 -> 0
    pairs = prefix(levels)
    assert prefix._gates[:, 0].argmax(-1).tolist() == [2, 2, 2]
    d = 8
    for layer, level in ((0, 2), (1, 0)):
        W = prefix.key_value.weight[layer * 2 * d:(layer + 1) * 2 * d]
        b = prefix.key_value.bias[layer * 2 * d:(layer + 1) * 2 * d]
        expected = levels[:, level] @ W.t() + b
        torch.testing.assert_close(pairs[layer][0], expected[..., :d])
        torch.testing.assert_close(pairs[layer][1], expected[..., d:])


def test_forward_projects_each_layer_with_its_own_weights(levels):
    prefix = VisualCluePrefix(8, levels=4, num_layers=3)
    extra = torch.randn(3, 2, 8)
    pairs = prefix(levels, extra)
    assert len(pairs) == 3 and all(k.shape == v.shape == (3, 5 + 2, 8) for k, v in pairs)
    gates = prefix.gates(levels)
    for layer, (key, value) in enumerate(pairs):
        sequence = torch.cat([prefix.mix(levels, gates)[:, layer], extra], dim=1)  # Eq. 10
        W = prefix.key_value.weight[layer * 16:(layer + 1) * 16]
        b = prefix.key_value.bias[layer * 16:(layer + 1) * 16]
        projected = sequence @ W.t() + b                                         # Eq. 12
        torch.testing.assert_close(key, projected[..., :8])
        torch.testing.assert_close(value, projected[..., 8:])
    torch.testing.assert_close(prefix._gates, gates.detach())


def test_errors_and_repr(levels):
    prefix = VisualCluePrefix(8, levels=4, num_layers=2)
    with pytest.raises(ValueError, match=r'levels of shape \[N, 4, S, 8\], got \(3, 3, 5, 8\)'):
        prefix(levels[:, :3])
    with pytest.raises(ValueError, match=r'extra tokens of shape \[3, K, 8\], got \(2, 1, 8\)'):
        prefix(levels, torch.randn(2, 1, 8))
    with pytest.raises(ValueError, match=r"'num_layers' must be positive \(got 0\)"):
        VisualCluePrefix(8, 4, 0)
    assert repr(prefix) == 'VisualCluePrefix(8, levels=4, num_layers=2)'


def test_without_levels_the_extra_tokens_alone_are_projected_per_layer():
    torch.manual_seed(0)
    prefix = VisualCluePrefix(8, levels=4, num_layers=2)
    extra = torch.randn(3, 5, 8)
    pairs = prefix(None, extra)
    weight, bias = prefix.key_value.weight.view(2, 16, 8), prefix.key_value.bias.view(2, 16)
    for layer, (key, value) in enumerate(pairs):
        expected = extra @ weight[layer].T + bias[layer]
        assert torch.allclose(torch.cat([key, value], -1), expected, atol=1e-6)
    assert prefix._gates is None
    with pytest.raises(ValueError, match=r'without levels needs extra tokens of shape \[N, K, 8\], got None'):
        prefix(None)
