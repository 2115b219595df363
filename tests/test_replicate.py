"""Training-seed replicates (stages.replicate): the seeds' paired differences, their mean
and its two intervals against a hand computation, and the workspace of an extra seed."""

from __future__ import annotations

import math

import pytest
import yaml

from stages.replicate import prepare_workspace, seed_spread

IMAGES = 50


def records(colliding: int) -> list[dict]:
    """Per-image records where the first ``colliding`` images have a collision."""
    return [{"key": f"img{i:03d}", "group": "all",
             "values": {"collision": [float(i < colliding), 1.0]}} for i in range(IMAGES)]


def test_seed_spread_matches_a_hand_computation():
    seeds = {0: records(10), 1: records(12), 2: records(8)}  # baseline: 20 frames
    spread = seed_spread(seeds, records(20), "collision_frames", 500, 0)
    assert [round(v.value) for v in spread.per_seed] == [-10, -8, -12]
    # Student's t over (-10, -8, -12): mean -10, sd 2, t(0.975, 2) = 4.3027
    half = 4.302653 * 2.0 / math.sqrt(3)
    assert spread.across_seeds.value == pytest.approx(-10.0)
    assert spread.across_seeds.low == pytest.approx(-10.0 - half, rel=1e-5)
    assert spread.across_seeds.high == pytest.approx(-10.0 + half, rel=1e-5)
    assert spread.over_images.low < -10.0 < spread.over_images.high < 0
    assert spread.shown


def test_seeds_that_disagree_show_nothing():
    seeds = {0: records(10), 1: records(30)}  # -10 and +10 against the baseline's 20
    spread = seed_spread(seeds, records(20), "collision_frames", 500, 0)
    assert spread.across_seeds.value == pytest.approx(0.0)
    assert spread.across_seeds.low < 0 < spread.across_seeds.high
    assert not spread.shown


def test_a_single_seed_has_no_across_seed_interval():
    spread = seed_spread({0: records(10)}, records(20), "collision_frames", 500, 0)
    assert math.isnan(spread.across_seeds.low) and not spread.shown


def test_the_workspace_links_the_data_and_baseline_and_sets_the_seed(tmp_path):
    root = tmp_path / "repo"
    (root / "data" / "shards").mkdir(parents=True)
    (root / "models" / "baseline").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump({"seed": 0, "eval": {"x": 1}}))
    work = tmp_path / "replicates" / "seed3"
    prepare_workspace(work, 3, root)
    prepare_workspace(work, 3, root)  # again: resumes
    assert (work / "data").resolve() == (root / "data").resolve()
    assert (work / "models" / "baseline").resolve() == (root / "models" / "baseline").resolve()
    assert yaml.safe_load((work / "params.yaml").read_text()) == {"seed": 3, "eval": {"x": 1}}


def test_a_workspace_of_another_baseline_or_params_starts_afresh(tmp_path):
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "models" / "baseline").mkdir(parents=True)
    (root / "models" / "baseline" / "model.pt").write_bytes(b"first")
    (root / "params.yaml").write_text("seed: 0\n")
    work = tmp_path / "replicates" / "seed1"
    done = work / "evaluations" / "full" / "synth_multi.jsonl"

    def finish_one_evaluation():
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text("{}\n")

    prepare_workspace(work, 1, root)
    finish_one_evaluation()
    prepare_workspace(work, 1, root)  # same baseline and params: resumed, kept
    assert done.is_file()
    (root / "models" / "baseline" / "model.pt").write_bytes(b"second")  # a new dvc repro
    prepare_workspace(work, 1, root)
    assert not done.exists() and (work / "models" / "baseline").is_symlink()
    finish_one_evaluation()
    (root / "params.yaml").write_text("seed: 0\ntrain: {x: 1}\n")
    prepare_workspace(work, 1, root)
    assert not done.exists()


def test_a_changed_loss_weight_makes_only_that_variant_again(tmp_path):
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "models" / "baseline").mkdir(parents=True)
    (root / "models" / "baseline" / "model.pt").write_bytes(b"baseline")
    losses = {"full": {"collision": 0.01}, "no_scene": {"collision": 0.0}}
    (root / "params.yaml").write_text(yaml.safe_dump({"seed": 0, "losses": losses}))
    work = tmp_path / "replicates" / "seed2"
    prepare_workspace(work, 2, root)
    outputs = {variant: [work / folder / variant / "out" for folder in
                         ("models", "checkpoints", "logs", "metrics", "evaluations")]
               for variant in losses}
    for path in sum(outputs.values(), []):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("made")
    losses["full"]["collision"] = 0.1
    (root / "params.yaml").write_text(yaml.safe_dump({"seed": 0, "losses": losses}))
    prepare_workspace(work, 2, root)
    assert not any(path.exists() for path in outputs["full"])
    assert all(path.is_file() for path in outputs["no_scene"])
    assert yaml.safe_load((work / "params.yaml").read_text())["losses"]["full"] == {
        "collision": 0.1}
    (work / "params.yaml").write_text("{seed: 2")  # not what the stamp vouches for
    prepare_workspace(work, 2, root)
    assert not any(path.exists() for path in outputs["no_scene"])


def test_a_missing_baseline_is_a_clear_error(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    with pytest.raises(FileNotFoundError, match="models/baseline is missing"):
        prepare_workspace(tmp_path / "seed1", 1, tmp_path)


def test_a_per_seed_reference_pairs_each_seed_with_its_own_control():
    """Against the control, each seed is compared with the control of the same seed."""
    seeds = {0: records(10), 1: records(12), 2: records(8)}
    controls = {0: records(15), 1: records(14), 2: records(13)}
    spread = seed_spread(seeds, controls, "collision_frames", 500, 0)
    assert [round(v.value) for v in spread.per_seed] == [-5, -2, -5]
    assert spread.across_seeds.value == pytest.approx(-4.0)
    # one shared reference gives what the per-seed form gives with that reference repeated
    shared = seed_spread(seeds, records(20), "collision_frames", 500, 0)
    repeated = seed_spread(seeds, dict.fromkeys(seeds, records(20)), "collision_frames", 500, 0)
    assert shared == repeated


def test_run_seed_fine_tunes_only_what_a_missing_evaluation_needs(tmp_path, monkeypatch):
    import stages.replicate as replicate

    calls = []
    monkeypatch.setattr(replicate, "_run", lambda command, work, label: calls.append(command))
    for model in ("full", "no_scene"):
        (tmp_path / "evaluations" / model).mkdir(parents=True)
    for benchmark in ("a", "b", "c"):
        (tmp_path / "evaluations" / "full" / f"{benchmark}.jsonl").write_text("")
    (tmp_path / "evaluations" / "no_scene" / "a.jsonl").write_text("")
    replicate.run_seed(tmp_path, ["full", "no_scene"], ["a", "b", "c"])
    assert calls == [["stages.train", "--phase", "finetune", "--variant", "no_scene"],
                     ["stages.evaluate", "--model", "no_scene", "--benchmark", "b", "c"]]
