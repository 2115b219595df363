"""What every training phase shares: data stream, schedule, checkpoints, DDP set-up.

- **Data.** A seeded, endless weighted mixture of the phase's training datasets
  (:mod:`pipelines.mixture`); under DDP each rank reads its own shards. A share of the
  multi-person samples (``withhold_3d``) may lose their 3D annotations, as the official
  multi-person datasets have none. Each sample may be flipped (``flip_probability``)
  and, in a phase with ``crop_size``, cut to the official single-person crop
  (:mod:`pipelines.augment`), then letterboxed with the official colour noise.
- **Optimisers.** RAdam for the detector (torch's RAdam computed by its fused AdamW
  kernel, :mod:`pipelines.radam`). A separate RAdam trains the discriminator
  on the ``adv_*`` losses. Both decay the weights directly (``p -= lr * wd * p``, the
  official RAdam's decoupled weight decay, not an L2 term that Adam's normalisation
  would rescale). The detector's learning rate warms up linearly from a third over
  ``warmup_iters`` and then stays constant; the discriminator's stays constant
  (official schedule: the warm-up hook drives the detector's optimiser only). Gradient
  norms are clipped.
- **Bad steps.** A step with a non-finite loss is skipped and counted. The run fails
  when more than ``max_bad_steps`` happen in a row.
- **Checkpoints.** Model, optimisers, step and random states are written atomically
  every ``checkpoint_every`` steps. A re-run with the same configuration resumes from
  the last one. The data stream is replayed up to that step, so the resumed run
  continues as the interrupted one would have.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from pipelines.augment import crop_person, flip_sample, random_person
from pipelines.mixture import mixture
from pipelines.radam import RAdam
from pipelines.shards import BODY_ARRAYS, SHARDS
from pipelines.transforms import collate, to_network_input

__all__ = ["TrainParams", "PhaseParams", "batches", "withheld_3d", "without_3d", "on_device",
           "Checkpointer", "lr_factor", "build_optimizers", "set_learning_rates",
           "setup_distributed", "split_losses", "config_hash"]


@dataclass(frozen=True)
class TrainParams:
    """``train.common`` section."""

    device: str  # auto | cpu | cuda
    input_height: int  # network input size (whole images)
    input_width: int
    weight_decay: float
    grad_clip: float
    warmup_iters: int
    discriminator_lr: float
    prior: str  # adversarial prior's real poses: "synthetic" or an .npz path (pipelines.priors)
    colour_noise: float  # per-channel scale in [1 - n, 1 + n]
    flip_probability: float  # horizontal flips (official 0.5)
    crop_scale: float  # pretraining crops: square of this x the box's longer side (official 1.2)
    crop_others: float | None  # crops also annotate people this much inside (None: official)
    crop_partial_others: str  # the others partly inside a crop: background (official) | ignore
    min_box_size: float  # proposals this small or smaller (pixels) supervise nothing (official 5)
    log_every: int
    checkpoint_every: int
    max_bad_steps: int


@dataclass(frozen=True)
class PhaseParams:
    """``train.<phase>`` section."""

    iters: int
    lr: float
    batch_size: int  # images per process (global batch = batch_size x processes)
    adversarial: bool
    keypoint_criterion: str  # l1 | mse
    datasets: dict[str, float]  # training dataset -> mixture weight
    crop_size: int | None  # None: whole images; else the official single-person crops
    smpl_rois_per_image: int | None  # None: model.smpl_rois_per_image; else this phase's cap
    withhold_3d: float  # share of the multi-person images trained on their 2D annotations
                        # only (0: none; 1: all, as in the official data: withheld_3d)

    def __post_init__(self) -> None:
        if not 0.0 <= self.withhold_3d <= 1.0:
            raise ValueError(f"train.<phase>.withhold_3d: expected a share in [0, 1], got "
                             f"{self.withhold_3d}")


ROOT = Path(__file__).resolve().parents[1]
# The code a training phase runs: its code dependencies in dvc.yaml (a test keeps the two
# lists equal), so a checkpoint's identity changes exactly when DVC re-runs the phase.
# Of ops/, only the modules training imports (a test checks): the evaluation's metrics,
# detection AP and bootstrap do not re-run training.
CODE = ("stages/train.py", "stages/common.py", "model", "ops/__init__.py", "ops/_warp.py",
        "ops/collision.py", "ops/depth_order.py", "ops/geometry.py", "ops/max_pool.py",
        "ops/raster.py", "ops/roi_align.py", "ops/sdf.py", "pipelines/shards",
        "pipelines/transforms.py", "pipelines/training.py", "pipelines/priors.py",
        "pipelines/synthetic/poses.py", "pipelines/mixture.py", "pipelines/augment.py",
        "pipelines/determinism.py")


def config_hash(*parts) -> str:
    """Identifies a phase's configuration and code, so a checkpoint only resumes the
    very same run (not one made by older code or other parameters)."""
    blob = json.dumps([asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts],
                      sort_keys=True, default=str).encode()
    digest = hashlib.sha256(blob)
    for path in sorted(f for entry in CODE for f in
                       ([ROOT / entry] if entry.endswith(".py") else (ROOT / entry).rglob("*.py"))):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def setup_distributed(device: str) -> tuple[int, int, torch.device]:
    """``(rank, world size, device)``; joins the process group when run by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world_size, torch.device("cuda", local)
    return rank, world_size, torch.device("cpu")


