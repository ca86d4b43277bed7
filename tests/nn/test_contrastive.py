"""symmetric_info_nce against a per-sample loop."""
import math

import pytest
import torch
import torch.nn.functional as F

from graphmner.nn.contrastive import symmetric_info_nce


def loop(a, b, tau, weight):
    """The official MAF code's loop: L_t2i and L_i2t summed over anchors, divided by B."""
    n = a.shape[0]
    cos = lambda x, y: F.cosine_similarity(x, y, dim=0)
    a_to_b = b_to_a = 0.0
    for i in range(n):
        a_to_b += -math.log(math.exp(cos(a[i], b[i]) / tau) / sum(math.exp(cos(a[i], b[j]) / tau)
                                                                   for j in range(n)))
        b_to_a += -math.log(math.exp(cos(b[i], a[i]) / tau) / sum(math.exp(cos(b[i], a[j]) / tau)
                                                                   for j in range(n)))
    return (weight * a_to_b + (1 - weight) * b_to_a) / n


def test_equals_the_loop_and_the_mask_drops_rows():
    torch.manual_seed(0)
    a, b = torch.randn(6, 5), torch.randn(6, 5)
    assert symmetric_info_nce(a, b, 0.179, 0.7).item() == pytest.approx(loop(a, b, 0.179, 0.7), rel=1e-5)
    mask = torch.tensor([True, False, True, True, False, True])
    assert symmetric_info_nce(a, b, 0.2, 0.3, mask).item() == pytest.approx(
        loop(a[mask], b[mask], 0.2, 0.3), rel=1e-5)
    # the weight picks the direction: w = 1 is the a -> b loss alone
    assert symmetric_info_nce(a, b, 0.5, 1.0).item() == pytest.approx(loop(a, b, 0.5, 1.0), rel=1e-5)
    one_way = symmetric_info_nce(a, b, 0.5, 1.0).item()
    assert one_way != pytest.approx(symmetric_info_nce(a, b, 0.5, 0.0).item())


def test_fewer_than_two_rows_give_zero_with_a_gradient():
    a = torch.randn(3, 4, requires_grad=True)
    loss = symmetric_info_nce(a, torch.randn(3, 4), 0.1, mask=torch.tensor([False, True, False]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(a.grad, torch.zeros(3, 4))


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match=r'both be \[B, d\]'):
        symmetric_info_nce(torch.randn(3, 4), torch.randn(2, 4), 0.1)
    with pytest.raises(ValueError, match="'temperature' must be positive, got 0"):
        symmetric_info_nce(torch.randn(3, 4), torch.randn(3, 4), 0)
