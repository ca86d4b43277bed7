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

from .gather import sum_over_ranks


def _batch_norm(norm: nn.modules.batchnorm._BatchNorm, x: Tensor, group=None) -> Tensor:
    """``norm(x)``, except that a training batch with one value per channel
    (a single image, pooled to one value) is normalised with the running
    statistics: batch norm cannot estimate a variance from one sample. With a
    ``group`` in training, the batch is the global one (:func:`_global_batch_norm`)."""
    if norm.training and group is not None:
        return _global_batch_norm(norm, x, group)
    if norm.training and x.numel() // x.shape[1] == 1:
        return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                            training=False, eps=norm.eps)
    return norm(x)


def _global_batch_norm(norm: nn.modules.batchnorm._BatchNorm, x: Tensor, group) -> Tensor:
    """Training-mode ``norm(x)`` over the concatenation of every rank's share
    ``x`` (SyncBatchNorm's statistics, which torch offers on GPUs only): the
    per-channel sums, sums of squares and counts are summed over ``group``
    with gradients, and the running statistics take the global mean and
    unbiased variance. A share of no rows joins with zero sums; the
    single-value rule of :func:`_batch_norm` is decided on the global count,
    so every rank takes the same branch."""
    channels, dims = x.shape[1], [0, *range(2, x.dim())]
    # Statistics in float32 at least, as batch norm keeps them under autocast.
    values = x.to(torch.promote_types(x.dtype, torch.float32))
    local = torch.cat([values.sum(dims), (values * values).sum(dims),
                       values.new_full((1, ), x.numel() // channels)])
    total = sum_over_ranks(local, group)                              # [2C + 1]
    count = int(total[-1])
    if count <= 1:
        return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                            training=False, eps=norm.eps)
    mean = total[:channels] / count
    var = (total[channels:2 * channels] / count - mean * mean).clamp_min(0)   # biased
    with torch.no_grad():
        norm.num_batches_tracked.add_(1)
        momentum = norm.momentum if norm.momentum is not None else 1 / float(norm.num_batches_tracked)
        norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
        norm.running_var.lerp_((var * count / (count - 1)).to(norm.running_var.dtype), momentum)
    shape = [1, channels] + [1] * (x.dim() - 2)
    scale = norm.weight * torch.rsqrt(var + norm.eps)
    out = (values - mean.view(shape)) * scale.view(shape) + norm.bias.view(shape)
    return out.to(x.dtype)


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
    sample); every other batch norm call is the usual one. Under data
    parallelism (``group``, in training) the batch norms take the global
    batch's statistics, summed over the ranks with gradients, so that the ranks
    normalise, step and update their running statistics as one process on the
    whole batch would; the single-map rule then reads the global count. Every
    rank of ``group`` must call the module, a rank without maps with a
    ``[0, C, H, W]`` input.

    Args:
        channels (int): :math:`C`, the map's channels.
        reduction (int, optional): :math:`r`, the hidden width is
            :math:`\max(1, C / r)`. (default: :obj:`16`)
        dilation (int, optional): dilation of the two :math:`3 \times 3`
            convolutions. (default: :obj:`4`)

    Forward args:
        x (Tensor): the maps.
        group (ProcessGroup, optional): in training, the ranks that each hold
            a share of the batch; :obj:`None`: this process holds the whole
            batch. (default: :obj:`None`)

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

    def channel_attention(self, x: Tensor, group=None) -> Tensor:
        """:math:`\\mathbf{M}_c(\\mathbf{F})` (Eq. 3): ``[N, C]``."""
        return _batch_norm(self.channel_norm, self.channel_mlp(x.mean(dim=(2, 3))), group)

    def spatial_attention(self, x: Tensor, group=None) -> Tensor:
        """:math:`\\mathbf{M}_s(\\mathbf{F})` (Eq. 4): ``[N, 1, H, W]``."""
        last = len(self.spatial_convs) - 1
        for i, (conv, norm) in enumerate(zip(self.spatial_convs, self.spatial_norms)):
            x = _batch_norm(norm, conv(x), group)
            if i < last:
                x = F.relu(x)
        return x

    def forward(self, x: Tensor, group=None) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f'{type(self).__name__} expects maps of shape [N, {self.channels}, H, W], '
                             f'got {tuple(x.shape)}')
        # Eq. 2: M(F) = sigmoid(M_c(F) + M_s(F)), both broadcast to [N, C, H, W]
        attention = torch.sigmoid(self.channel_attention(x, group)[:, :, None, None]
                                  + self.spatial_attention(x, group))
        return x + x * attention  # Eq. 1

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.channels}, reduction={self.reduction}, '
                f'dilation={self.dilation})')
