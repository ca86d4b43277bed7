"""GMF's cross-scale attention (Eqs. 1-4) against a cell-by-cell reference."""
import pytest
import torch

from graphmner.nn.cross_scale_attention import CrossScaleAttention


def randomise_norms(csa: CrossScaleAttention, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters, so that eval-mode
    batch norm is not the identity."""
    g = torch.Generator().manual_seed(seed)
    norms = [csa.channel_norm, *csa.spatial_norms]
    with torch.no_grad():
        for norm in norms:
            n = norm.num_features
            norm.running_mean.copy_(torch.randn(n, generator=g))
            norm.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            norm.weight.copy_(torch.randn(n, generator=g))
            norm.bias.copy_(torch.randn(n, generator=g))


def bn(x, norm):
    """Eval-mode batch norm over the channel dimension 0 of one sample."""
    shape = (-1, ) + (1, ) * (x.dim() - 1)
    return ((x - norm.running_mean.view(shape)) / torch.sqrt(norm.running_var.view(shape) + norm.eps)
            * norm.weight.view(shape) + norm.bias.view(shape))


def conv_by_taps(x, conv):
    """A (dilated) convolution written as a sum over kernel taps, cell by cell,
    with zero padding: x [C_in, H, W] -> [C_out, H, W]."""
    C_out, _, k, _ = conv.weight.shape
    d = conv.dilation[0]
    H, W = x.shape[1:]
    out = torch.zeros(C_out, H, W)
    for i in range(H):
        for j in range(W):
            acc = conv.bias.clone()
            for a in range(k):
                for b in range(k):
                    y, z = i + (a - k // 2) * d, j + (b - k // 2) * d
                    if 0 <= y < H and 0 <= z < W:
                        acc += conv.weight[:, :, a, b] @ x[:, y, z]
            out[:, i, j] = acc
    return out


def reference(csa, F):
    """Eqs. 1-4 for each map on its own: F [C, H, W] -> F'."""
    W0, W1 = csa.channel_mlp[0], csa.channel_mlp[2]
    m_c = bn(W1(torch.relu(W0(F.mean(dim=(1, 2))))), csa.channel_norm)      # Eq. 3: [C]
    s = F
    for i, (conv, norm) in enumerate(zip(csa.spatial_convs, csa.spatial_norms)):
        s = bn(conv_by_taps(s, conv), norm)
        s = torch.relu(s) if i < 3 else s
    m_s = s                                                                 # Eq. 4: [1, H, W]
    attention = torch.sigmoid(m_c[:, None, None] + m_s)                     # Eq. 2
    return F + F * attention                                                # Eq. 1


@pytest.mark.parametrize('dilation', [1, 2, 4])
def test_matches_the_cell_by_cell_reference(dilation):
    torch.manual_seed(0)
    csa = CrossScaleAttention(32, reduction=8, dilation=dilation).eval()
    randomise_norms(csa)
    x = torch.randn(3, 32, 7, 7)
    with torch.no_grad():
        out = csa(x)
        expected = torch.stack([reference(csa, f) for f in x])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_dilation_reaches_cells_four_away_on_a_7x7_map():
    """Grid choice: on a 7x7 map a dilation-4 tap joins cells 0 and 4; on a
    2x2 map the spatial branch sees each cell alone."""
    torch.manual_seed(0)
    csa = CrossScaleAttention(16, reduction=4, dilation=4).eval()
    randomise_norms(csa)
    x = torch.randn(1, 16, 7, 7)
    moved = x.clone()
    moved[0, :, 4, 4] += 5.0
    with torch.no_grad():
        delta = (csa.spatial_attention(moved) - csa.spatial_attention(x))[0, 0].abs() > 1e-6
    # Two dilation-4 convolutions carry cell (4, 4) to rows and columns {0, 4} only.
    reachable = torch.zeros(7, 7, dtype=torch.bool)
    reachable[0::4, 0::4] = True
    assert not (delta & ~reachable).any()
    assert delta[0, 0] or delta[0, 4] or delta[4, 0]  # some cell 4 away, not only itself
    small = torch.randn(1, 16, 2, 2)
    moved = small.clone()
    moved[0, :, 0, 0] += 5.0
    with torch.no_grad():
        delta = (csa.spatial_attention(moved) - csa.spatial_attention(small))[0, 0].abs() > 1e-6
    assert delta.tolist() == [[True, False], [False, False]]


def test_training_uses_batch_statistics_and_survives_a_single_map():
    torch.manual_seed(0)
    csa = CrossScaleAttention(16, reduction=4).train()
    x = torch.randn(4, 16, 5, 5)
    out = csa(x)
    # The channel branch is normalised with the batch's own statistics: zero mean per channel.
    m_c = csa.channel_attention(x)
    torch.testing.assert_close(m_c.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    assert out.shape == x.shape
    single = csa(x[:1])  # one map: BatchNorm1d would raise; the running statistics step in
    assert single.shape == (1, 16, 5, 5) and torch.isfinite(single).all()
    csa.eval()
    torch.testing.assert_close(csa.channel_attention(x[:1]), csa.channel_norm(csa.channel_mlp(
        x[:1].mean(dim=(2, 3)))))


def test_residual_keeps_zero_maps_zero_and_gradients_flow():
    csa = CrossScaleAttention(8, reduction=2).eval()
    assert torch.equal(csa(torch.zeros(2, 8, 3, 3)), torch.zeros(2, 8, 3, 3))
    x = torch.randn(2, 8, 3, 3, requires_grad=True)
    csa(x).sum().backward()
    assert x.grad.abs().sum() > 0


def test_errors_and_repr():
    with pytest.raises(ValueError, match=r'\[N, 8, H, W\], got \(2, 4, 3, 3\)'):
        CrossScaleAttention(8)(torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"'reduction' must be positive \(got 0\)"):
        CrossScaleAttention(8, reduction=0)
    with pytest.raises(ValueError, match=r"'channels' must be positive \(got -1\)"):
        CrossScaleAttention(-1)
    assert repr(CrossScaleAttention(256)) == 'CrossScaleAttention(256, reduction=16, dilation=4)'
    assert CrossScaleAttention(8, reduction=16).channel_mlp[0].out_features == 1  # max(1, C / r)
