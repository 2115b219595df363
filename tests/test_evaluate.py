"""Evaluation stage logic and the tables, on tiny data."""

import json
import sys
from collections import defaultdict

import pandas as pd
import pytest
import torch

import pipelines.evaluation as evaluation
from ops.metrics import H36M_EVAL_JOINTS, mpjpe, pa_mpjpe
from pipelines.evaluation import (
    EvalParams,
    action_labels,
    find_records,
    image_values,
    metrics_path,
    records_path,
    summarise,
)
from pipelines.synthetic.poses import ACTIVITIES
from stages.evaluate import evaluate_samples, mean_pose_detections
from stages.tables import load_metrics, paired_difference
from stages.tables import main as tables_main
from tests.test_protocols import PROTOCOL, JointsBody, oracle

CONFIG = EvalParams(models=("full",), benchmarks=("synth_multi",), score_threshold=0.05,
                    collision_score_threshold=0.5, match_threshold_px=40.0,
                    synthetic_match_focal=1500.0, bootstrap_replicates=200,
                    bootstrap_block_frames=100, max_failed_fraction=0.0,
                    stands_for={"synth_multi": "mupots"})
SIZE = (80, 128)


# Short names for the session's fixtures (conftest.py): the tiny benchmark, and the one
# Anny model every test shares (a second construction would repeat its set-up).
@pytest.fixture(scope="module")
def samples(tiny_synth_multi):
    return tiny_synth_multi


@pytest.fixture(scope="module")
def body(anny_body):
    return anny_body


class GroundTruthModel:
    """Returns the annotated people as detections (score 1), plus one low-score decoy.
    ``people`` limits how many are "detected"; ``poison`` makes their values NaN."""

    def __init__(self, samples, people=None, poison=()):
        self.targets = {s["key"]: s["target"] for s in samples}
        self.people, self.poison, self.key = people, set(poison), None

    def __call__(self, images, intrinsics):
        t = self.targets[self.key]
        n = self.people or len(t["boxes"])
        transl = t["transl"][:n].clone()
        if self.key in self.poison:
            transl[0, 0] = float("nan")
        decoy = {"boxes": t["boxes"][:1] + 1, "scores": torch.tensor([0.01]),
                 "rotmats": t["rotmats"][:1], "shape": t["shape"][:1],
                 "cam": torch.zeros(1, 3), "transl": t["transl"][:1] + 5}
        return [{"boxes": torch.cat([t["boxes"][:n], decoy["boxes"]]),
                 "scores": torch.cat([torch.ones(n), decoy["scores"]]),
                 "rotmats": torch.cat([t["rotmats"][:n], decoy["rotmats"]]),
                 "shape": torch.cat([t["shape"][:n], decoy["shape"]]),
                 "cam": torch.zeros(n + 1, 3), "transl": torch.cat([transl, decoy["transl"]])}]


def run(samples, model, body):
    """evaluate_samples, with the model told which image it sees."""
    def tagged():
        for sample in samples:
            model.key = sample["key"]
            yield sample
    return evaluate_samples(tagged(), model, body, CONFIG, SIZE, synthetic=True)


def test_ground_truth_as_prediction_scores_perfectly(samples, body):
    records, failed = run(samples, GroundTruthModel(samples), body)
    result = summarise(records, 200, 0)
    people = sum(len(s["target"]["boxes"]) for s in samples)
    assert not failed and len(records) == 4 and sum(r["people"] for r in records) == people
    assert all("block" not in r for r in records)  # synthetic images are resampled alone
    assert sum(r["detections"] for r in records) == people  # decoys are below the threshold
    assert result["mpjpe_mm"] < 1e-3 and result["pa_mpjpe_mm"] < 1e-2
    assert result["pck_all"] == 100.0 and result["pck_matched"] == 100.0
    assert result["pck_all_lo"] == result["pck_all_hi"] == 100.0
    assert result["matched_share"] == 100.0
    assert result["depth_order_acc"] == 100.0
    assert result["collision_frames"] == 0  # the ground truth never interpenetrates
    assert result["collision_frames_matched"] == 0


