"""Bitwise-repeatable CPU work: PyTorch's deterministic kernels, switched on around the
training steps and test-time refinement.

With more than one thread, PyTorch's CPU ``index_put_(..., accumulate=True)`` on float32
(the backward of every gather, such as ``vertices[faces]``) adds more than 32,768 values
with parallel atomic adds, so the order of the additions, and with it the last bits of
the sums, follows the threads' timing. A ``full`` fine-tune step makes 2 to 8 such sums
(up to 329,232 values). Undisturbed, two threads keep the same timing and runs repeat
bit for bit; beside another busy process they do not, and a run drifts from a random
step on (README, "Reproducibility, as measured"; ``docs/probes/contention``). The
deterministic kernels add in index order, and a training step takes about as long with
them (0.5-1.7 % longer here, with the NaN fill of new tensors off).

CUDA is left as it is: torchvision's RoIAlign backward has no deterministic CUDA kernel
(PyTorch would raise), and GPU runs are not bitwise repeatable in any case.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.utils.deterministic


@contextmanager
def deterministic_cpu_kernels(device: torch.device | str) -> Iterator[None]:
    """Within the block, PyTorch's deterministic kernels if ``device`` is the CPU (else
    nothing changes); the previous setting afterwards."""
    if torch.device(device).type != "cpu":
        yield
        return
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    # Filling every new uninitialised tensor with NaN (the mode's default) only shows
    # reads of memory never written, which none of our code makes; it cost 4-5 % of a
    # training step here, and the results are the same without it.
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill
