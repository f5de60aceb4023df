"""speechkit/nn/depthwise.py against torch's grouped conv1d: outputs and all three gradients."""

import pytest
import torch
import torch.nn.functional as F

from speechkit.nn.depthwise import depthwise_conv1d


def _reference(x, weight, bias):
    k = weight.shape[-1]
    out = F.conv1d(x.transpose(1, 2), weight, bias, padding=k // 2, groups=weight.shape[0])
    return out.transpose(1, 2)


@pytest.mark.parametrize("kernel, steps", [(15, 41), (3, 7), (31, 5), (1, 4)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_matches_grouped_conv1d_forward_and_backward(kernel, steps, with_bias):
    torch.manual_seed(kernel + steps)
    x = torch.randn(3, steps, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 1, kernel, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True) if with_bias else None
    grad = torch.randn(3, steps, 6, dtype=torch.float64)
    inputs = [x, weight] + ([bias] if with_bias else [])

    out = depthwise_conv1d(x, weight, bias)
    got = torch.autograd.grad(out, inputs, grad)
    ref_out = _reference(x, weight, bias)
    want = torch.autograd.grad(ref_out, inputs, grad)
    torch.testing.assert_close(out, ref_out)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_gradcheck_and_no_grad():
    torch.manual_seed(0)
    x = torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 1, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(depthwise_conv1d, (x, weight, bias))
    with torch.inference_mode():
        out = depthwise_conv1d(x.detach().float(), weight.detach().float(), bias.detach().float())
    torch.testing.assert_close(out, _reference(x, weight, bias).float(), rtol=1e-5, atol=1e-5)


def test_even_kernel_is_refused():
    with pytest.raises(ValueError, match="odd kernel"):
        depthwise_conv1d(torch.zeros(1, 4, 2), torch.zeros(2, 1, 4))