def test_missed_people_count_in_all_but_not_in_matched(samples, body):
    records, _ = run(samples, GroundTruthModel(samples, people=1), body)
    result = summarise(records, 200, 0)
    people = sum(len(s["target"]["boxes"]) for s in samples)
    assert result["pck_matched"] == 100.0
    assert result["pck_all"] == pytest.approx(100.0 * 4 / people, abs=1e-3)
    assert result["pck_all"] < result["pck_matched"]


def test_a_failing_image_changes_nothing_but_the_failure_count(samples, body, monkeypatch):
    clean, _ = run(samples, GroundTruthModel(samples, people=1), body)
    original = evaluation.collision_volume
    calls = {"n": 0}

    def flaky(vertices, faces, grid_size=64):
        calls["n"] += 1
        if calls["n"] == 2:  # the second image's collision check
            raise RuntimeError("collision step failed")
        return original(vertices, faces, grid_size=grid_size)

    monkeypatch.setattr(evaluation, "collision_volume", flaky)
    records, failed = run(samples, GroundTruthModel(samples, people=1), body)
    assert [f["key"] for f in failed] == [samples[1]["key"]] and failed[0]["failed"] == "error"
    others = [r for r in clean if r["key"] != samples[1]["key"]]
    assert records == others
    assert summarise(records, 200, 0) == summarise(others, 200, 0)


def test_non_finite_prediction_fails_the_image_with_its_key(samples, body):
    model = GroundTruthModel(samples, poison=[samples[2]["key"]])
    records, failed = run(samples, model, body)
    assert failed == [{"key": samples[2]["key"], "failed": "non_finite_prediction",
                       "error": "PredictionError('non-finite predicted transl')"}]
    assert len(records) == 3


def test_mean_pose_reference_sits_at_the_true_root(samples, body):
    reference = {"kind": "mean_pose", "rotmats": torch.eye(3).expand(20, 3, 3).clone(),
                 "shape": torch.full((6,), 0.5)}
    target = samples[0]["target"]
    detections = mean_pose_detections(reference, target)
    assert torch.equal(detections["transl"], target["kp3d"][:, 0, :3])
    assert detections["rotmats"].shape == (len(target["boxes"]), 20, 3, 3)
    records, failed = evaluate_samples(samples, reference, body, CONFIG, SIZE, synthetic=True)
    result = summarise(records, 200, 0)
    assert not failed and result["depth_order_acc"] == 100.0  # true roots: true depths
    assert result["pck_all"] < 100.0


def test_action_labels_name_each_annotated_person():
    assert action_labels({"activities": ["sit", "walk"]}, 2) == ["sit", "walk"]
    assert action_labels({"action": "Directions_1"}, 1) == ["Directions"]  # take dropped
    assert action_labels({"action": "Walking 2"}, 2) == ["Walking", "Walking"]
    assert action_labels({"action": "WalkDog"}, 1) == ["WalkDog"]
    assert action_labels({"sequence": "TS1"}, 3) is None
    with pytest.raises(ValueError, match="3 activities .* 2 annotated people"):
        action_labels({"activities": ["sit", "walk", "stand"]}, 2)


