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
    with pytest.raises(ValueError, match=r"'batch' must be \(batch_src, batch_dst\) for a bipartite"):
        layer((regions, words), complete_bipartite(3, 2), batch=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r'one graph id per node \(3 sources, 2 targets\), got \(2,\)'):
        layer((regions, words), complete_bipartite(3, 2), batch=(torch.zeros(2, dtype=torch.long), ) * 2)
    with pytest.raises(ValueError, match='an edge joins two graphs'):
        layer((regions, words), complete_bipartite(3, 2),
              batch=(torch.tensor([0, 0, 1]), torch.tensor([0, 0])))


def random_bipartite(seed):
    """Five graphs: partial random edges, a graph without sources, one without
    targets, one without nodes; the sources are two node types concatenated
    (as MAF's regions and aux words), so they are not grouped by graph, and
    some targets of the first graph get no edge."""
    generator = torch.Generator().manual_seed(seed)
    sources_a, sources_b, targets = [4, 0, 3, 0, 6], [2, 0, 0, 0, 1], [5, 3, 0, 0, 4]
    batch_a, batch_b, batch_dst = (torch.repeat_interleave(torch.arange(5), torch.tensor(n))
                                   for n in (sources_a, sources_b, targets))
    batch_src = torch.cat([batch_a, batch_b])
    pairs = (batch_src[:, None] == batch_dst[None, :]).nonzero().t()        # every in-graph pair
    keep = torch.rand(pairs.shape[1], generator=generator) < 0.6
    keep &= pairs[1] >= 2  # targets 0 and 1 (graph 0) get no edge
    edge_index = pairs[:, keep][:, torch.randperm(int(keep.sum()), generator=generator)]
    x_src = torch.randn(len(batch_src), 8, generator=generator, requires_grad=True)
    x_dst = torch.randn(len(batch_dst), 8, generator=generator, requires_grad=True)
    return x_src, x_dst, edge_index, (batch_src, batch_dst)


@pytest.mark.parametrize('project_value', [True, False])
@pytest.mark.parametrize('seed', [0, 1])
def test_dense_bipartite_attention_equals_the_sparse_message_passing(project_value, seed):
    torch.manual_seed(seed)
    layer = GraphMultiHeadAttention(8, heads=2, dropout=0.5, project_value=project_value).eval()
    x_src, x_dst, edge_index, batch = random_bipartite(seed)
    runs = []
    for dense in (None, batch):
        layer.zero_grad()
        out, (edges, alpha) = layer((x_src, x_dst), edge_index, batch=dense, return_attention_weights=True)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(),
                                    [x_src, x_dst, *layer.parameters()])
        runs.append((out, edges, alpha, grads))
    (sparse, sparse_edges, sparse_alpha, sparse_grads), (dense, dense_edges, dense_alpha, dense_grads) = runs
    torch.testing.assert_close(dense, sparse)
    assert torch.equal(dense_edges, sparse_edges) and torch.equal(dense_edges, edge_index)
    torch.testing.assert_close(dense_alpha, sparse_alpha)
    for dense_grad, sparse_grad in zip(dense_grads, sparse_grads):
        torch.testing.assert_close(dense_grad, sparse_grad)
    # Targets without incoming edges: nothing read, lin_out's bias (zeros without it).
    silent = torch.ones(len(x_dst), dtype=torch.bool)
    silent[edge_index[1]] = False
    assert silent[:2].all() and silent.sum() < len(x_dst)
    nothing = layer.lin_out.bias if project_value else torch.zeros(8)
    torch.testing.assert_close(dense[silent], nothing.expand(int(silent.sum()), 8))
    assert dense[~silent].sub(nothing).abs().sum(-1).gt(0).all()


def test_dense_bipartite_attention_without_any_edge_or_node():
    layer = GraphMultiHeadAttention(8, heads=2).eval()
    none = torch.zeros(0, dtype=torch.long)
    out = layer((torch.zeros(0, 8), torch.randn(3, 8)), torch.zeros(2, 0, dtype=torch.long),
                batch=(none, torch.tensor([0, 1, 1])))
    torch.testing.assert_close(out, layer.lin_out.bias.expand(3, 8))
    assert layer._alpha.shape == (0, 2)
    empty = layer((torch.zeros(0, 8), torch.zeros(0, 8)), torch.zeros(2, 0, dtype=torch.long),
                  batch=(none, none))
    assert empty.shape == (0, 8)
