"""MAF's cross-modal interaction: word <- region attention over the edges of
a bipartite relation, then residual + LayerNorm and the FFN."""
import pytest
import torch
import torch.nn.functional as F

from graphmner.graph.builder import complete_bipartite
from graphmner.nn.cross_modal_interaction import CrossModalInteraction

D, HEADS = 8, 2


@pytest.fixture
def tweets():
    """Three tweets: 3 words / 4 regions, 5 words / 2 regions, 2 words / no image."""
    torch.manual_seed(0)
    words, regions = [3, 5, 2], [4, 2, 0]
    x_word, x_region = torch.randn(sum(words), D), torch.randn(sum(regions), D)
    edges, w0, r0 = [], 0, 0
    for n, m in zip(words, regions):
        edges.append(complete_bipartite(m, n) + torch.tensor([[r0], [w0]]))
        w0, r0 = w0 + n, r0 + m
    return words, regions, x_word, x_region, torch.cat(edges, dim=1)


def dense_reference(layer, words, regions, x_word, x_region):
    """The same layer written with torch's own masked multi-head attention over
    padded [B, T, d] words and [B, R, d] regions (tweets with regions only)."""
    attention = layer.attention
    mha = torch.nn.MultiheadAttention(D, HEADS, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([attention.lin_query.weight, attention.lin_key.weight,
                                            attention.lin_value.weight]))
        mha.in_proj_bias.copy_(torch.cat([attention.lin_query.bias, attention.lin_key.bias,
                                          attention.lin_value.bias]))
        mha.out_proj.weight.copy_(attention.lin_out.weight)
        mha.out_proj.bias.copy_(attention.lin_out.bias)
    B, T, R = len(words), max(words), max(regions)
    t, v = torch.zeros(B, T, D), torch.zeros(B, R, D)
    key_padding = torch.ones(B, R, dtype=torch.bool)
    for b, (w_rows, r_rows) in enumerate(zip(x_word.split(words), x_region.split(regions))):
        t[b, :len(w_rows)], v[b, :len(r_rows)] = w_rows, r_rows
        key_padding[b, :len(r_rows)] = False
    cv, _ = mha(t, v, v, key_padding_mask=key_padding)
    v_prime = F.layer_norm(t + cv, (D, ), layer.attention_norm.weight, layer.attention_norm.bias)
    ffn = layer.ffn[2](F.gelu(layer.ffn[0](v_prime)))
    return F.layer_norm(v_prime + ffn, (D, ), layer.ffn_norm.weight, layer.ffn_norm.bias)


def test_equals_dense_masked_multi_head_attention(tweets):
    words, regions, x_word, x_region, edges = tweets
    layer = CrossModalInteraction(D, HEADS, ffn=16).eval()
    out = layer((x_region, x_word), edges)
    expected = dense_reference(layer, words, regions, x_word, x_region)
    torch.testing.assert_close(out[:3], expected[0, :3])
    torch.testing.assert_close(out[3:8], expected[1, :5])


def test_words_without_regions_carry_zero(tweets):
    words, regions, x_word, x_region, edges = tweets
    layer = CrossModalInteraction(D, HEADS, ffn=16).eval()
    out = layer((x_region, x_word), edges)
    assert torch.equal(out[8:], torch.zeros(2, D))
    assert out[:8].abs().sum(-1).gt(0).all()


def test_a_batch_without_edges_gives_zeros(tweets):
    _, _, x_word, _, _ = tweets
    layer = CrossModalInteraction(D, HEADS, ffn=16)
    out = layer((torch.zeros(0, D), x_word), torch.zeros(2, 0, dtype=torch.long))
    assert torch.equal(out, torch.zeros_like(x_word))


def test_explains_bad_inputs(tweets):
    _, _, x_word, x_region, edges = tweets
    layer = CrossModalInteraction(D, HEADS, ffn=16)
    with pytest.raises(TypeError, match='bipartite.*x=\\(source states, target states\\)'):
        layer(x_word, edges)
    with pytest.raises(ValueError, match=r'\[N, 8\], got \(10, 4\)'):
        layer((x_region, x_word[:, :4]), edges)
    with pytest.raises(ValueError, match="'ffn' must be positive, got 0"):
        CrossModalInteraction(D, HEADS, ffn=0)
