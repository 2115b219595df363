"""Crop-pretraining step speed at a given cap on the SMPL-branch RoIs per crop, and
optionally where the step goes (``torch.profiler``). Not part of the pipeline.

    PYTHONPATH=. python docs/probes/pretrain_step/step_speed.py 8 --profile   # from the root
    PYTHONPATH=. python docs/probes/pretrain_step/step_speed.py 2
    PYTHONPATH=. python docs/probes/pretrain_step/step_speed.py 2 --per-image-bodies
    PYTHONPATH=. python docs/probes/pretrain_step/step_speed.py 2 --prefetch thread

Runs the ``train.pretrain`` phase as ``stages.train`` does (fresh weights, the training
shards of ``make repro``, the deterministic CPU kernels): five warm-up steps, then
crops/s over fifteen, then (``--profile``) five steps under the profiler.
``--per-image-bodies`` poses each crop's annotated people in a body-model call of its
own, as the criterion did before it posed every crop's in one call. ``--prefetch``
reads the next batches while a step runs: in a thread (``thread``) or in one
``torch.utils.data.DataLoader`` worker process (``process``); without it (``none``, as
``stages.train``), the line also gives the share of the step spent reading its batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import queue
import threading
import time
from collections.abc import Iterator

import torch

from model.discriminator import build_discriminator
from model.mirror import mirror_index
from model.rcnn import ModelConfig
from model.smpl_criterion import SMPLCriterion
from pipelines.determinism import deterministic_cpu_kernels
from pipelines.priors import build_prior
from pipelines.training import (
    PhaseParams,
    TrainParams,
    batches,
    build_optimizers,
    on_device,
    split_losses,
)
from stages.common import BodyModelParams, from_section, read_params, typed
from stages.train import build_network, criterion_config

WARMUP, TIMED, PROFILED = 5, 15, 5
PREFETCH_DEPTH = 2  # batches read ahead


class _PhaseBatches(torch.utils.data.IterableDataset):
    """:func:`batches` of one phase, made inside the DataLoader's worker process."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs

    def __iter__(self) -> Iterator[tuple]:
        return batches(*self.args, **self.kwargs)


def _in_thread(stream: Iterator[tuple]) -> Iterator[tuple]:
    """``stream``'s items, read ahead by a background thread (same order)."""
    ready: queue.Queue = queue.Queue(PREFETCH_DEPTH)
    threading.Thread(target=lambda: [ready.put(item) for item in stream], daemon=True).start()
    while True:
        yield ready.get()


class _Timed:
    """An iterator that adds the seconds spent in each ``next`` to ``seconds``."""

    def __init__(self, stream: Iterator[tuple]) -> None:
        self.stream, self.seconds = stream, 0.0

    def __next__(self) -> tuple:
        start = time.perf_counter()
        item = next(self.stream)
        self.seconds += time.perf_counter() - start
        return item


def pretraining_step(cap: int, per_image_bodies: bool = False, prefetch: str = "none"):
    """``(step, crops per step, data)``: one ``train.pretrain`` step as ``stages.train``
    runs it (fresh weights, the training shards), each call on the stream's next batch;
    ``data`` times the reads."""
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    phase = dataclasses.replace(typed(PhaseParams, params, "train.pretrain"),
                                smpl_rois_per_image=cap)
    torch.manual_seed(0)
    body = from_section(BodyModelParams, params, "body_model").build()
    prior = build_prior(common.prior, 1, body.num_joints, body.shape_dim, 0.2)
    network = build_network(typed(ModelConfig, params, "model"), phase, body, 0).train()
    discriminator = build_discriminator(body.num_joints, body.shape_dim, 1)
    optimizers = build_optimizers(network, discriminator, phase.lr, common.discriminator_lr,
                                  common.weight_decay)
    criterion = SMPLCriterion(body, discriminator, prior, criterion_config(params, phase, None))
    if per_image_bodies:
        criterion._annotated_vertices = lambda targets: [
            body(t["rotmats"], t["shape"]).vertices.detach() for t in targets]
    arguments = (common, phase, 0)
    options = {"rotation_mirror": mirror_index(body.rotation_names), "body_model": body.name}
    if prefetch == "process":
        stream = iter(torch.utils.data.DataLoader(
            _PhaseBatches(*arguments, **options), batch_size=None, num_workers=1,
            prefetch_factor=PREFETCH_DEPTH))
    else:
        stream = batches(*arguments, **options)
        stream = _in_thread(stream) if prefetch == "thread" else stream
    data = _Timed(stream)

    def step() -> None:
        images, targets = on_device(*next(data)[:2], torch.device("cpu"))
        detector_losses, branch = network(images, targets)
        losses = {**detector_losses,
                  **criterion(branch, targets, tuple(images.shape[-2:]))}
        detector, adversary = split_losses(losses)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        (detector + adversary).backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), common.grad_clip)
        for optimizer in optimizers:
            optimizer.step()

    return step, phase.batch_size, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cap", type=int, help="SMPL-branch RoIs per crop")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--per-image-bodies", action="store_true")
    parser.add_argument("--prefetch", choices=("none", "thread", "process"), default="none")
    args = parser.parse_args()
    step, batch_size, data = pretraining_step(args.cap, args.per_image_bodies, args.prefetch)
    with deterministic_cpu_kernels(torch.device("cpu")):
        for _ in range(WARMUP):
            step()
        start, data.seconds = time.perf_counter(), 0.0
        for _ in range(TIMED):
            step()
        seconds = (time.perf_counter() - start) / TIMED
        variant = (" per-image bodies" if args.per_image_bodies else "") + (
            f" prefetch {args.prefetch}" if args.prefetch != "none" else "")
        waiting = data.seconds / TIMED
        print(f"cap {args.cap}{variant}: {batch_size / seconds:.2f} crops/s, "
              f"{seconds * 1000:.0f} ms per step, {waiting * 1000:.0f} ms of it "
              f"({100 * waiting / seconds:.1f} %) waiting for the batch")
        if args.profile:
            with torch.profiler.profile() as profiler:
                for _ in range(PROFILED):
                    step()
            print(profiler.key_averages().table(sort_by="cpu_time_total", row_limit=30))


if __name__ == "__main__":
    main()
