"""pipelines.determinism: inside the block, a gather's backward on the CPU (PyTorch's
``index_put_`` with accumulation, which otherwise adds large float32 sums with parallel
atomics) sums in index order, as a serial reference does; the previous setting comes back
afterwards, and other devices are left alone."""

import numpy as np
import pytest
import torch
import torch.utils.deterministic

from pipelines.determinism import deterministic_cpu_kernels


def serial_sums(indices: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """The obviously-correct reference: float32 additions one by one, in index order."""
    sums = np.zeros(size, np.float32)
    for index, value in zip(indices, values, strict=True):
        sums[index] += value
    return sums


@pytest.mark.parametrize("size", [10, 5000])
def test_gather_backward_sums_in_index_order(size):
    generator = torch.Generator().manual_seed(size)
    count = 60_000  # above PyTorch's 32,768-element grain, where the atomic path starts
    indices = torch.randint(0, size, (count,), generator=generator)
    upstream = torch.randn(count, generator=generator)
    reference = serial_sums(indices.numpy(), upstream.numpy(), size)
    with deterministic_cpu_kernels("cpu"):
        for _ in range(5):
            leaf = torch.zeros(size, requires_grad=True)
            leaf[indices].backward(upstream)
            assert np.array_equal(leaf.grad.numpy(), reference)  # bit for bit


def test_previous_setting_comes_back_and_other_devices_are_left_alone():
    assert not torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    with deterministic_cpu_kernels(torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.utils.deterministic.fill_uninitialized_memory
        with deterministic_cpu_kernels("cuda"):  # no GPU needed: nothing is switched
            assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_cpu_kernels("cuda"):
        assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(KeyError), deterministic_cpu_kernels("cpu"):
        raise KeyError("an error inside the block")
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory == fill
