"""Helpers for the training tests: a tiny profile, prepared shards and model pieces."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from model.body import load_body_model
from model.discriminator import build_discriminator
from model.rcnn import ModelConfig, build_model
from model.smpl_criterion import SMPLCriterion
from pipelines.synthetic.poses import SyntheticPrior
from pipelines.training import PhaseParams
from stages.common import typed
from stages.prepare import prepare
from stages.train import criterion_config
from tests.synthetic_params import tiny_params


def tiny_training_params(iters: int = 4) -> dict:
    params = tiny_params(size=4)
    params["datasets"] = {"synth_train": "train"}
    params["model"].update(anchor_sizes=[8, 16, 32, 64, 128], rpn_pre_nms_train=200,
                           rpn_post_nms_train=100, rpn_pre_nms_test=100, rpn_post_nms_test=50,
                           box_batch_size_per_image=32, dropout=0.0,
                           precision="fp32")  # exact gradient comparisons; bf16: test_precision
    params["train"]["common"].update(input_height=80, input_width=128, warmup_iters=2,
                                     log_every=1, checkpoint_every=2,
                                     device="cpu")  # exact resume and gloo DDP; CUDA: its test
    for phase in ("pretrain", "baseline", "finetune"):
        params["train"][phase].update(iters=iters, batch_size=2)
    for variant in params["losses"].values():
        variant["grid"] = 16
    return params


def prepare_tiny_shards(root: Path, params: dict) -> None:
    """``root/data/shards/train/synth_train`` with 4 images."""
    prepare("synth_train", root / "data" / "shards" / "train" / "synth_train", params)


def deterministic_sampling(monkeypatch) -> None:
    """Anchor and proposal sampling take the first candidates instead of random ones,
    so two runs that split a batch differently sample the same boxes."""
    monkeypatch.setattr(torch, "randperm",
                        lambda n, device=None, **_: torch.arange(n, device=device))


class Scored(nn.Module):
    """The network and its criterion in one module, as a test wants it:
    ``scored(images, targets) -> dict of all losses``."""

    def __init__(self, network: nn.Module, criterion: SMPLCriterion) -> None:
        super().__init__()
        self.network, self.criterion = network, criterion

    def forward(self, images, targets):
        losses, branch = self.network(images, targets)
        return {**losses, **self.criterion(branch, targets, tuple(images.shape[-2:]))}


def tiny_model(params: dict, variant: str | None = None, phase: str = "pretrain") -> Scored:
    body = load_body_model("anny")
    network = build_model(typed(ModelConfig, params, "model"), body, seed=0)
    discriminator = build_discriminator(body.num_joints, body.shape_dim, seed=1)
    config = criterion_config(params, typed(PhaseParams, params, f"train.{phase}"), variant)
    return Scored(network, SMPLCriterion(body, discriminator, SyntheticPrior(1), config))
