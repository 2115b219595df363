"""`crmh predict` and the Predictor API: the same predictions as the evaluation, files
that open, images as the user sees them, and bad inputs counted."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
import trimesh
import yaml
from PIL import Image

from crmh.cli import main as crmh
from crmh.images import BadImage, load_image
from crmh.predictor import Predictor
from model.discriminator import build_discriminator
from model.io import load_network, save_model, write_atomically
from model.rcnn import ModelConfig, build_model
from pipelines.evaluation import EvalParams
from pipelines.refine import RefineConfig
from pipelines.refining_network import RefiningNetwork
from pipelines.shards import read_shards
from pipelines.transforms import to_network_input
from stages.common import typed
from stages.evaluate import evaluate_sample, load_predictor
from stages.prepare import prepare
from stages.refine_model import refined_model
from tests.training_setup import tiny_training_params

SIZE = (80, 128)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, anny_body):
    """An untrained tiny network: it detects plenty (scores near 0.5), which is all
    these tests need."""
    params = tiny_training_params()
    network = build_model(typed(ModelConfig, params, "model"), anny_body, seed=0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(path, network, build_discriminator(anny_body.num_joints, anny_body.shape_dim, 1),
               typed(ModelConfig, params, "model"), "anny", SIZE)
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict") / "synth_multi"
    prepare("synth_multi", root, tiny_training_params())
    return next(iter(read_shards(root)))


@pytest.fixture
def picture(sample, tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(sample["image"].permute(1, 2, 0).numpy()).save(path)
    return path


def test_cli_predictions_equal_the_evaluation(model_file, sample, picture, tmp_path, anny_body):
    focal = float(sample["target"]["K"][0, 0])
    status = crmh(["predict", str(picture), "--model", str(model_file), "--out",
                   str(tmp_path / "out"), "--focal", str(focal), "--score", "0.05",
                   "--formats", "npz", "--device", "cpu"])  # the evaluation's device
    assert status == 0
    saved = np.load(tmp_path / "out" / "scene.npz")
    network, _ = load_network(model_file, anny_body)
    network_input = to_network_input(sample, *SIZE)
    with torch.no_grad():
        detections = network(network_input["image"][None],
                             intrinsics=[network_input["target"]["K"]])[0]
    keep = detections["scores"] >= 0.05
    assert keep.sum() > 0 and len(saved["scores"]) == int(keep.sum())
    np.testing.assert_allclose(saved["scores"], detections["scores"][keep].numpy(), atol=1e-6)
    np.testing.assert_allclose(saved["transl"], detections["transl"][keep].numpy(), atol=1e-5)
    np.testing.assert_allclose(saved["boxes"], detections["boxes"][keep].numpy(), atol=1e-4)
    np.testing.assert_allclose(saved["K"], sample["target"]["K"].numpy(), atol=1e-6)
    assert str(saved["body_model"]) == "anny" and len(str(saved["model_sha256"])) == 64
    assert saved["joints_h36m17"].shape == (len(saved["scores"]), 17, 3)


def test_glb_loads_with_one_mesh_per_person(model_file, picture, tmp_path):
    crmh(["predict", str(picture), "--model", str(model_file), "--out", str(tmp_path / "out"),
          "--score", "0.3", "--formats", "glb", "npz", "obj", "overlay", "views"])
    people = len(np.load(tmp_path / "out" / "scene.npz")["scores"])
    scene = trimesh.load(tmp_path / "out" / "scene.glb")
    assert len(scene.geometry) == people > 0
    assert all(len(mesh.vertices) == 13718 for mesh in scene.geometry.values())
    assert set(scene.graph.nodes_geometry) == {f"person_{i}" for i in range(people)}
    assert len(list((tmp_path / "out").glob("scene_person*.obj"))) == people
    assert Image.open(tmp_path / "out" / "scene_overlay.png").size == (128, 80)
    assert Image.open(tmp_path / "out" / "scene_views.png").size == (3 * 128, 80)
    line = json.loads((tmp_path / "out" / "predictions.jsonl").read_text())
    assert line["people"] == people


def test_exif_rotation_rgba_and_16_bit_are_read_as_seen(sample, tmp_path, model_file):
    upright = sample["image"].permute(1, 2, 0).numpy()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": stored rotated the other way
    Image.fromarray(np.rot90(upright, k=1).copy()).save(tmp_path / "rotated.png", exif=exif)
    assert np.array_equal(load_image(tmp_path / "rotated.png"), upright)
    predictor = Predictor(model_file, score_threshold=0.05)
    a, b = predictor.predict(upright), predictor.predict(tmp_path / "rotated.png")
    assert [p.score for p in a.people] == [p.score for p in b.people]
    rgba = np.dstack([upright, np.full(upright.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # a transparent corner shows the white behind it
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    seen = load_image(tmp_path / "rgba.png")
    assert (seen[:10, :10] == 255).all() and np.array_equal(seen[10:], upright[10:])
    deep = (upright[..., 0].astype(np.uint16) * 257)
    Image.fromarray(deep).save(tmp_path / "deep.png")  # 16-bit grayscale
    assert np.array_equal(load_image(tmp_path / "deep.png")[..., 0], upright[..., 0])


def test_folder_run_counts_bad_files_and_writes_one_set_per_image(picture, tmp_path, model_file):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for name in ("a.png", "nested/b.png"):
        (folder / name).write_bytes(picture.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    (folder / "cut.png").write_bytes(picture.read_bytes()[:200])
    (folder / "notes.txt").write_text("not an image suffix: not an input")
    status = crmh(["predict", str(folder), "--model", str(model_file), "--out",
                   str(tmp_path / "out"), "--formats", "npz", "--batch", "2"])
    assert status == 0
    assert (tmp_path / "out" / "a.npz").is_file() and (tmp_path / "out/nested/b.npz").is_file()
    lines = [json.loads(line) for line in (tmp_path / "out/predictions.jsonl").read_text()
             .splitlines()]
    errors = sorted(line["image"].rsplit("/", 1)[-1] for line in lines if "error" in line)
    assert errors == ["broken.jpg", "cut.png"] and len(lines) == 4
    status = crmh(["predict", str(folder / "broken.jpg"), "--model", str(model_file), "--out",
                   str(tmp_path / "out2")])
    assert status == 1  # every input failed
    with pytest.raises(BadImage, match="broken.jpg: not a readable image"):
        load_image(folder / "broken.jpg")


def test_wrong_model_files_are_named(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not a crmh model file"):
        Predictor(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt: no model file"):
        Predictor(tmp_path / "missing.pt")


QUICK_REFINE = RefineConfig(order_steps=2, order_lr=0.05, separate_steps=2, separate_lr=0.02,
                            steps=2, lr=0.01, collision=1.0,
                            depth_order=100.0, rank=10.0, keypoints_2d=10.0, depth=1.0,
                            pose=1.0,
                            prior=0.01, sigma=0.2, grid=16, render_scale=0.5,
                            order_margin=0.05, order_tolerance=0.1,
                            collision_tolerance=1e-4, min_score=0.5)


def test_a_refined_model_file_refines_in_predict_and_in_evaluation(
        model_file, sample, picture, tmp_path, anny_body, monkeypatch):
    refined = tmp_path / "models" / "full_refine" / "model.pt"
    write_atomically(refined, refined_model(model_file, QUICK_REFINE))
    assert isinstance(Predictor(refined).network, RefiningNetwork)  # as the file says
    assert not isinstance(Predictor(refined, refine=False).network, RefiningNetwork)
    assert not isinstance(Predictor(model_file).network, RefiningNetwork)
    with pytest.raises(ValueError, match="no refine configuration"):
        Predictor(model_file, refine=True)
    # --refine on a plain model file takes the refine section of --params
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"refine": {"base": "full", **asdict(QUICK_REFINE)}}))
    assert crmh(["predict", str(picture), "--model", str(model_file), "--out",
                 str(tmp_path / "out"), "--refine", "--params", str(params),
                 "--formats", "npz"]) == 0
    # a refine section written by an older version is refused, naming the file and the key
    stale = tmp_path / "stale.pt"
    state = refined_model(model_file, QUICK_REFINE)
    del state["refine"]["order_tolerance"]
    write_atomically(stale, state)
    with pytest.raises(SystemExit, match=r"stale.pt: .*lacks \['order_tolerance'\]"):
        crmh(["predict", str(picture), "--model", str(stale), "--out", str(tmp_path / "o")])
    # the evaluation stage loads it as the network followed by refinement
    monkeypatch.chdir(tmp_path)
    predictor = load_predictor("full_refine", anny_body)
    assert isinstance(predictor, RefiningNetwork)
    config = typed(EvalParams, tiny_training_params(), "eval")
    record = evaluate_sample(sample, predictor, anny_body, config, SIZE, synthetic=True)
    phases = (QUICK_REFINE.order_steps, QUICK_REFINE.separate_steps, QUICK_REFINE.steps)
    assert 0 <= record["refine_steps"] <= sum(phases)
