r"""Multi-head scaled dot-product attention over a graph's edges (the
Transformer's attention of Vaswani et al. 2017, restricted to each node's
incoming edges): self-attention over a homogeneous relation (UMGF's
intra-modal fusion, Eqs. 1-2) or cross-attention over a bipartite one (MAF's
word <- region interaction over ``('region', 'informs', 'word')``).

Working on edges means no padding and no mask: a node only ever sees the
nodes that have an edge into it (plus itself, with ``add_self_loops``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import Adj
from torch_geometric.utils import add_self_loops as add_loops
from torch_geometric.utils import remove_self_loops, softmax

from .templates import drop_generated_sources


class GraphMultiHeadAttention(MessagePassing):
    r"""Multi-head attention over the edges of a relation: self-attention over a
    homogeneous one such as ``('word', 'intra', 'word')`` (UMGF Eqs. 1-2:
    :math:`\mathbf{C} = \mathrm{MultiHead}(\mathbf{H}, \mathbf{H}, \mathbf{H})`),
    or, given ``(x_src, x_dst)``, cross-attention over a bipartite one
    (queries from the targets, keys and values from the sources).

    .. math::
        \alpha^{h}_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)}
        \left(\frac{(\mathbf{W}^h_Q \mathbf{h}_i)^\top \mathbf{W}^h_K \mathbf{h}_j}{\sqrt{d/H}}\right),
        \qquad
        \mathbf{c}_i = \mathbf{W}_O \big\Vert_{h=1}^{H} \sum_{j \in \mathcal{N}(i)}
        \alpha^h_{ij} \mathbf{W}^h_V \mathbf{h}_j

    With every ordered pair as edges (and self-loops) this is exactly the
    Transformer's self-attention over a tweet, without padding.

    After each forward, :attr:`_alpha` holds the attention weights per edge and
    head (``[E, heads]``, detached, self-loops included, in the order of
    :attr:`_edge_index`); they are passed to :meth:`propagate` as ``alpha`` so
    :class:`~torch_geometric.explain.algorithm.AttentionExplainer` can read them.

    Args:
        channels (int): node state width :math:`d`.
        heads (int, optional): number of heads :math:`H`; must divide ``channels``.
            (default: :obj:`8`)
        dropout (float, optional): dropout on the attention weights. (default: :obj:`0.0`)
        add_self_loops (bool, optional): let every node attend to itself, as the
            Transformer does. (default: :obj:`True`)
        project_value (bool, optional): if :obj:`False`, values are the raw states and
            there is no output projection (the official UMGF code's visual attention).
            (default: :obj:`True`)

    Shapes:
        - **input:** node states :math:`(|\mathcal{V}|, d)` or a bipartite pair
          :math:`((|\mathcal{V}_s|, d), (|\mathcal{V}_t|, d))`, edge indices
          :math:`(2, |\mathcal{E}|)` (row 0 = source, row 1 = target), optionally
          ``batch`` :math:`(|\mathcal{V}|,)` or, bipartite,
          :math:`((|\mathcal{V}_s|,), (|\mathcal{V}_t|,))` (the dense path)
        - **output:** :math:`(|\mathcal{V}_t|, d)`, and with
          ``return_attention_weights=True`` also ``(edge_index, alpha)`` with
          alpha :math:`(|\mathcal{E}|, H)` (self-loops included where added)
    """

    def __init__(self, channels: int, heads: int = 8, dropout: float = 0.0,
                 add_self_loops: bool = True, project_value: bool = True):
        super().__init__(aggr='sum', node_dim=0)
        if channels <= 0 or heads <= 0 or channels % heads:
            raise ValueError(f"'heads' must divide 'channels', got channels={channels}, heads={heads}")
        self.channels = channels
        self.heads = heads
        self.dropout = dropout
        self.add_self_loops = add_self_loops
        self.project_value = project_value
        self.lin_query = nn.Linear(channels, channels)
        self.lin_key = nn.Linear(channels, channels)
        if project_value:
            self.lin_value = nn.Linear(channels, channels)
            self.lin_out = nn.Linear(channels, channels)
        else:
            self.register_module('lin_value', None)
            self.register_module('lin_out', None)
        self._alpha: Tensor | None = None
        self._edge_index: Tensor | None = None
        self.reset_parameters()
        drop_generated_sources(self)

    def reset_parameters(self):
        super().reset_parameters()
        for lin in (self.lin_query, self.lin_key, self.lin_value, self.lin_out):
            if lin is not None:
                nn.init.xavier_uniform_(lin.weight)
                nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor | tuple[Tensor, Tensor], edge_index: Adj,
                batch: Tensor | tuple[Tensor, Tensor] | None = None,
                return_attention_weights: bool = False
                ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """With ``batch`` (each node's graph id; for a bipartite input one vector
        per side, ``(batch_src, batch_dst)``), the same attention is computed
        densely per graph, masked to the given edges, which must stay within a
        graph: equal values (a target without incoming edges reads zeros before
        ``lin_out``, as over the edges), far less memory traffic when the relation is
        dense within each graph (UMGF's ``intra`` edges, MAF's word <- region
        edges); but :meth:`propagate` is not called, so explainer hooks see
        nothing (:attr:`_alpha` is kept all the same). The nodes need not be
        grouped by graph. A bipartite input never gets self-loops."""
        bipartite = not isinstance(x, Tensor)
        x_src, x_dst = x if bipartite else (x, x)
        for name, t in (('source', x_src), ('target', x_dst)):
            if t.dim() != 2 or t.shape[-1] != self.channels:
                raise ValueError(f'{type(self).__name__} expects {name} states of shape '
                                 f'[N, {self.channels}], got {tuple(t.shape)}')
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"'edge_index' must have shape [2, E], got {tuple(edge_index.shape)}")
        N_src, N_dst, H, D = x_src.shape[0], x_dst.shape[0], self.heads, self.channels // self.heads
        if self.add_self_loops and not bipartite:
            edge_index, _ = remove_self_loops(edge_index)
            edge_index, _ = add_loops(edge_index, num_nodes=N_dst)
        if batch is not None:
            if bipartite == isinstance(batch, Tensor):
                raise ValueError("'batch' must be (batch_src, batch_dst) for a bipartite input and one "
                                 'vector for a homogeneous one')
            batch_src, batch_dst = batch if bipartite else (batch, batch)
            if batch_src.shape != (N_src, ) or batch_dst.shape != (N_dst, ):
                raise ValueError(f"'batch' must give one graph id per node ({N_src} sources, {N_dst} "
                                 f'targets), got {tuple(batch_src.shape)} and {tuple(batch_dst.shape)}')
            out = self._dense(x_src, x_dst, edge_index, batch_src, batch_dst)
        else:
            src, dst = edge_index
            q = self.lin_query(x_dst).view(N_dst, H, D)
            k = self.lin_key(x_src).view(N_src, H, D)
            v = (self.lin_value(x_src) if self.project_value else x_src).view(N_src, H, D)
            score = (q[dst] * k[src]).sum(-1) / math.sqrt(D)                # [E, H]
            alpha = softmax(score, dst, num_nodes=N_dst)                    # over each target's in-edges
            self._alpha, self._edge_index = alpha.detach(), edge_index
            alpha = F.dropout(alpha, p=self.dropout, training=self.training)
            out = self.propagate(edge_index, v=v, alpha=alpha, size=(N_src, N_dst)).view(N_dst, H * D)
            out = self.lin_out(out) if self.project_value else out
        if return_attention_weights:
            return out, (self._edge_index, self._alpha)
        return out

    def _dense(self, x_src: Tensor, x_dst: Tensor, edge_index: Tensor, batch_src: Tensor,
               batch_dst: Tensor) -> Tensor:
        H, D = self.heads, self.channels // self.heads
        src, dst = edge_index
        graph = batch_dst[dst]
        if bool((batch_src[src] != graph).any()):
            raise ValueError("'batch': an edge joins two graphs; the dense path reads each graph's own edges")
        B = int(torch.cat([batch_src, batch_dst]).max()) + 1 if len(batch_src) + len(batch_dst) else 0
        slot_src, S = _slots(batch_src, B)
        slot_dst, T = (slot_src, S) if batch_dst is batch_src else _slots(batch_dst, B)

        def heads(t: Tensor, batch: Tensor, slot: Tensor, size: int) -> Tensor:  # [N, d] -> [B, H, size, D]
            return t.new_zeros(B, size, H, D).index_put((batch, slot), t.view(-1, H, D)).transpose(1, 2)

        q = heads(self.lin_query(x_dst), batch_dst, slot_dst, T)
        k = heads(self.lin_key(x_src), batch_src, slot_src, S)
        v = heads(self.lin_value(x_src) if self.project_value else x_src, batch_src, slot_src, S)
        # allowed[b, i, j]: target i of graph b may read its source j (an edge j -> i).
        allowed = torch.zeros(B, T, S, dtype=torch.bool, device=x_dst.device)
        allowed[graph, slot_dst[dst], slot_src[src]] = True
        # Targets without incoming edges (padding too) read nothing: weights 0, as over the edges
        # (unmasked before the softmax only so that it gives no NaN).
        empty = ~allowed.any(-1, keepdim=True).unsqueeze(1)              # [B, 1, T, 1]
        score = q @ k.transpose(-1, -2) / math.sqrt(D)                  # [B, H, T, S]
        alpha = score.masked_fill(~(allowed.unsqueeze(1) | empty), float('-inf')).softmax(-1)
        alpha = alpha.masked_fill(empty, 0.0)
        # Per-edge weights for inspection, in the sparse path's edge order (self-loops added).
        self._alpha = alpha.detach()[graph, :, slot_dst[dst], slot_src[src]]  # [E, H]
        self._edge_index = edge_index
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        out = (alpha @ v).transpose(1, 2).reshape(B, T, H * D)[batch_dst, slot_dst]  # [N_dst, d]
        return self.lin_out(out) if self.project_value else out

    def message(self, v_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * v_j

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.channels}, heads={self.heads}, '
                f'project_value={self.project_value})')


def _slots(batch: Tensor, num_graphs: int) -> tuple[Tensor, int]:
    """Each node's position among its graph's nodes (in node order, whatever
    order the graphs come in), and the largest graph's node count."""
    counts = torch.bincount(batch, minlength=num_graphs)
    order = batch.argsort(stable=True)
    first = counts.cumsum(0) - counts                                   # where each graph starts in order
    slot = torch.empty_like(batch)
    slot[order] = torch.arange(len(batch), device=batch.device) - first[batch[order]]
    return slot, int(counts.max()) if len(counts) else 0
