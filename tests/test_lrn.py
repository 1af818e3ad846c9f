"""The encoder's LocalResponseNorm (hand-written backward, for speed) must be PyTorch's LRN."""

import pytest
import torch
from torch import nn

from ser_fcn.models.alexnet_fcn import LocalResponseNorm


@pytest.mark.parametrize("channels", [3, 64, 192])  # both code paths: banded matmul and shifted adds
@pytest.mark.parametrize("size", [1, 4, 5])
def test_forward_and_backward_equal_pytorchs(channels, size):
    torch.manual_seed(channels + size)
    x = (3 * torch.randn(2, channels, 7, 9, dtype=torch.float64)).requires_grad_()
    ours, ref = LocalResponseNorm(size, alpha=1e-2, beta=0.75, k=2.0), nn.LocalResponseNorm(size, alpha=1e-2, beta=0.75, k=2.0)
    y1, y2 = ours(x), ref(x)
    torch.testing.assert_close(y1, y2, rtol=1e-10, atol=1e-12)
    g = torch.randn_like(y1)
    (gx1,) = torch.autograd.grad(y1, x, g)
    (gx2,) = torch.autograd.grad(y2, x, g)
    torch.testing.assert_close(gx1, gx2, rtol=1e-9, atol=1e-12)


def test_gradcheck():
    x = torch.randn(1, 6, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(LocalResponseNorm(5, alpha=0.5, beta=0.75, k=1.0), (x,))


def test_non_contiguous_input():
    x = torch.randn(2, 9, 5, 4).transpose(2, 3)
    torch.testing.assert_close(LocalResponseNorm(5)(x), nn.LocalResponseNorm(5)(x))
