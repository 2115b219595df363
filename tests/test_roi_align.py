"""The sparse RoIAlign (ops.roi_align) against torchvision's kernel: forward and
backward on fresh random boxes (inside, across and outside the feature map, smaller than
a pixel), the FPN pooler's level assignment, no boxes, determinism, bad input, CUDA."""

from collections import OrderedDict

import pytest
import torch
import torchvision

from ops.roi_align import MultiScaleRoIAlign, _summed_rows, _transposed, roi_align


def random_rois(count: int, images: int, height: float, width: float,
                generator: torch.Generator) -> torch.Tensor:
    """``[count, 5]`` boxes in input pixels; some reach past the image, some are tiny."""
    centre = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 1.2 - 8
    size = torch.rand(count, 2, generator=generator) ** 2 * torch.tensor([width, height]) * 0.7
    size[: count // 8] *= 0.01  # below one feature pixel
    image = torch.randint(0, images, (count, 1), generator=generator).float()
    return torch.cat([image, centre - size / 2, centre + size / 2], dim=1)


def pooled_and_gradient(pool, features, rois, grad):
    features = features.detach().clone().requires_grad_(True)
    out = pool(features, rois)
    (gradient,) = torch.autograd.grad(out, features, grad)
    return out, gradient


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("output_size, ratio", [((7, 7), 2), ((14, 14), 2), ((3, 5), 1)])
def test_matches_torchvision_forward_and_backward(dtype, tolerance, output_size, ratio):
    generator = torch.Generator().manual_seed(hash((output_size, ratio)) % 2**31)
    features = torch.randn(3, 6, 17, 23, generator=generator, dtype=dtype)
    rois = random_rois(40, 3, 17 * 4, 23 * 4, generator).to(dtype)
    grad = torch.randn(40, 6, *output_size, generator=generator, dtype=dtype)
    ours = pooled_and_gradient(lambda f, r: roi_align(f, r, output_size, 0.25, ratio),
                               features, rois, grad)
    reference = pooled_and_gradient(
        lambda f, r: torchvision.ops.roi_align(f, r, output_size, 0.25, ratio),
        features, rois, grad)
    for a, b in zip(ours, reference, strict=True):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance)


def fpn_features(generator: torch.Generator, images: int, height: int, width: int,
                 dtype: torch.dtype = torch.float32) -> OrderedDict:
    """Four FPN levels of an input ``height x width`` (strides 4 to 32)."""
    return OrderedDict((str(k), torch.randn(images, 5, height // 2 ** (k + 2),
                                            width // 2 ** (k + 2), generator=generator,
                                            dtype=dtype))
                       for k in range(4))


def boxes_of_every_size(count: int, height: int, width: int, generator: torch.Generator
                        ) -> torch.Tensor:
    """``[count, 4]`` boxes inside the image, sides from 16 to 640 pixels (log-uniform),
    so that every pyramid level gets some."""
    side = 16 * 40 ** torch.rand(count, 2, generator=generator)
    side = torch.minimum(side, torch.tensor([width - 1.0, height - 1.0]))
    corner = torch.rand(count, 2, generator=generator) * (torch.tensor([width, height]) - side)
    return torch.cat([corner, corner + side], dim=1)