def batches(common: TrainParams, phase: PhaseParams, seed: int, rank: int = 0, skip: int = 0,
            rotation_mirror: list[int] | None = None,
            body_model: str = "anny") -> Iterator[tuple]:
    """Endless network batches ``(images, targets, keys)`` of one phase. The first
    ``skip`` batches are read but not returned, so a resumed run continues where the
    interrupted one was. ``rotation_mirror``: the body model's rotation partners, for
    flipping samples with body parameters. Body parameters of another body model than
    ``body_model`` (Anny's, in the synthetic data, when training SMPL) are dropped."""
    stream = mixture(phase.datasets, seed, rank, SHARDS / "train")
    size = ((phase.crop_size, phase.crop_size) if phase.crop_size
            else (common.input_height, common.input_width))
    for count in itertools.count():
        samples = [next(stream) for _ in range(phase.batch_size)]
        if count < skip:
            continue
        rng = np.random.default_rng([seed + rank, count])  # this batch's augmentations
        inputs = []
        for sample in samples:
            sample = _own_body(sample, body_model)
            if withheld_3d(sample, phase.withhold_3d):
                sample = without_3d(sample)
            sample = _augment(sample, common, phase, rng, rotation_mirror)
            inputs.append(to_network_input(sample, *size, common.colour_noise, rng))
        yield collate(inputs)


def on_device(images: torch.Tensor, targets: list[dict[str, torch.Tensor]],
              device: torch.device | str) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """A batch of :func:`batches` (its images and per-image target dicts) on ``device``."""
    return images.to(device), [{k: v.to(device) for k, v in t.items()} for t in targets]


def _own_body(sample: dict, body_model: str) -> dict:
    """The sample without body parameters made for another body model."""
    if "rotmats" not in sample["target"] or sample["meta"].get("body_model") == body_model:
        return sample
    target = {k: v for k, v in sample["target"].items() if k not in BODY_ARRAYS}
    return {**sample, "target": target}


def withheld_3d(sample: dict, share: float) -> bool:
    """Whether a multi-person sample is one of the ``share`` of them trained on 2D
    annotations only. Decided by its key, so it is the same sample in every epoch, on
    every rank and after a resume, as an image of a 2D-only dataset would be."""
    if share <= 0 or len(sample["target"]["boxes"]) < 2:
        return False
    draw = int.from_bytes(hashlib.sha256(sample["key"].encode()).digest()[:8], "big")
    return draw / 2**64 < share


