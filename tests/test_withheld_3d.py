"""Multi-person images trained on 2D annotations only (``train.<phase>.withhold_3d``): which
samples lose their 3D, what they keep, and that the batches are otherwise unchanged."""

from dataclasses import replace

import pytest
import torch

from pipelines.training import PhaseParams, TrainParams, batches, withheld_3d, without_3d
from stages.common import typed
from tests.training_setup import prepare_tiny_shards, tiny_model, tiny_training_params

THREE_D = ("kp3d", "rotmats", "shape", "transl", "has_body")


def fake(key: str, people: int) -> dict:
    return {"key": key, "target": {"boxes": torch.zeros(people, 4)}, "meta": {}}


@pytest.mark.parametrize("share", [0.0, 0.3, 0.7, 1.0])
def test_the_share_of_multi_person_samples_withheld_follows_the_setting(share):
    keys = [f"synth_train-train-{i:06d}" for i in range(4000)]
    chosen = [withheld_3d(fake(key, 3), share) for key in keys]
    assert sum(chosen) / len(keys) == pytest.approx(share, abs=0.025)
    assert chosen == [withheld_3d(fake(key, 2), share) for key in keys]  # by key alone
    assert not any(withheld_3d(fake(key, 1), share) for key in keys)  # single people keep it


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("withheld")
    prepare_tiny_shards(root, tiny_training_params())
    return root


def first_batches(params: dict, share: float, count: int = 2) -> list[tuple]:
    common = typed(TrainParams, params, "train.common")
    phase = replace(typed(PhaseParams, params, "train.finetune"), withhold_3d=share)
    stream = batches(common, phase, seed=0)
    return [next(stream) for _ in range(count)]


def test_withheld_images_keep_their_2d_annotations_and_pixels(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    params = tiny_training_params()
    kept, withheld = first_batches(params, 0.0), first_batches(params, 1.0)
    multi = 0
    for (images, targets, keys), (images_2d, targets_2d, keys_2d) in zip(kept, withheld,
                                                                         strict=True):
        assert keys == keys_2d
        torch.testing.assert_close(images_2d, images, rtol=0, atol=0)  # same colour noise
        for target, target_2d in zip(targets, targets_2d, strict=True):
            assert set(THREE_D) <= set(target)
            lost = set(target) - set(target_2d)
            if len(target["boxes"]) > 1:
                multi += 1
                assert lost == set(THREE_D)
            else:
                assert not lost
            for name, value in target_2d.items():  # boxes, keypoints, K, masks
                torch.testing.assert_close(value, target[name], rtol=0, atol=0)
    assert multi > 0  # the tiny data has multi-person images


def test_a_withheld_image_is_supervised_in_2d_only(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    params = tiny_training_params()
    images, targets, _ = first_batches(params, 1.0, count=1)[0]
    multi = [i for i, t in enumerate(targets) if len(t["boxes"]) > 1]
    assert multi
    images, targets = images[multi], [targets[i] for i in multi]
    model = tiny_model(params, variant="full", phase="finetune").train()
    losses = model(images, targets)
    for name in ("keypoints_3d", "rotmats", "shape", "vertices"):
        assert losses[f"loss_{name}"].item() == 0.0
    assert losses["loss_keypoints_2d"].item() > 0
    sum(v for k, v in losses.items() if not k.startswith("adv_")).backward()
    gradients = [p.grad for p in model.parameters() if p.grad is not None]
    assert gradients and all(g.isfinite().all() for g in gradients)


def test_without_3d_says_so_in_the_meta():
    sample = {"key": "k", "meta": {"has_kp3d": True, "has_body": True, "has_masks": True},
              "target": {"boxes": torch.zeros(2, 4), "kp3d": torch.zeros(2, 17, 4)}}
    stripped = without_3d(sample)
    assert stripped["meta"] == {"has_kp3d": False, "has_body": False, "has_masks": True}
    assert set(stripped["target"]) == {"boxes"} and "kp3d" in sample["target"]


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_share_outside_0_1_is_an_error(share):
    params = tiny_training_params()
    params["train"]["finetune"]["withhold_3d"] = share
    with pytest.raises(ValueError, match=r"withhold_3d: expected a share in \[0, 1\]"):
        typed(PhaseParams, params, "train.finetune")
