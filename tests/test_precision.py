"""bfloat16 convolutions (model.precision): float32 where precision matters, close to the
float32 network elsewhere, and a clear error for an unknown precision."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.precision import reduced_precision
from model.rcnn import ModelConfig, build_model
from stages.common import typed
from tests.training_setup import tiny_training_params


@pytest.fixture(scope="module")
def networks(anny_body):
    config = typed(ModelConfig, tiny_training_params(), "model")
    fp32 = build_model(dataclasses.replace(config, precision="fp32"), anny_body, 0).eval()
    bf16 = build_model(dataclasses.replace(config, precision="bf16"), anny_body, 0).eval()
    bf16.load_state_dict(fp32.state_dict())
    return fp32, bf16


def test_bf16_backbone_features_are_float32_and_close(networks):
    fp32, bf16 = networks
    images = torch.rand(1, 3, 80, 128, generator=torch.Generator().manual_seed(3))
    normalised = (images - fp32.mean) / fp32.std
    reference = fp32.backbone(normalised)
    with reduced_precision("bf16", "cpu"):
        reduced = bf16.backbone(normalised)
    for name, value in reference.items():
        assert reduced[name].dtype == torch.bfloat16, name  # the reduced path really ran
        low = reduced[name].float()
        # bf16 keeps 8 bits of mantissa: about 1 % relative error per operation
        scale = value.abs().mean()
        assert (low - value).abs().mean() < 0.05 * scale, name
    detections = bf16(images, intrinsics=[torch.eye(3)])
    for key in ("boxes", "scores", "rotmats", "shape", "cam", "transl"):
        assert detections[0][key].dtype == torch.float32, key


def test_bf16_smpl_head_is_close_to_float32(networks):
    fp32, bf16 = networks
    features = torch.randn(5, fp32.backbone.out_channels, 14, 14,
                           generator=torch.Generator().manual_seed(4))
    reference = fp32.roi_heads.smpl_head(features)
    reduced = bf16.roi_heads.smpl_head(features)
    for key in ("rotmats", "shape", "cam"):
        assert reduced[key].dtype == torch.float32
        torch.testing.assert_close(reduced[key], reference[key], atol=0.05, rtol=0.05)


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="model.precision"):
        reduced_precision("fp8", "cpu")
