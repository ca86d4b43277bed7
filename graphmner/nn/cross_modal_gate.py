r"""UMGF's cross-modal gate (Zhang et al., AAAI 2021, "Multi-modal Graph Fusion
for Named Entity Recognition with Targeted Visual Guidance", Eqs. 3-6) as a
PyG :class:`~torch_geometric.nn.MessagePassing` layer over a bipartite relation
such as ``('object', 'grounds', 'word')`` or its reverse.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import Adj

from .templates import drop_generated_sources


class CrossModalGate(MessagePassing):
    r"""The cross-modal gate of UMGF (Eqs. 3-6 of Zhang et al., AAAI 2021).

    For every edge :math:`j \rightarrow i` (neighbour :math:`j` of the other
    modality, target :math:`i`) an element-wise gate

    .. math::
        \mathbf{b}_{ij} = \sigma\left(\mathbf{W}_1 \mathbf{c}_i + \mathbf{W}_2 \mathbf{c}_j\right)
        \qquad \text{(Eqs. 4 and 6)}

    scales the neighbour's state, and the messages are summed (no normalisation):

    .. math::
        \mathbf{m}_i = \sum_{j \in \mathcal{N}(i)} \mathbf{b}_{ij} \odot \mathbf{c}_j
        \qquad \text{(the sum of Eqs. 3 and 5)}

    The layer returns :math:`\mathbf{m}_i`; the residual :math:`\mathbf{c}_i +
    \mathbf{m}_i` (and the layer norm the paper omits "for simplicity") is the
    caller's. A target without neighbours gets a zero vector.

    After each forward, :attr:`_alpha` holds the mean gate value per edge
    (``[E]``, detached, in the order of :attr:`_edge_index`) so edges can be
    coloured by it; the full gate is passed to :meth:`propagate` as ``alpha`` so
    :class:`~torch_geometric.explain.algorithm.AttentionExplainer` can read it.

    Args:
        channels (int): width :math:`d` of both modalities' states.
        gated (bool, optional): if :obj:`False`, messages are the plain
            neighbour states (no gate; the ablation). (default: :obj:`True`)
        bias (bool, optional): learn an additive bias in the gate (the official
            code's ``Linear`` over the concatenation has one). (default: :obj:`True`)

    Shapes:
        - **input:** node states :math:`((|\mathcal{V}_s|, d), (|\mathcal{V}_t|, d))`
          (or one :math:`(|\mathcal{V}|, d)` tensor for both), edge indices
          :math:`(2, |\mathcal{E}|)` with row 0 = source (neighbour), row 1 = target
        - **output:** :math:`(|\mathcal{V}_t|, d)`
    """

    def __init__(self, channels: int, gated: bool = True, bias: bool = True):
        super().__init__(aggr='sum', node_dim=0)
        if channels <= 0:
            raise ValueError(f"'channels' must be positive, got {channels}")
        self.channels = channels
        self.gated = gated
        if gated:
            self.lin_dst = nn.Linear(channels, channels, bias=bias)   # W_1, on the target c_i
            self.lin_src = nn.Linear(channels, channels, bias=False)  # W_2, on the neighbour c_j
        else:
            self.register_module('lin_dst', None)
            self.register_module('lin_src', None)
        self._alpha: Tensor | None = None
        self._edge_index: Tensor | None = None
        self.reset_parameters()
        drop_generated_sources(self)

    def reset_parameters(self):
        super().reset_parameters()
        if self.gated:
            nn.init.xavier_uniform_(self.lin_dst.weight)
            nn.init.xavier_uniform_(self.lin_src.weight)
            if self.lin_dst.bias is not None:
                nn.init.zeros_(self.lin_dst.bias)

    def forward(self, x: Tensor | tuple[Tensor, Tensor], edge_index: Adj) -> Tensor:
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        for name, t in (('source', x_src), ('target', x_dst)):
            if t.dim() != 2 or t.shape[-1] != self.channels:
                raise ValueError(f'{type(self).__name__} expects {name} states of shape '
                                 f'[N, {self.channels}], got {tuple(t.shape)}')
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"'edge_index' must have shape [2, E], got {tuple(edge_index.shape)}")
        src, dst = edge_index
        if src.numel() == 0:
            # Nothing to aggregate (tweets without visual nodes): the sum is zero, and
            # projecting every node for no edge would be most of this layer's cost.
            self._alpha, self._edge_index = x_dst.new_zeros(0), edge_index
            return x_dst.new_zeros(x_dst.shape)
        if self.gated:
            # Eqs. 4 / 6: b_ij = sigmoid(W1 c_i + W2 c_j), one gate value per channel.
            alpha = torch.sigmoid(self.lin_dst(x_dst)[dst] + self.lin_src(x_src)[src])  # [E, d]
        else:
            alpha = x_src.new_ones(src.numel(), 1)
        self._alpha, self._edge_index = alpha.detach().mean(-1), edge_index
        # Eqs. 3 / 5: sum_j b_ij * c_j
        return self.propagate(edge_index, x=(x_src, x_dst), alpha=alpha,
                              size=(x_src.shape[0], x_dst.shape[0]))

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha * x_j

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.channels}, gated={self.gated})'
