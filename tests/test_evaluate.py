"""Evaluation stage logic and the tables, on tiny data."""

import json
import sys

import pytest
import torch

from model.body import load_body_model
from pipelines.shards import read_shards
from pipelines.transforms import to_network_input
from stages.evaluate import Accumulator, EvalParams, evaluate_image, summarise
from stages.prepare import prepare
from stages.tables import main as tables_main
from tests.synthetic_params import tiny_params

CONFIG = EvalParams(models=("full",), benchmarks=("synth_multi",), score_threshold=0.05,
                    collision_score_threshold=0.5, max_failed_fraction=0.0)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval") / "synth_multi"
    prepare("synth_multi", root, tiny_params(size=4))
    return [{**s, **to_network_input(s, 80, 128)} for s in read_shards(root)]


class GroundTruthModel:
    """Returns the annotated people as detections (score 1), plus one low-score decoy."""

    def __call__(self, images, intrinsics):
        t = self.target
        people = len(t["boxes"])
        decoy = {"boxes": t["boxes"][:1] + 1, "scores": torch.tensor([0.01]),
                 "rotmats": t["rotmats"][:1], "shape": t["shape"][:1],
                 "cam": torch.zeros(1, 3), "transl": t["transl"][:1] + 5}
        return [{"boxes": torch.cat([t["boxes"], decoy["boxes"]]),
                 "scores": torch.cat([torch.ones(people), decoy["scores"]]),
                 "rotmats": torch.cat([t["rotmats"], decoy["rotmats"]]),
                 "shape": torch.cat([t["shape"], decoy["shape"]]),
                 "cam": torch.zeros(people + 1, 3),
                 "transl": torch.cat([t["transl"], decoy["transl"]])}]


def test_ground_truth_as_prediction_scores_perfectly(samples):
    body = load_body_model("anny")
    model, totals = GroundTruthModel(), Accumulator()
    for sample in samples:
        model.target = sample["target"]
        evaluate_image(sample, model, body, CONFIG, totals)
    result = summarise(totals, [], "synth_multi", "oracle", "anny")
    people = sum(len(s["target"]["boxes"]) for s in samples)
    assert result["images"] == 4 and result["people"] == people
    assert result["detections"] == people  # the 0.01 decoys are below the threshold
    assert result["mpjpe_mm"] < 1e-3 and result["pa_mpjpe_mm"] < 1e-2
    assert result["pck_all"] == 100.0 and result["pck_matched"] == 100.0
    assert result["matched_people"] == people
    assert result["depth_order_acc"] == 100.0 and result["depth_pairs"] > 0
    assert result["collision_frames"] == 0  # the ground truth never interpenetrates
    assert result["collision_frames_matched"] == 0


def test_missed_people_count_in_all_but_not_in_matched(samples):
    body = load_body_model("anny")
    model, totals = GroundTruthModel(), Accumulator()
    for sample in samples:
        target = dict(sample["target"])
        for key in ("boxes", "rotmats", "shape", "transl"):
            target[key] = target[key][:1]  # only the first person is "detected"
        model.target = target
        evaluate_image(sample, model, body, CONFIG, totals)
    result = summarise(totals, [], "synth_multi", "oracle", "anny")
    people = sum(len(s["target"]["boxes"]) for s in samples)
    assert result["pck_matched"] == 100.0
    assert result["pck_all"] == pytest.approx(100.0 * 4 / people, abs=1e-3)


def test_tables_show_ours_beside_the_paper_and_na_for_missing(tmp_path, monkeypatch):
    (tmp_path / "metrics" / "synth_multi").mkdir(parents=True)
    result = {"benchmark": "synth_multi", "model": "full", "body_model": "anny",
              "images": 48, "pck_all": 55.5, "pck_matched": 60.25, "collision_frames": 3,
              "depth_order_acc": 88.0}
    (tmp_path / "metrics" / "synth_multi" / "full.json").write_text(json.dumps(result))
    monkeypatch.setattr(sys, "argv", ["tables", "--metrics", str(tmp_path / "metrics"),
                                      "--out", str(tmp_path / "r")])
    tables_main()
    table3 = (tmp_path / "r" / "table3.md").read_text()
    assert "paper: Ours full (paper)" in table3 and "69.12" in table3
    assert "ours: full (L_P + L_D)" in table3 and "55.5" in table3 and "60.25" in table3
    assert "ours: baseline" in table3 and "n/a" in table3
    assert "synth_multi (48 images)" in table3 and "body model anny" in table3
    for name in ("table1", "table2", "table4", "table5"):
        assert (tmp_path / "r" / f"{name}.csv").is_file()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["synth_multi.full.pck_all"] == 55.5


def test_scene_figure_marks_interpenetration_in_red():
    import numpy as np
    import trimesh

    from stages.figures import colliding_vertices, scene_figure

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    body = torch.tensor(sphere.vertices, dtype=torch.float32)
    faces = torch.tensor(sphere.faces)
    def pair(gap):
        return torch.stack([body + torch.tensor([-gap, 0.0, 4.0]),
                            body + torch.tensor([gap, 0.0, 4.0])])

    apart, inside = pair(0.6), pair(0.2)
    assert not colliding_vertices(apart, faces).any() and colliding_vertices(inside, faces).any()
    K = torch.tensor([[60.0, 0.0, 40.0], [0.0, 60.0, 30.0], [0.0, 0.0, 1.0]])
    picture = scene_figure(np.zeros((60, 80, 3), dtype=np.uint8), K,
                           [("baseline", inside), ("full", apart)], faces)
    pixels = np.asarray(picture).astype(int)
    assert picture.size == (3 * 80, 2 * 60)
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    assert red[:60].any() and not red[60:].any()  # only the colliding row shows red
