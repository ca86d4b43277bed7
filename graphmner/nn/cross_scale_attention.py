r"""GMF's cross-scale attention (CSA): He et al., "Visual Clue Guidance and
Consistency Matching Framework for Multimodal Named Entity Recognition"
(Appl. Sci. 2024), Eqs. 1-4, a residual 3D attention over one pyramid level's
feature map in the shape of BAM (Park et al., "BAM: Bottleneck Attention
Module", BMVC 2018).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _batch_norm(norm: nn.modules.batchnorm._BatchNorm, x: Tensor) -> Tensor:
    """``norm(x)``, except that a training batch with one value per channel
    (a single image, pooled to one value) is normalised with the running
    statistics: batch norm cannot estimate a variance from one sample."""
    if norm.training and x.numel() // x.shape[1] == 1:
        return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                            training=False, eps=norm.eps)
    return norm(x)


class CrossScaleAttention(nn.Module):
    r"""The cross-scale attention module of GMF (Eqs. 1-4 of He et al., Appl.
    Sci. 2024): a feature map :math:`\mathbf{F}` is refined by a 3D attention
    map built from a channel and a spatial branch,

    .. math::
        \mathbf{F}' = \mathbf{F} + \mathbf{F} \otimes \mathbf{M}(\mathbf{F}),
        \qquad \mathbf{M}(\mathbf{F}) = \sigma\left(\mathbf{M}_c(\mathbf{F})
        + \mathbf{M}_s(\mathbf{F})\right) \qquad \text{(Eqs. 1-2)}

    .. math::
        \mathbf{M}_c(\mathbf{F}) = \mathrm{BN}\left(\mathbf{W}_1(\mathbf{W}_0
        \,\mathrm{AvgPool}(\mathbf{F}) + \mathbf{b}_0) + \mathbf{b}_1\right)
        \qquad \text{(Eq. 3)}

    .. math::
        \mathbf{M}_s(\mathbf{F}) = \mathrm{BN}\left(f_3^{1\times1}(f_2^{3\times3}
        (f_1^{3\times3}(f_0^{1\times1}(\mathbf{F}))))\right) \qquad \text{(Eq. 4)}

    :math:`\mathbf{M}_c \in \mathbb{R}^{C}` and :math:`\mathbf{M}_s \in
    \mathbb{R}^{H \times W}` are broadcast to :math:`C \times H \times W`
    before they are added. The channel MLP has one hidden layer of
    :math:`C / r` units with a ReLU; the spatial branch reduces to
    :math:`C / r` channels, applies two dilated :math:`3 \times 3`
    convolutions and reduces to one channel. The paper writes the spatial
    branch as a bare composition of convolutions; like BAM, each of
    :math:`f_0, f_1, f_2` is followed by batch norm and a ReLU (without a
    non-linearity the four convolutions would collapse into one linear map).

    The paper gives neither :math:`r` nor the dilation; the defaults are
    BAM's (16 and 4). A dilation of 4 reaches a neighbour only on maps wider
    than 4 cells: on a :math:`7 \times 7` map every cell but the centre
    row / column reads a cell 4 away, on a :math:`2 \times 2` map the spatial
    branch sees each cell alone.

    A training batch with a single map normalises its channel attention with
    the running statistics (batch norm cannot estimate a variance from one
    sample); every other batch norm call is the usual one.

    Args:
        channels (int): :math:`C`, the map's channels.
        reduction (int, optional): :math:`r`, the hidden width is
            :math:`\max(1, C / r)`. (default: :obj:`16`)
        dilation (int, optional): dilation of the two :math:`3 \times 3`
            convolutions. (default: :obj:`4`)

    Shapes:
        - **input:** :math:`(N, C, H, W)`
        - **output:** :math:`(N, C, H, W)`
    """

    def __init__(self, channels: int, reduction: int = 16, dilation: int = 4):
        super().__init__()
        if channels <= 0:
            raise ValueError(f"'channels' must be positive (got {channels})")
        if reduction <= 0:
            raise ValueError(f"'reduction' must be positive (got {reduction})")
        if dilation <= 0:
            raise ValueError(f"'dilation' must be positive (got {dilation})")
        self.channels, self.reduction, self.dilation = channels, reduction, dilation
        hidden = max(1, channels // reduction)
        # Eq. 3: W_0, W_1 and the BN after the MLP.
        self.channel_mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        self.channel_norm = nn.BatchNorm1d(channels)
        # Eq. 4: f_0 (1x1), f_1, f_2 (dilated 3x3), f_3 (1x1), each but f_3 with BN + ReLU, then BN.
        self.spatial_convs = nn.ModuleList([
            nn.Conv2d(channels, hidden, 1),
            nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation),
            nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation),
            nn.Conv2d(hidden, 1, 1)])
        self.spatial_norms = nn.ModuleList([nn.BatchNorm2d(hidden), nn.BatchNorm2d(hidden),
                                            nn.BatchNorm2d(hidden), nn.BatchNorm2d(1)])
        self.reset_parameters()

    def reset_parameters(self):
        for module in self.modules():
            if module is not self and hasattr(module, 'reset_parameters'):
                module.reset_parameters()

    def channel_attention(self, x: Tensor) -> Tensor:
        """:math:`\\mathbf{M}_c(\\mathbf{F})` (Eq. 3): ``[N, C]``."""
        return _batch_norm(self.channel_norm, self.channel_mlp(x.mean(dim=(2, 3))))

    def spatial_attention(self, x: Tensor) -> Tensor:
        """:math:`\\mathbf{M}_s(\\mathbf{F})` (Eq. 4): ``[N, 1, H, W]``."""
        last = len(self.spatial_convs) - 1
        for i, (conv, norm) in enumerate(zip(self.spatial_convs, self.spatial_norms)):
            x = _batch_norm(norm, conv(x))
            if i < last:
                x = F.relu(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f'{type(self).__name__} expects maps of shape [N, {self.channels}, H, W], '
                             f'got {tuple(x.shape)}')
        # Eq. 2: M(F) = sigmoid(M_c(F) + M_s(F)), both broadcast to [N, C, H, W]
        attention = torch.sigmoid(self.channel_attention(x)[:, :, None, None] + self.spatial_attention(x))
        return x + x * attention  # Eq. 1

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.channels}, reduction={self.reduction}, '
                f'dilation={self.dilation})')
