"""GMF's cross-scale attention (Eqs. 1-4) against a cell-by-cell reference, and its batch norms
over data-parallel shares (real gloo processes) against one process on the whole batch."""
import copy
from datetime import timedelta

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


# -- batch norm over the global batch -------------------------------------------------------------
def global_batch(dtype=torch.float32):
    """A CSA with non-trivial running statistics, 2 steps' maps and a weight per output value (the
    loss ``sum(out * weight)`` over a batch is the sum of the shares' losses)."""
    torch.manual_seed(0)
    csa = CrossScaleAttention(8, reduction=2, dilation=1)
    randomise_norms(csa)
    maps = [torch.randn(5, 8, 3, 3) * 2 + 1 for _ in range(2)]
    weights = [torch.randn(5, 8, 3, 3) for _ in range(2)]
    return csa.train().to(dtype), [x.to(dtype) for x in maps], [w.to(dtype) for w in weights]


def csa_state(csa, grads, input_grads):
    norms = {f'{name}.{key}': value.clone() for name, module in csa.named_modules()
             if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
             for key, value in module.state_dict().items()}
    return {'norms': norms, 'grads': grads, 'input_grads': input_grads}


def csa_steps(csa, maps, weights, group=None):
    """2 forward / backward steps; the parameters' gradients summed over the steps."""
    outs, input_grads = [], []
    for x, w in zip(maps, weights):
        x = x.clone().requires_grad_()
        out = csa(x, group)
        (out * w).sum().backward()
        outs.append(out.detach())
        input_grads.append(x.grad)
    grads = {n: p.grad.clone() for n, p in csa.named_parameters()}
    return outs, csa_state(csa, grads, input_grads)


def csa_rank(rank, init_file, out, rows, dtype):
    """Rank r holds ``rows[r]`` of each step's maps (rank 1 may hold none); DDP's step is the
    average of the ranks' gradients, each of a loss weighed by the 2 ranks (its share of a sum)."""
    import torch.distributed as dist

    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))
    csa, maps, weights = global_batch(dtype)
    mine = slice(sum(rows[:rank]), sum(rows[:rank + 1]))
    outs, state = csa_steps(csa, [x[mine] for x in maps], [2 * w[mine] for w in weights], dist.group.WORLD)
    for grad in state['grads'].values():
        dist.all_reduce(grad)
        grad /= 2
    torch.save({'outs': outs, **state}, f'{out}-{rank}.pt')
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize('rows, dtype, tolerance', [
    ((3, 2), torch.float32, 1e-5), ((5, 0), torch.float32, 1e-5), ((1, 1), torch.float32, 1e-5),
    ((3, 2), torch.float64, 1e-11)])
def test_ranks_normalise_with_the_global_batch_statistics(tmp_path, rows, dtype, tolerance):
    """Outputs, DDP's averaged gradients, input gradients and running statistics of 2 ranks equal one
    process on the whole batch: with a rank without maps, and with one map on each rank (each share
    alone has one value per channel, the global batch two: batch statistics, as in one process). In
    float64 they agree to its rounding: the statistics are batch norm's, not close to them."""
    import torch.multiprocessing as mp

    mp.spawn(csa_rank, args=(tmp_path / 'rendezvous', tmp_path / 'out', rows, dtype), nprocs=2)
    csa, maps, weights = global_batch(dtype)
    batch = slice(0, sum(rows))
    outs, one = csa_steps(csa, [x[batch] for x in maps], [w[batch] for w in weights])
    ranks = [torch.load(tmp_path / f'out-{rank}.pt', weights_only=True) for rank in range(2)]
    for step, out in enumerate(outs):
        torch.testing.assert_close(torch.cat([r['outs'][step] for r in ranks]), out,
                                   atol=tolerance, rtol=tolerance)
        torch.testing.assert_close(torch.cat([r['input_grads'][step] for r in ranks]),
                                   2 * one['input_grads'][step], atol=tolerance, rtol=tolerance)
    # Rounding on the scale of the largest gradient (those of the biases before a batch norm are
    # zero but for it).
    scale = max(float(g.abs().max()) for g in one['grads'].values())
    for rank in ranks:
        for name, grad in one['grads'].items():
            assert float((rank['grads'][name] - grad).abs().max()) <= tolerance * scale, name
        for name, value in one['norms'].items():
            torch.testing.assert_close(rank['norms'][name], value, atol=tolerance, rtol=tolerance, msg=name)
    assert int(one['norms']['channel_norm.num_batches_tracked']) == 2


def test_without_a_group_training_is_plain_batch_norm():
    """One process: the output, gradients and running statistics of torch's own batch norm,
    bit for bit (the global statistics are only taken with a group)."""
    csa, maps, weights = global_batch()
    plain = copy.deepcopy(csa)
    outs, state = csa_steps(csa, maps, weights)
    expected = []
    for x, w in zip(maps, weights):
        x = x.clone().requires_grad_()
        m_c = plain.channel_norm(plain.channel_mlp(x.mean(dim=(2, 3))))
        s = x
        for i, (conv, norm) in enumerate(zip(plain.spatial_convs, plain.spatial_norms)):
            s = norm(conv(s))
            s = torch.relu(s) if i < 3 else s
        out = x + x * torch.sigmoid(m_c[:, :, None, None] + s)
        (out * w).sum().backward()
        expected.append(out.detach())
    assert all(torch.equal(a, b) for a, b in zip(outs, expected))
    assert all(torch.equal(p.grad, state['grads'][n]) for n, p in plain.named_parameters())
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), csa.state_dict().values()))
