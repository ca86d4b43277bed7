"""GraphMultiHeadAttention: self-attention over a relation's edges (UMGF Eqs. 1-2)
and cross-attention over a bipartite relation (MAF's word <- region)."""
import pytest
import torch

from graphmner.graph.builder import all_pairs, complete_bipartite
from graphmner.nn.graph_attention import GraphMultiHeadAttention


def copy_into(reference: torch.nn.MultiheadAttention, layer: GraphMultiHeadAttention) -> None:
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.cat([layer.lin_query.weight, layer.lin_key.weight,
                                                  layer.lin_value.weight]))
        reference.in_proj_bias.copy_(torch.cat([layer.lin_query.bias, layer.lin_key.bias,
                                                layer.lin_value.bias]))
        reference.out_proj.weight.copy_(layer.lin_out.weight)
        reference.out_proj.bias.copy_(layer.lin_out.bias)


def test_graph_attention_equals_transformer_attention():
    torch.manual_seed(0)
    x = torch.randn(5, 8)
    layer = GraphMultiHeadAttention(8, heads=2).eval()
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    copy_into(ref, layer)
    expected, weights = ref(x[None], x[None], x[None], average_attn_weights=False)
    torch.testing.assert_close(layer(x, all_pairs(5)), expected[0])
    # _alpha per (edge, head) matches the dense attention matrix
    src, dst = layer._edge_index
    torch.testing.assert_close(layer._alpha, weights[0][:, dst, src].t())
    torch.testing.assert_close(layer._alpha.sum(0), torch.full((2, ), 5.0))


def test_graph_attention_keeps_graphs_apart():
    torch.manual_seed(0)
    layer = GraphMultiHeadAttention(8, heads=2).eval()
    a, b = torch.randn(3, 8), torch.randn(4, 8)
    both = layer(torch.cat([a, b]), torch.cat([all_pairs(3), all_pairs(4) + 3], dim=1))
    torch.testing.assert_close(both[:3], layer(a, all_pairs(3)))


def test_attention_without_value_projection_and_errors():
    layer = GraphMultiHeadAttention(8, heads=2, project_value=False)
    assert layer.lin_value is None and layer.lin_out is None
    x = torch.randn(1, 8)
    torch.testing.assert_close(layer(x, torch.zeros(2, 0, dtype=torch.long)), x)  # self only
    with pytest.raises(ValueError, match='heads.*got channels=8, heads=3'):
        GraphMultiHeadAttention(8, heads=3)
    with pytest.raises(ValueError, match=r'\[N, 8\], got \(2, 4\)'):
        layer(torch.randn(2, 4), all_pairs(2))


@pytest.mark.parametrize('project_value', [True, False])
def test_dense_attention_equals_the_sparse_message_passing(project_value):
    """Two graphs, one with a missing edge: the dense path reads the same edges."""
    torch.manual_seed(0)
    layer = GraphMultiHeadAttention(8, heads=2, project_value=project_value).eval()
    x = torch.randn(7, 8)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    edge_index = torch.cat([all_pairs(3)[:, 1:], all_pairs(4) + 3], dim=1)  # drops edge 0 -> 1
    sparse = layer(x, edge_index)
    sparse_alpha = layer._alpha.clone()
    dense = layer(x, edge_index, batch=batch)
    torch.testing.assert_close(dense, sparse)
    torch.testing.assert_close(layer._alpha, sparse_alpha)
    assert not torch.allclose(layer(x, all_pairs(7), batch=torch.zeros(7, dtype=torch.long))[:3], dense[:3])


def test_bipartite_attention_equals_dense_masked_cross_attention():
    """Two tweets (3 and 2 words) reading their own 4 and 3 regions: the same as a
    dense multi-head attention with the other tweet's regions masked out."""
    torch.manual_seed(0)
    layer = GraphMultiHeadAttention(8, heads=2).eval()
    words, regions = torch.randn(5, 8), torch.randn(7, 8)
    word_batch, region_batch = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 0, 0, 0, 1, 1, 1])
    edge_index = torch.cat([complete_bipartite(4, 3), complete_bipartite(3, 2) + torch.tensor([[4], [3]])],
                           dim=1)  # region -> word
    out, (edges, alpha) = layer((regions, words), edge_index, return_attention_weights=True)
    assert torch.equal(edges, edge_index)  # no self-loops on a bipartite relation
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    copy_into(ref, layer)
    blocked = word_batch[:, None] != region_batch[None, :]  # [5, 7] True = may not attend
    expected, weights = ref(words[None], regions[None], regions[None], attn_mask=blocked,
                            average_attn_weights=False)
    torch.testing.assert_close(out, expected[0])
    torch.testing.assert_close(alpha, weights[0][:, edge_index[1], edge_index[0]].t())
    torch.testing.assert_close(alpha.sum(0), torch.full((2, ), 5.0))  # softmax per word and head


def test_bipartite_input_errors():
    layer = GraphMultiHeadAttention(8, heads=2)
    words, regions = torch.randn(2, 8), torch.randn(3, 8)
    with pytest.raises(ValueError, match=r'source states of shape \[N, 8\], got \(3, 4\)'):
        layer((torch.randn(3, 4), words), complete_bipartite(3, 2))
    with pytest.raises(ValueError, match="'batch' .* homogeneous"):
        layer((regions, words), complete_bipartite(3, 2), batch=torch.zeros(2, dtype=torch.long))
