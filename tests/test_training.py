"""Training: the loss falls, phases chain and log, resume equals an uninterrupted run,
non-finite steps are skipped then fatal, and DDP on 2 CPU processes equals one process."""

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from model.io import read_model
from pipelines.shards import read_shards
from pipelines.training import PhaseParams, TrainParams, batches, on_device
from pipelines.transforms import collate, to_network_input
from stages.common import typed
from stages.train import COUNTS, Session, build_parts, loop, run
from tests.training_setup import (
    deterministic_sampling,
    prepare_tiny_shards,
    tiny_model,
    tiny_training_params,
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    prepare_tiny_shards(root, tiny_training_params())
    return root


def first_batch(workdir, count=2):
    samples = [to_network_input(s, 80, 128) for _, s in zip(range(count),
               read_shards(workdir / "data/shards/train/synth_train"), strict=False)]
    return collate(samples)


def train_steps(model, images, targets, steps: int = 30) -> tuple[list[float], dict]:
    """``steps`` RAdam steps on one batch: each step's total (adversary's losses left
    out) and the last step's losses."""
    optimizer = torch.optim.RAdam(model.parameters(), lr=3e-4)
    totals = []
    for _ in range(steps):
        losses = model(images, targets)
        total = sum(v for k, v in losses.items() if not k.startswith("adv_"))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    return totals, losses


def test_total_loss_falls_on_a_few_images(workdir):
    params = tiny_training_params()
    model = tiny_model(params, variant="full", phase="finetune").train()
    totals, losses = train_steps(model, *first_batch(workdir)[:2])
    assert {"loss_keypoints_2d", "loss_collision", "loss_depth_order",
            "loss_adversarial", "adv_loss_real"} <= set(losses)
    assert sum(totals[-3:]) / 3 < 0.7 * sum(totals[:3]) / 3


def logs(name: str) -> dict[str, str]:
    """Every file a phase logged (``logs/<name>``), by path."""
    return {str(path): path.read_text() for path in sorted(Path("logs", name).rglob("*"))
            if path.is_file()}


def test_phases_chain_log_and_resume_exactly(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    params = tiny_training_params(iters=4)
    run(params, "pretrain", None)
    uninterrupted = torch.load("models/pretrain/model.pt")["network"]
    uninterrupted_logs = logs("pretrain")
    metrics = json.loads(Path("logs/pretrain/metrics.json").read_text())
    assert metrics["step"] == 3 and "loss_keypoints_2d" in metrics["train"]
    assert len(Path("logs/pretrain/plots/metrics/train/total.tsv").read_text().splitlines()) == 5
    # an "interrupted" run: stop after 3 steps (checkpoint at 2, step 2 already logged),
    # then run to 4: the same model and the same logs, step 2 logged once
    for folder in ("checkpoints", "models", "logs"):
        os.system(f"rm -rf {folder}")
    run(tiny_training_params(iters=3), "pretrain", None)
    run(params, "pretrain", None)
    resumed = torch.load("models/pretrain/model.pt")["network"]
    for name, value in uninterrupted.items():
        torch.testing.assert_close(resumed[name], value, msg=name)
    assert logs("pretrain") == uninterrupted_logs
    run(params, "baseline", None)
    # a fine-tune starts from the baseline's weights, with its variant's scene losses
    parts = build_parts(params, "finetune", "full", torch.device("cpu"))
    baseline = read_model("models/baseline/model.pt")
    for part, saved in ((parts.network, "network"), (parts.discriminator, "discriminator")):
        for name, value in part.state_dict().items():
            torch.testing.assert_close(value, baseline[saved][name], msg=name)
    assert parts.losses.scene.depth_order == params["losses"]["full"]["depth_order"] > 0
    run(params, "finetune", "full")
    finetuned = json.loads(Path("logs/full/metrics.json").read_text())["train"]
    assert {"loss_collision", "loss_depth_order", "loss_adversarial"} <= set(finetuned)
    # the step counters a resumed fine-tune logs are the whole run's, not its own part's
    assert finetuned["active_depth_order"] > 1
    uninterrupted_logs = logs("full")
    for folder in ("checkpoints/full", "models/full", "logs/full"):
        os.system(f"rm -rf {folder}")
    run(tiny_training_params(iters=3), "finetune", "full")
    run(params, "finetune", "full")
    assert logs("full") == uninterrupted_logs


def test_training_steps_run_with_deterministic_cpu_kernels(workdir, monkeypatch):
    """Training on the CPU runs its steps under pipelines.determinism (repeatable beside
    other busy processes) and leaves the global setting as it found it."""
    monkeypatch.chdir(workdir)
    seen = []

    def recording_loop(*args, **kwargs):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return loop(*args, **kwargs)

    monkeypatch.setattr("stages.train.loop", recording_loop)
    run(tiny_training_params(iters=1), "pretrain", None)
    assert seen == [True] and not torch.are_deterministic_algorithms_enabled()


class _Exploding(torch.nn.Module):
    """Returns NaN losses for the first ``bad`` calls."""

    def __init__(self, bad: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.bad, self.calls = bad, 0

    def forward(self, images, targets):
        self.calls += 1
        value = self.weight.sum() * (float("nan") if self.calls <= self.bad else 1.0)
        return {"loss_x": value}, None


@pytest.mark.parametrize("bad, fails", [(2, False), (4, True)])
def test_non_finite_steps_are_skipped_then_fatal(workdir, monkeypatch, bad, fails):
    monkeypatch.chdir(workdir)
    common = replace(typed(TrainParams, tiny_training_params(), "train.common"), max_bad_steps=3)
    phase = PhaseParams(iters=6, lr=0.1, batch_size=2, adversarial=False,
                        keypoint_criterion="l1", datasets={"synth_train": 1.0}, crop_size=None,
                        smpl_rois_per_image=None, withhold_3d=0.0)
    model, discriminator = _Exploding(bad), torch.nn.Linear(1, 1)
    optimizers = [torch.optim.SGD([model.weight], lr=0.1),
                  torch.optim.SGD(discriminator.parameters(), lr=0.1)]
    session = Session(model, model, discriminator, lambda branch, targets, size: {},
                      optimizers, [0.1, 0.1])

    counts = dict(COUNTS)

    def go():
        loop(session, batches(common, phase, 0), common, phase, 0, counts, None, None)

    if fails:
        with pytest.raises(RuntimeError, match="non-finite losses in a row"):
            go()
    else:
        go()
        assert model.calls == 6 and model.weight.item() < 1.0  # the finite steps trained
        assert counts["skipped_steps"] == bad


def without_prior(model) -> None:
    """The adversarial prior draws random real samples per process; switch it off so
    the comparison is exact (the scene losses stay on)."""
    model.criterion.config = replace(model.criterion.config, adversarial=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gradients(model, images, targets) -> dict[str, torch.Tensor]:
    losses = model(images, targets)
    sum(v for k, v in losses.items() if not k.startswith("adv_")).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _ddp_worker(rank: int, port: int, workdir: str, out: str) -> None:
    images, targets, _ = first_batch(Path(workdir))  # both images, before the shards split
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    torch.randperm = lambda n, device=None, **_: torch.arange(n, device=device)
    params = tiny_training_params()
    model = tiny_model(params, variant="full", phase="finetune")
    without_prior(model)
    model.train()
    # as the train stage does: the network under DDP, the criterion (body model) outside
    model.network = torch.nn.parallel.DistributedDataParallel(model.network,
                                                              find_unused_parameters=True)
    grads = _gradients(model, images[rank:rank + 1], targets[rank:rank + 1])
    grads = {name.replace("module.", ""): grad for name, grad in grads.items()}
    if rank == 0:
        torch.save(grads, out)
    dist.destroy_process_group()


def test_ddp_on_two_cpu_processes_equals_one_process(workdir, monkeypatch, tmp_path):
    out = tmp_path / "ddp_grads.pt"
    mp.spawn(_ddp_worker, args=(_free_port(), str(workdir), str(out)), nprocs=2, join=True)
    deterministic_sampling(monkeypatch)
    params = tiny_training_params()
    model = tiny_model(params, variant="full", phase="finetune")
    without_prior(model)
    model.train()
    images, targets, _ = first_batch(workdir)
    single = _gradients(model, images, targets)
    distributed = torch.load(out)
    assert set(single) == set(distributed)
    for name, grad in single.items():
        torch.testing.assert_close(distributed[name], grad, atol=1e-5, rtol=1e-3, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda(workdir, monkeypatch):
    """On CUDA: the region-proposal losses of a batch equal the CPU's (the SMPL-branch
    losses depend on which near-tied proposals survive, so they are not compared), the
    full fine-tune loss falls, and the three phases train and save models a CPU reads."""
    deterministic_sampling(monkeypatch)
    params = tiny_training_params()
    images, targets, _ = first_batch(workdir)
    models, rpn = {}, []
    for device in ("cpu", "cuda"):
        models[device] = tiny_model(params, variant="full", phase="finetune").to(device).train()
        losses = models[device](*on_device(images, targets, device))
        rpn.append(torch.stack([losses["loss_objectness"], losses["loss_rpn_box_reg"]]).cpu())
    torch.testing.assert_close(rpn[1], rpn[0], atol=1e-4, rtol=1e-3)
    totals, _ = train_steps(models["cuda"], *on_device(images, targets, "cuda"))
    assert sum(totals[-3:]) / 3 < 0.7 * sum(totals[:3]) / 3
    monkeypatch.chdir(workdir)
    for folder in ("checkpoints", "models", "logs"):
        os.system(f"rm -rf {folder}")
    params["train"]["common"]["device"] = "cuda"
    run(params, "pretrain", None)
    run(params, "baseline", None)
    run(params, "finetune", "full")
    state = read_model("models/full/model.pt")  # as a CPU-only machine reads it
    assert all(torch.isfinite(v).all() for v in state["network"].values() if v.is_floating_point())
    finetuned = json.loads(Path("logs/full/metrics.json").read_text())["train"]
    assert {"loss_collision", "loss_depth_order"} <= set(finetuned)
