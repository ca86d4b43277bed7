r"""GMF's visual clue guidance prefix: He et al., "Visual Clue Guidance and
Consistency Matching Framework for Multimodal Named Entity Recognition"
(Appl. Sci. 2024), Eqs. 7-12 — a dynamic gate per encoder layer over the
levels of a visual pyramid, and a per-layer projection of the gated sequence to
prefix keys and values (HVPNeT's hierarchical visual prefix, Chen et al.,
NAACL-Findings 2022, has the same shape).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class VisualCluePrefix(nn.Module):
    r"""Per-layer prefix keys and values from a visual pyramid (Eqs. 7-12 of
    He et al., Appl. Sci. 2024).

    The levels :math:`\mathbf{V}_1 .. \mathbf{V}_D` (already projected to the
    encoder width :math:`d`, each :math:`S` cells) are mixed per encoder
    layer :math:`l` by a dynamic gate

    .. math::
        \boldsymbol{\gamma}^{(l)} = \mathrm{LeakyReLU}\Big(\mathbf{W}_p^{(l)}
        \frac{1}{D}\sum_{i=1}^{D} \mathrm{GAP}(\mathbf{V}_i)\Big), \qquad
        \mathbf{g}^{(l)} = \mathrm{softmax}(\boldsymbol{\gamma}^{(l)})
        \qquad \text{(Eqs. 7-8)}

    .. math::
        \mathbf{V}_\mathrm{gated}^{(l)} = \sum_{i=1}^{D} g_i^{(l)} \mathbf{V}_i
        \qquad \text{(Eq. 9)}

    then extra tokens (GMF's objects, Eq. 10) are appended and the sequence is
    projected to the layer's prefix keys and values

    .. math::
        [\boldsymbol{\phi}_k^l ; \boldsymbol{\phi}_v^l] =
        \tilde{\mathbf{V}}_\mathrm{gated}^{(l)} \mathbf{W}_l^{\phi}, \qquad
        \mathbf{W}_l^{\phi} \in \mathbb{R}^{d \times 2d} \qquad \text{(Eq. 12)}

    which the text encoder prepends to its self-attention keys and values
    (Eq. 13, :class:`~graphmner.nn.encoder.TextEncoder` ``layer_prefix``).

    After each forward, :attr:`_gates` holds the gate values ``[N, L, D]``
    (detached) for inspection.

    Args:
        channels (int): :math:`d`, the encoder width (of levels and extra tokens).
        levels (int): :math:`D`, the number of pyramid levels.
        num_layers (int): :math:`L`, the encoder layers that receive a prefix.
        negative_slope (float, optional): of the LeakyReLU in Eq. 7.
            (default: :obj:`0.01`)

    Shapes:
        - **input:** levels :math:`(N, D, S, d)`, or :obj:`None` (no pyramid:
          the extra tokens alone, ungated, :math:`S = 0`); extra tokens
          :math:`(N, K, d)` or :obj:`None`
        - **output:** :math:`L` pairs (key, value), each :math:`(N, S + K, d)`
    """

    def __init__(self, channels: int, levels: int, num_layers: int, negative_slope: float = 0.01):
        super().__init__()
        for name, value in (('channels', channels), ('levels', levels), ('num_layers', num_layers)):
            if value <= 0:
                raise ValueError(f"'{name}' must be positive (got {value})")
        self.channels, self.levels, self.num_layers = channels, levels, num_layers
        self.negative_slope = negative_slope
        # W_p^(l) of every layer in one matrix: row block l is layer l's gate logits.
        self.gate = nn.Linear(channels, num_layers * levels)
        # W_l^phi of every layer in one matrix: [key ; value] per layer.
        self.key_value = nn.Linear(channels, num_layers * 2 * channels)
        self._gates: Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self):
        self.gate.reset_parameters()
        self.key_value.reset_parameters()

    def gates(self, levels: Tensor) -> Tensor:
        r""":math:`\mathbf{g}^{(l)}` of every layer (Eqs. 7-8): ``[N, L, D]``, rows sum to one."""
        pooled = levels.mean(dim=(1, 2))                                 # mean_i GAP(V_i): [N, d]
        logits = F.leaky_relu(self.gate(pooled), self.negative_slope)    # gamma: [N, L * D]
        return logits.view(-1, self.num_layers, self.levels).softmax(-1)  # [N, L, D]

    @staticmethod
    def mix(levels: Tensor, gates: Tensor) -> Tensor:
        r""":math:`\mathbf{V}_\mathrm{gated}^{(l)}` (Eq. 9): levels ``[N, D, S, d]``
        and gates ``[N, L, D]`` to ``[N, L, S, d]``."""
        return torch.einsum('nld,ndsc->nlsc', gates, levels)

    def forward(self, levels: Tensor | None, extra: Tensor | None = None) -> list[tuple[Tensor, Tensor]]:
        if levels is None:  # no pyramid (no tweet with an image): the extra tokens alone, no gate
            if extra is None or extra.dim() != 3 or extra.shape[-1] != self.channels:
                got = None if extra is None else tuple(extra.shape)
                raise ValueError(f'{type(self).__name__} without levels needs extra tokens of shape '
                                 f'[N, K, {self.channels}], got {got}')
            self._gates = None
            return self._project(extra.unsqueeze(1).expand(-1, self.num_layers, -1, -1))
        if levels.dim() != 4 or levels.shape[1] != self.levels or levels.shape[-1] != self.channels:
            raise ValueError(f'{type(self).__name__} expects levels of shape [N, {self.levels}, S, '
                             f'{self.channels}], got {tuple(levels.shape)}')
        gates = self.gates(levels)
        self._gates = gates.detach()
        tokens = self.mix(levels, gates)                                  # [N, L, S, d]
        if extra is not None:
            if extra.dim() != 3 or extra.shape[0] != levels.shape[0] or extra.shape[-1] != self.channels:
                raise ValueError(f'{type(self).__name__} expects extra tokens of shape '
                                 f'[{levels.shape[0]}, K, {self.channels}], got {tuple(extra.shape)}')
            # Eq. 10: the same extra tokens follow the gated sequence in every layer.
            extra = extra.unsqueeze(1).expand(-1, self.num_layers, -1, -1)
            tokens = torch.cat([tokens, extra], dim=2)                    # [N, L, S + K, d]
        return self._project(tokens)

    def _project(self, tokens: Tensor) -> list[tuple[Tensor, Tensor]]:
        N, L, P, d = tokens.shape
        # Eq. 12: layer l's W_l^phi on layer l's sequence only.
        weight = self.key_value.weight.view(L, 2 * d, d)
        bias = self.key_value.bias.view(L, 2 * d)
        projected = torch.einsum('nlpc,lkc->nlpk', tokens, weight) + bias[None, :, None]  # [N, L, P, 2d]
        keys, values = projected.split(d, dim=-1)
        return [(keys[:, layer], values[:, layer]) for layer in range(L)]

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.channels}, levels={self.levels}, '
                f'num_layers={self.num_layers})')
