"""ops.max_pool (channels-last forward, NCHW backward) against PyTorch's max pooling:
values and gradients on random inputs, CPU and CUDA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ops.max_pool import MaxPool2d, max_pool2d


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("seed", range(3))
def test_matches_torch_forward_and_backward(dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    for kernel, stride, padding in ((3, 2, 1), (2, 2, 0), (3, 1, 1)):
        height, width = torch.randint(5, 40, (2,), generator=generator).tolist()
        x = torch.randn(2, 7, height, width, generator=generator).to(dtype).requires_grad_()
        expected = F.max_pool2d(x, kernel, stride, padding)
        pooled = max_pool2d(x, kernel, stride, padding)
        grad = torch.randn(expected.shape, generator=generator).to(dtype)
        expected_grad, = torch.autograd.grad(expected, x, grad)
        pooled_grad, = torch.autograd.grad(pooled, x, grad)
        assert pooled.is_contiguous() and torch.equal(pooled, expected)
        assert torch.equal(pooled_grad, expected_grad)


def test_module_is_the_function_and_bad_input_is_refused():
    x = torch.randn(1, 3, 9, 11)
    assert torch.equal(MaxPool2d(3, 2, 1)(x), F.max_pool2d(x, 3, 2, 1))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\], got \(3, 9, 11\)"):
        max_pool2d(x[0], 3, 2, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_the_cpu():
    x = torch.randn(2, 16, 33, 47, dtype=torch.float64)
    results = {}
    for device in ("cpu", "cuda"):
        inputs = x.to(device).requires_grad_()
        pooled = max_pool2d(inputs, 3, 2, 1)
        pooled.square().sum().backward()
        results[device] = (pooled.cpu(), inputs.grad.cpu())
    for on_cuda, on_cpu in zip(results["cuda"], results["cpu"], strict=True):
        torch.testing.assert_close(on_cuda, on_cpu, atol=1e-12, rtol=0)