def test_multiscale_pooler_matches_torchvision():
    generator = torch.Generator().manual_seed(1)
    height, width = 512, 768
    features = fpn_features(generator, 2, height, width, torch.float64)
    whole = torch.tensor([[10.0, 5.0, 760.0, 500.0]])  # the top level for sure
    boxes = [torch.cat([boxes_of_every_size(n, height, width, generator), whole]).double()
             for n in (40, 35)]
    shapes = [(height, width)] * 2
    names = list(features)
    results = []
    poolers = (MultiScaleRoIAlign(names, 7, 2), torchvision.ops.MultiScaleRoIAlign(names, 7, 2))
    for pooler in poolers:
        leaves = [f.clone().requires_grad_(True) for f in features.values()]
        out = pooler(OrderedDict(zip(names, leaves, strict=True)), boxes, shapes)
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(2),
                           dtype=out.dtype)
        results.append((out, torch.autograd.grad(out, leaves, grad), pooler))
    (ours, our_grads, pooler), (reference, reference_grads, _) = results
    assert set(pooler.map_levels(boxes).tolist()) == {0, 1, 2, 3}
    torch.testing.assert_close(ours, reference, atol=1e-10, rtol=1e-10)
    for a, b in zip(our_grads, reference_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_no_boxes_and_determinism():
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(2, 4, 9, 11, generator=generator, requires_grad=True)
    empty = roi_align(features, torch.zeros(0, 5), (7, 7), 0.5, 2)
    assert empty.shape == (0, 4, 7, 7)
    rois = random_rois(200, 2, 18, 22, generator)
    grad = torch.randn(200, 4, 7, 7, generator=generator)
    first, second = (pooled_and_gradient(lambda f, r: roi_align(f, r, (7, 7), 0.5, 2),
                                         features, rois, grad) for _ in range(2))
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)  # bit for bit: CPU training stays reproducible


def test_summed_rows_and_transpose_match_a_dense_reference():
    """The CSR builder sums the entries a row repeats (the points sharing a pixel) and
    keeps the rest; its transpose is the dense transpose."""
    generator = torch.Generator().manual_seed(5)
    columns = torch.randint(0, 6, (40, 9), generator=generator)  # many repeats per row
    weights = torch.randn(40, 9, generator=generator, dtype=torch.float64)
    dense = torch.zeros(40, 6, dtype=torch.float64)
    for row in range(40):  # the obvious loop
        for column, weight in zip(columns[row].tolist(), weights[row].tolist(), strict=True):
            dense[row, column] += weight
    matrix = _summed_rows(columns, weights, 6)
    torch.testing.assert_close(matrix.to_dense(), dense, atol=1e-12, rtol=0)
    assert matrix.col_indices().numel() == sum(len(set(r.tolist())) for r in columns)
    torch.testing.assert_close(_transposed(matrix).to_dense(), dense.t())
    assert _summed_rows(columns[:0], weights[:0], 6).shape == (0, 6)


def test_bad_input_is_refused():
    features = torch.randn(1, 2, 5, 5)
    with pytest.raises(ValueError, match="sampling_ratio"):
        roi_align(features, torch.zeros(1, 5), (7, 7), 1.0, 0)
    with pytest.raises(ValueError, match=r"\[R, 5\]"):
        roi_align(features, torch.zeros(1, 4), (7, 7), 1.0, 2)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        roi_align(features[0], torch.zeros(1, 5), (7, 7), 1.0, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pooler_equals_the_cpu_one():
    generator = torch.Generator().manual_seed(4)
    features = fpn_features(generator, 2, 256, 384)
    boxes = [boxes_of_every_size(30, 256, 384, generator) for _ in range(2)]
    names, shapes = list(features), [(256, 384)] * 2
    results = []
    for device in ("cpu", "cuda"):
        leaves = [f.detach().to(device).requires_grad_(True) for f in features.values()]
        out = MultiScaleRoIAlign(names, 14, 2)(OrderedDict(zip(names, leaves, strict=True)),
                                              [b.to(device) for b in boxes], shapes)
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(5)).to(device)
        results.append([t.cpu() for t in (out, *torch.autograd.grad(out, leaves, grad))])
    # On CUDA this is torchvision's kernel, which rounds the float32 sampling points in
    # its own way. A one-ulp change of these boxes' coordinates moves the CPU pooler's
    # outputs and gradients by up to 4e-5 (unit-normal features), so 2e-4 is a few ulps
    # of the coordinates; a wrong level or alignment would be off by 0.1 or more. (The
    # first H200 run, 2026-11-27, saw 1.9e-5 at the old atol of 1e-5.)
    for on_cuda, on_cpu in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(on_cuda, on_cpu, atol=2e-4, rtol=1e-4)