def test_per_action_errors_are_those_of_each_actions_people(samples):
    """Each person's joints are moved by an amount that depends on its activity; the
    per-action values must equal the mean of that action's people's own errors,
    computed person by person (the reference), and add up to the overall values."""
    body, records = JointsBody(), []
    reference = defaultdict(lambda: [0.0, 0.0, 0])  # action -> MPJPE sum, PA sum, people
    for sample in samples:
        target = sample["target"]
        gt = target["kp3d"][..., :3]
        actions = action_labels(sample["meta"], len(gt))
        moved = gt.clone()
        for person, action in enumerate(actions):
            code = ACTIVITIES.index(action)
            moved[person, 2 + code, 0] += 0.04 * (1 + code)  # one joint, by action
            moved[person, 3 + code, 1] -= 0.02 * (1 + code)
            error = reference[action]
            error[0] += float(mpjpe(moved[person:person + 1], gt[person:person + 1]))
            joints = list(H36M_EVAL_JOINTS)
            error[1] += float(pa_mpjpe(moved[person:person + 1, joints],
                                       gt[person:person + 1, joints]))
            error[2] += 1
        pelvis = moved[:, 0]
        detections = {"boxes": target["boxes"], "scores": torch.ones(len(gt)),
                      "rotmats": torch.eye(3).expand(len(gt), 1, 3, 3),
                      "shape": (moved - pelvis[:, None]).flatten(1), "transl": pelvis}
        values = image_values(detections, target, target["K"], body, PROTOCOL, actions)
        for entry in ("mpjpe", "pa_mpjpe"):
            parts = [v for k, v in values.items() if k.startswith(f"{entry}@")]
            assert sum(p[0] for p in parts) == pytest.approx(values[entry][0])
            assert sum(p[1] for p in parts) == values[entry][1]
        records.append({"key": sample["key"], "group": "all", "values": values})
    assert len(reference) >= 2  # the tiny benchmark has people of several activities
    result = summarise(records, 200, 0)
    for action, (mpjpe_sum, pa_sum, people) in reference.items():
        assert result[f"people_action_{action}"] == people
        assert result[f"mpjpe_mm_action_{action}"] == pytest.approx(mpjpe_sum / people, abs=1e-3)
        assert result[f"pa_mpjpe_mm_action_{action}"] == pytest.approx(pa_sum / people, abs=1e-3)
        assert (result[f"mpjpe_mm_action_{action}_lo"] <= result[f"mpjpe_mm_action_{action}"]
                <= result[f"mpjpe_mm_action_{action}_hi"])
    means = {result[f"mpjpe_mm_action_{a}"] for a in reference}
    assert len(means) == len(reference)  # the actions' errors differ, as they were made to


def write_evaluation(root, benchmark: str, model: str, records: list[dict]) -> None:
    """A model's per-image records and metrics on a synthetic benchmark, under ``root``
    (``ev/`` and ``metrics/``), as the evaluate stage writes them."""
    for folder in ("ev", "metrics"):
        (root / folder / model).mkdir(parents=True, exist_ok=True)
    records_path(root / "ev", benchmark, model).write_text(
        "\n".join(json.dumps(r) for r in records) + "\n")
    result = {"benchmark": benchmark, "model": model, "body_model": "anny",
              "dataset_kind": "synthetic", "images": len(records),
              **summarise(records, 200, 0)}
    metrics_path(root / "metrics", benchmark, model).write_text(json.dumps(result))


def write_tables(root, monkeypatch) -> None:
    """The tables stage on ``root``'s evaluations, into ``root / "r"``."""
    monkeypatch.setattr(sys, "argv", ["tables", "--metrics", str(root / "metrics"),
                                      "--evaluations", str(root / "ev"),
                                      "--out", str(root / "r")])
    tables_main()


def test_tables_show_ours_with_intervals_and_paired_differences(tmp_path, monkeypatch):
    for model, hits in (("baseline", [1, 0, 1, 0, 1, 0, 1, 0]), ("full", [1] * 8)):
        write_evaluation(tmp_path, "synth_multi", model, [
            {"key": f"k{i}", "group": "all", "values": {
                "pck_all": (60.0 * h, 100.0), "pck_matched": (60.0 * h, 100.0),
                "collision": (float(h), 1.0), "collision_matched": (0.0, 1.0),
                "depth_order": (float(h), 1.0)}} for i, h in enumerate(hits)])
    write_tables(tmp_path, monkeypatch)
    table3 = (tmp_path / "r" / "table3.md").read_text()
    assert "paper: Ours full (paper)" in table3 and "69.12" in table3
    assert "ours (synthetic): full (L_P + L_D)" in table3 and "60.0 [60.0, 60.0]" in table3
    assert "Δ all vs baseline" in table3
    assert "+30.0 [+" in table3 and " *" in table3  # 60 - 30, the interval above zero
    assert "ours (synthetic): mean pose at the true root (no image)" in table3
    assert "n/a" in table3
    assert "synth_multi (8 images)" in table3 and "body model anny" in table3
    for name in ("table1", "table2", "table4", "table5"):
        assert (tmp_path / "r" / f"{name}.csv").is_file()
    assert "synth_multi" not in (tmp_path / "r" / "actions.md").read_text()  # no actions
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["synth_multi.full.pck_all"] == 60.0
    assert summary["synth_multi.full.pck_all_vs_baseline"] == pytest.approx(30.0)
    assert summary["synth_multi.full.pck_all_vs_baseline_lo"] > 0