def without_3d(sample: dict) -> dict:
    """The sample with its 2D annotations only (boxes, keypoints, masks): no 3D joints
    and no body parameters, as the official multi-person training sets (COCO,
    PoseTrack) have."""
    target = {k: v for k, v in sample["target"].items()
              if k != "kp3d" and k not in BODY_ARRAYS}
    meta = {**sample["meta"], "has_kp3d": False, "has_body": False}
    return {**sample, "meta": meta, "target": target}


def _augment(sample: dict, common: TrainParams, phase: PhaseParams, rng: np.random.Generator,
             rotation_mirror: list[int] | None) -> dict:
    """Flip (with ``flip_probability``) and crop one sample (in a phase with crops);
    no random draw is made for an augmentation that is off."""
    if common.flip_probability > 0 and rng.random() < common.flip_probability:
        sample = flip_sample(sample, rotation_mirror)
    if phase.crop_size:
        person = random_person(sample, rng)
        if person is not None:
            sample = crop_person(sample, person, phase.crop_size, common.crop_scale,
                                 common.crop_others, common.crop_partial_others)
    return sample


def lr_factor(step: int, warmup_iters: int) -> float:
    """Linear warm-up from 1/3 to 1 over ``warmup_iters``, then constant."""
    if warmup_iters <= 0 or step >= warmup_iters:
        return 1.0
    return 1 / 3 + (2 / 3) * step / warmup_iters


def build_optimizers(network: torch.nn.Module, discriminator: torch.nn.Module, lr: float,
                     discriminator_lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
    """[detector's RAdam, discriminator's RAdam], both with decoupled weight decay (as the
    official RAdam: the decay is applied to the weights, not added to the gradient), on
    torch's fused kernel (:mod:`pipelines.radam`)."""
    return [RAdam(module.parameters(), lr=rate, weight_decay=weight_decay)
            for module, rate in ((network, lr), (discriminator, discriminator_lr))]


def set_learning_rates(optimizers: list[torch.optim.Optimizer], base_lrs: list[float],
                       step: int, warmup_iters: int) -> None:
    """The detector's (first) optimiser warms up (:func:`lr_factor`); the others keep
    their base rate."""
    for index, (optimizer, base) in enumerate(zip(optimizers, base_lrs, strict=True)):
        factor = lr_factor(step, warmup_iters) if index == 0 else 1.0
        for group in optimizer.param_groups:
            group["lr"] = base * factor


def split_losses(losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(detector total, discriminator total): keys starting with ``adv_`` train the
    discriminator, all the others the detector."""
    detector = sum((v for k, v in losses.items() if not k.startswith("adv_")), torch.tensor(0.0))
    adversary = sum((v for k, v in losses.items() if k.startswith("adv_")), torch.tensor(0.0))
    return detector, adversary


class Checkpointer:
    """Atomic save / resume of a phase's training state in ``folder/checkpoint.pt``."""

    def __init__(self, folder: Path, config_id: str) -> None:
        self.path, self.config_id = Path(folder) / "checkpoint.pt", config_id

    def save(self, step: int, network: torch.nn.Module, discriminator: torch.nn.Module,
             optimizers: list, prior_rng_state: dict, counts: dict[str, int]) -> None:
        """``counts``: the run's step counters so far (skipped steps, steps a scene loss
        acted on), so that a resumed run logs the same totals as an uninterrupted one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {"config": self.config_id, "step": step, "network": network.state_dict(),
                 "discriminator": discriminator.state_dict(),
                 "optimizers": [o.state_dict() for o in optimizers],
                 "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
                 "prior_rng": prior_rng_state, "counts": dict(counts)}
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)

    def load(self) -> dict | None:
        """The saved state if it belongs to this configuration, else ``None``."""
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if state.get("config") != self.config_id:
            print(f"{self.path}: checkpoint of another configuration, starting afresh")
            return None
        return state
