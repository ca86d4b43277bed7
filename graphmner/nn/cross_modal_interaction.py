r"""MAF's cross-modal interaction module (Xu et al., WSDM 2022, "MAF: A
General Matching and Alignment Framework for Multimodal Named Entity
Recognition", § Cross-Modal Interaction Module): one Transformer
cross-attention layer in which words query image regions, over a bipartite
relation such as ``('region', 'informs', 'word')``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.typing import Adj

from .graph_attention import GraphMultiHeadAttention


class CrossModalInteraction(nn.Module):
    r"""Words attend to the regions of their image (MAF, WSDM 2022), a
    post-LN Transformer cross-attention layer over the edges of a bipartite
    relation:

    .. math::
        \mathbf{a}^h_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)}
        \left(\frac{(\mathbf{W}^h_q \mathbf{t}_i)^\top \mathbf{W}^h_k \mathbf{v}_j}{\sqrt{d/m}}\right),
        \qquad
        \mathbf{cv}_i = \mathbf{W}' \big\Vert_{h=1}^{m} \sum_{j \in \mathcal{N}(i)}
        \mathbf{a}^h_{ij} \mathbf{W}^h_v \mathbf{v}_j

    .. math::
        \mathbf{V}' = \mathrm{LN}(\mathbf{T} + \mathrm{Dropout}(\mathbf{CV})), \qquad
        \mathbf{C} = \mathrm{LN}(\mathbf{V}' + \mathrm{Dropout}(\mathrm{FFN}(\mathbf{V}')))

    with :math:`\mathrm{FFN}(\mathbf{x}) = \mathbf{W}_2 \mathrm{GELU}(\mathbf{W}_1 \mathbf{x})`
    (the official code's ``BertCrossAttentionLayer``: values from the regions,
    softmax over each word's incoming edges). A word without an incoming edge (a
    tweet without a usable image) has no visual evidence to carry: its output
    is :math:`\mathbf{C} = \mathbf{0}`, and a batch without any edge costs
    nothing.

    Args:
        channels (int): width :math:`d` of word and region states (project the
            regions to it first).
        heads (int): attention heads :math:`m`; must divide ``channels``.
        ffn (int): hidden width of the FFN (BERT's intermediate size, 4d).
        dropout (float, optional): dropout on the attention and FFN outputs.
            (default: :obj:`0.1`)
        attention_dropout (float, optional): dropout on the attention weights.
            (default: :obj:`0.1`)

    Shapes:
        - **input:** ``x = (regions, words)`` :math:`((|\mathcal{V}_s|, d), (|\mathcal{V}_t|, d))`,
          edge indices :math:`(2, |\mathcal{E}|)` with row 0 = region, row 1 = word, optionally
          ``batch`` :math:`((|\mathcal{V}_s|,), (|\mathcal{V}_t|,))`
        - **output:** :math:`(|\mathcal{V}_t|, d)`
    """

    def __init__(self, channels: int, heads: int, ffn: int, dropout: float = 0.1,
                 attention_dropout: float = 0.1):
        super().__init__()
        if ffn <= 0:
            raise ValueError(f"'ffn' must be positive, got {ffn}")
        self.channels = channels
        self.attention = GraphMultiHeadAttention(channels, heads, attention_dropout)
        self.attention_norm = nn.LayerNorm(channels)
        self.ffn = nn.Sequential(nn.Linear(channels, ffn), nn.GELU(), nn.Linear(ffn, channels))
        self.ffn_norm = nn.LayerNorm(channels)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self):
        self.attention.reset_parameters()
        for module in (self.attention_norm, self.ffn[0], self.ffn[2], self.ffn_norm):
            module.reset_parameters()

    def forward(self, x: tuple[Tensor, Tensor], edge_index: Adj,
                batch: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """With ``batch = (batch_src, batch_dst)`` (each region's and each word's
        tweet), the attention runs densely per tweet, masked to the edges (same
        values, see :class:`~graphmner.nn.graph_attention.GraphMultiHeadAttention`)."""
        if not isinstance(x, tuple) or len(x) != 2:
            raise TypeError(f'{type(self).__name__} reads a bipartite relation: pass '
                            f'x=(source states, target states), got {type(x).__name__}')
        x_src, x_dst = x
        if x_dst.dim() != 2 or x_dst.shape[-1] != self.channels:
            raise ValueError(f'{type(self).__name__} expects target states of shape '
                             f'[N, {self.channels}], got {tuple(x_dst.shape)}')
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"'edge_index' must have shape [2, E], got {tuple(edge_index.shape)}")
        if edge_index.shape[1] == 0:
            return x_dst.new_zeros(x_dst.shape)
        cv = self.attention((x_src, x_dst), edge_index, batch=batch)        # CV [N_t, d]
        v = self.attention_norm(x_dst + self.dropout(cv))                    # V'
        c = self.ffn_norm(v + self.dropout(self.ffn(v)))                     # C
        receives = torch.zeros(x_dst.shape[0], dtype=torch.bool, device=x_dst.device)
        receives[edge_index[1]] = True
        return c * receives.unsqueeze(-1).to(c.dtype)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.channels}, heads={self.attention.heads}, '
                f'ffn={self.ffn[0].out_features})')
