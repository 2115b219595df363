"""bfloat16 convolutions (model.precision): float32 where precision matters, close to the
float32 network elsewhere, and a clear error for an unknown precision."""

from __future__ import annotations

import contextlib
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
    with torch.no_grad():  # as every inference path runs it (evaluation, figures, predict)
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


@contextlib.contextmanager
def _output_dtypes(module: torch.nn.Module):
    """Records the dtypes ``module``'s layers compute in, while open."""
    seen: list[torch.dtype] = []
    hooks = [layer.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
             for layer in module.modules()
             if isinstance(layer, torch.nn.Conv2d | torch.nn.Linear)]
    yield seen
    for hook in hooks:
        hook.remove()


def test_bf16_rpn_and_box_heads_return_float32_close_to_float32(networks):
    fp32, bf16 = networks
    generator = torch.Generator().manual_seed(5)
    channels = fp32.backbone.out_channels
    levels = [torch.randn(2, channels, size, size + 3, generator=generator) for size in (16, 8)]
    with _output_dtypes(bf16.rpn.head) as seen:
        reference, reduced = fp32.rpn.head(levels), bf16.rpn.head(levels)
    assert seen and set(seen) == {torch.bfloat16}  # the reduced path really ran
    for expected, got in zip([*reference[0], *reference[1]], [*reduced[0], *reduced[1]],
                             strict=True):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, atol=0.05, rtol=0.05)
    pooled = torch.randn(6, channels * 49, generator=generator)
    with _output_dtypes(bf16.roi_heads.box_head) as seen:
        reference, reduced = fp32.roi_heads.box_head(pooled), bf16.roi_heads.box_head(pooled)
    assert seen and set(seen) == {torch.bfloat16} and reduced.dtype == torch.float32
    torch.testing.assert_close(reduced, reference, atol=0.05, rtol=0.05)


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="model.precision"):
        reduced_precision("fp8", "cpu")