def test_paired_differences_read_records_in_either_layout(tmp_path):
    """Records as ``evaluate@<model>`` writes them (``<model>/<benchmark>.jsonl``), and in
    the earlier ``<benchmark>/<model>.jsonl`` of older runs' and probes' folders, give the
    same paired difference; where both exist, the current layout is read."""
    hits = {"baseline": [1, 0, 1, 0], "full": [1, 1, 1, 0]}
    lines = {model: "\n".join(json.dumps({"key": f"k{i}", "group": "all", "values": {
        "pck_all": (60.0 * h, 100.0)}}) for i, h in enumerate(hit)) + "\n"
        for model, hit in hits.items()}
    differences = []
    for layout in ("now", "earlier"):
        root = tmp_path / layout
        for model, text in lines.items():
            path = (records_path(root, "synth_multi", model) if layout == "now"
                    else root / "synth_multi" / f"{model}.jsonl")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        differences.append(paired_difference(root, "synth_multi", "full", "pck_all", None,
                                             200, 0))
    assert differences[0] == differences[1] and differences[0].value == pytest.approx(15.0)
    stale = tmp_path / "now" / "synth_multi" / "full.jsonl"  # an earlier copy beside it
    stale.parent.mkdir()
    stale.write_text(lines["baseline"])
    assert find_records(tmp_path / "now", "synth_multi", "full") == records_path(
        tmp_path / "now", "synth_multi", "full")


def test_metrics_are_keyed_by_what_each_file_records_and_a_second_copy_is_an_error(tmp_path):
    result = {"benchmark": "synth_multi", "model": "full", "images": 8}
    path = metrics_path(tmp_path, "synth_multi", "full")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(result))
    assert load_metrics(tmp_path) == {"synth_multi": {"full": result}}
    earlier = tmp_path / "synth_multi" / "full.json"  # the layout before, beside it
    earlier.parent.mkdir()
    earlier.write_text(json.dumps(result))
    with pytest.raises(ValueError, match="a second metrics file for full on synth_multi"):
        load_metrics(tmp_path)


def test_control_report_compares_each_variant_with_the_fine_tune_without_scene_losses(
        tmp_path, monkeypatch):
    """reports/control.md: the variants against no_scene on the same images (paired), and
    Tables 4 and 5 list the control among their rows."""
    frames = {"baseline": 6, "no_scene": 4, "full": 1}  # colliding frames of 8
    for model, colliding in frames.items():
        write_evaluation(tmp_path, "synth_multi", model, [
            {"key": f"k{i}", "group": "all", "values": {
                "collision": (float(i < colliding), 1.0), "collision_matched": (0.0, 1.0),
                "depth_order": (1.0, 1.0)}} for i in range(8)])
    write_tables(tmp_path, monkeypatch)
    table = pd.read_csv(tmp_path / "r" / "control.csv", index_col=0, dtype=str,
                        keep_default_na=False)
    row = table.loc["synth_multi: collision_frames"]
    assert row["no_scene"].startswith("4 [") and row["full"].startswith("1 [")
    assert row["Δ full - no_scene"].startswith("-3 [") and row["Δ full - no_scene"].endswith("*")
    assert row["no_depth"] == row["Δ no_depth - no_scene"] == "n/a"  # not evaluated
    assert "baseline fine-tuned without L_P or L_D" in (tmp_path / "r" / "table4.md").read_text()


def test_actions_report_compares_each_model_with_the_mean_pose(tmp_path, monkeypatch):
    # mean pose: 100 mm on the "sit" people and 50 on "stand"; baseline: 60 and 50 (+-1)
    errors = {"mean_pose": (100.0, 50.0), "baseline": (60.0, 50.0)}
    for model, (sit, stand) in errors.items():
        records = []
        for i in range(12):
            action, error = ("sit", sit) if i % 2 else ("stand", stand)
            error += (-1.0) ** (i // 2)
            records.append({"key": f"k{i}", "group": "all", "values": {
                "mpjpe": (error, 1.0), "pa_mpjpe": (error, 1.0),
                f"mpjpe@{action}": (error, 1.0), f"pa_mpjpe@{action}": (error, 1.0)}})
        write_evaluation(tmp_path, "synth_single", model, records)
    write_tables(tmp_path, monkeypatch)
    table = pd.read_csv(tmp_path / "r" / "actions.csv", index_col=0, dtype=str)
    rows = {name: list(row) for name, row in table.iterrows()}
    assert list(table.columns) == ["sit", "stand"]
    assert rows["synth_single: people"] == ["6", "6"]
    assert rows["synth_single: baseline"][0].startswith("60.0 [")
    sit, stand = rows["synth_single: Δ baseline − mean pose"]
    assert sit.startswith("-40.0 [") and sit.endswith("*")  # shown: better on "sit"
    assert stand.startswith("+0.0 [") and not stand.endswith("*")  # the same on "stand"


def boxes_overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Reference: two xyxy boxes share some area."""
    return bool(min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1]))


def test_depth_order_on_overlapping_pairs_counts_only_pairs_whose_boxes_overlap(samples):
    """Each annotated person scaled about the camera centre by a random factor (the same
    image, another depth): the overlapping-pairs accuracy must equal a pair-by-pair count
    over the pairs whose annotated boxes overlap, and the overall one over every pair."""
    body, generator = JointsBody(), torch.Generator().manual_seed(5)
    kinds = {True: [0, 0], False: [0, 0]}  # boxes overlap -> [correct, total]
    for sample in samples:
        target = sample["target"]
        detections = oracle(target)
        factors = torch.empty(len(target["kp3d"])).uniform_(0.5, 2.0, generator=generator)
        detections["transl"] = detections["transl"] * factors[:, None]
        detections["shape"] = detections["shape"] * factors[:, None]
        values = image_values(detections, target, target["K"], body, PROTOCOL)
        gt_depth, boxes = target["kp3d"][:, 0, 2], target["boxes"]
        pred_depth = gt_depth * factors
        counts = {True: [0, 0], False: [0, 0]}
        for i in range(len(gt_depth)):
            for j in range(i + 1, len(gt_depth)):
                kind = counts[boxes_overlap(boxes[i], boxes[j])]
                kind[0] += int((pred_depth[i] > pred_depth[j]) == (gt_depth[i] > gt_depth[j]))
                kind[1] += 1
        assert values["depth_order_overlap"] == tuple(map(float, counts[True]))
        assert values["depth_order"] == (float(counts[True][0] + counts[False][0]),
                                         float(counts[True][1] + counts[False][1]))
        for overlap in (True, False):
            kinds[overlap] = [a + b for a, b in zip(kinds[overlap], counts[overlap], strict=True)]
    # the tiny benchmark has both kinds of pairs, and the scaling got some order wrong
    assert kinds[True][1] > 0 and kinds[False][1] > 0
    assert 0 < kinds[True][0] + kinds[False][0] < kinds[True][1] + kinds[False][1]


class OverlappingBody(JointsBody):
    """JointsBody whose tetrahedron is 50 m wide, so any two people intersect."""

    def __init__(self) -> None:
        super().__init__()
        self.corners = self.corners * 2500.0


def test_matched_collisions_count_only_confident_detections_of_distinct_people(samples):
    """The diagnostic is the Table 4 count without duplicates: among the detections
    scoring at least the collision threshold, those matched to distinct people."""
    body = OverlappingBody()
    sample = next(s for s in samples if len(s["target"]["boxes"]) >= 2)
    target = sample["target"]

    def collisions(detections):
        values = image_values(detections, target, target["K"], body, PROTOCOL)
        return values["collision"][0], values["collision_matched"][0]

    everyone = oracle(target)
    assert collisions(everyone) == (1.0, 1.0)  # all confident, all matched
    unsure = {**everyone, "scores": torch.tensor([1.0] + [0.3] * (len(everyone["scores"]) - 1))}
    assert collisions(unsure) == (0.0, 0.0)  # one confident detection cannot collide
    # a confident duplicate of the first person: it collides, but is matched to no one
    duplicate = {k: torch.cat([v, v[:1]]) for k, v in unsure.items()}
    duplicate["scores"][-1] = 1.0
    assert collisions(duplicate) == (1.0, 0.0)


def test_box_cue_orders_the_matched_pairs_by_the_predicted_boxes_bottom_edges(samples):
    """With true depths but randomly moved predicted boxes (matching uses the joints, not
    the boxes), the box-cue accuracy must equal a pair-by-pair count of "the box that
    ends lower is nearer" over the same pairs, and the depth accuracy stays perfect."""
    body, generator = JointsBody(), torch.Generator().manual_seed(7)
    correct = total = 0
    for sample in samples:
        target = sample["target"]
        detections = oracle(target)
        shift = torch.empty(len(target["boxes"])).uniform_(-60.0, 60.0, generator=generator)
        detections["boxes"] = target["boxes"] + shift[:, None]
        values = image_values(detections, target, target["K"], body, PROTOCOL)
        depth, bottom = target["kp3d"][:, 0, 2], detections["boxes"][:, 3]
        counts = [0, 0]
        for i in range(len(depth)):
            for j in range(i + 1, len(depth)):
                counts[0] += int((bottom[i] > bottom[j]) == (depth[i] < depth[j]))
                counts[1] += 1
        assert values["depth_order_box_cue"] == tuple(map(float, counts))
        assert values["depth_order"] == (float(counts[1]), float(counts[1]))
        correct, total = correct + counts[0], total + counts[1]
    assert 0 < correct < total  # the moved boxes got some pairs wrong, not all


def test_each_persons_error_counts_their_own_invisible_joints_only():
    """The official Panoptic rule: people are matched on the joints every person has,
    but each person's error is zeroed only at their *own* invisible joints (a joint
    another person lacks still counts); a joint nobody in the frame has (Panoptic's
    spine and head top) leaves the mean."""
    gt = torch.randn(2, 17, 3, generator=torch.Generator().manual_seed(0)) * 0.3
    pred = gt.clone()
    pred[0, 16, 0] += 0.15  # person 0's joint 16 is 150 mm off
    valid = torch.ones(2, 17, dtype=torch.bool)
    valid[1, 16] = False  # person 1 lacks joint 16: person 0's error there still counts
    values = evaluation._mpjpe_values(pred, gt, valid, None)
    assert values["mpjpe"] == pytest.approx((150 / 17, 2.0), abs=1e-3)
    valid[:, 7] = False  # nobody has joint 7
    values = evaluation._mpjpe_values(pred, gt, valid, None)
    assert values["mpjpe"] == pytest.approx((150 / 16, 2.0), abs=1e-3)


def test_pa_mpjpe_among_several_people_uses_each_persons_own_match():
    """Two people, one detection each: person 1's pose is predicted badly, and person
    0's detection happens to fit person 1 after alignment (a scaled copy). PA-MPJPE
    must score person 1 against their own match, not the best of all detections."""
    gt = torch.randn(2, 17, 3, generator=torch.Generator().manual_seed(1)) * 0.3
    gt[1] = gt[0] * 1.3 + 2.0  # the same pose, larger and elsewhere
    pred = gt.clone()
    pred[1, 1:] += torch.randn(16, 3, generator=torch.Generator().manual_seed(2)) * 0.1
    valid = torch.ones(2, 17, dtype=torch.bool)
    values = evaluation._mpjpe_values(pred, gt, valid, None)
    own = float(pa_mpjpe(pred[1:, list(H36M_EVAL_JOINTS)], gt[1:, list(H36M_EVAL_JOINTS)]))
    assert own > 20
    assert values["pa_mpjpe"] == pytest.approx((own, 2.0), abs=1e-3)
    one = evaluation._mpjpe_values(pred, gt[1:], valid[1:], None)  # one person: the best
    assert one["pa_mpjpe"][0] == pytest.approx(0.0, abs=1e-3)
