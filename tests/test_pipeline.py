"""End to end: `dvc repro` on a tiny profile in a temporary copy of the project, then a
no-op re-run."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.shards import read_shards
from tests.real_tree import PREPARE, build_real_tree
from tests.training_setup import tiny_training_params

ROOT = Path(__file__).resolve().parents[1]
COPIED = ["dvc.yaml", "params.yaml", "pyproject.toml", ".dvcignore", ".gitignore", "model",
          "ops", "pipelines", "stages", "reference"]


def run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(cwd), "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def copy_project(destination: Path) -> None:
    """The files `dvc repro` needs, copied into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, destination / name)


@pytest.mark.slow
def test_dvc_repro_runs_and_is_then_a_no_op(tmp_path):
    copy_project(tmp_path)
    params = tiny_training_params(iters=2)
    params["datasets"] = ["synth_train", "synth_multi"]
    params["eval"].update(models=["baseline", "full"], benchmarks=["synth_multi"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    dvc = str(Path(sys.executable).parent / "dvc")
    run(["git", "init", "-q"], tmp_path)
    run([dvc, "init", "-q"], tmp_path)
    run(["git", "add", "-A"], tmp_path)  # dvclive needs a commit to exist
    run(["git", "-c", "user.name=crmh", "-c", "user.email=crmh@localhost", "commit", "-qm",
         "copy"], tmp_path)
    run([dvc, "repro"], tmp_path)
    summary = json.loads((tmp_path / "data/body_model/summary.json").read_text())
    assert summary["kind"] == "anny" and summary["watertight"]
    assert summary["num_vertices"] == 13718 and summary["num_rotations"] == 20
    for dataset in params["datasets"]:
        index = json.loads((tmp_path / "data/shards" / dataset / "index.json").read_text())
        assert index["num_samples"] == 4
    for model in ("pretrain", "baseline", "full", "no_collision", "no_depth"):
        assert (tmp_path / "models" / model / "model.pt").is_file()
        assert json.loads((tmp_path / "logs" / model / "metrics.json").read_text())["step"] == 1
    for model in ("baseline", "full"):
        result = json.loads((tmp_path / "metrics/synth_multi" / f"{model}.json").read_text())
        assert result["images"] == 4 and result["failed_images"] == 0
    assert "ours: full" in (tmp_path / "reports/table3.md").read_text()
    metrics_diff = run([dvc, "metrics", "show"], tmp_path)
    assert "metrics/synth_multi/full.json" in metrics_diff
    second = run([dvc, "repro"], tmp_path)
    assert "didn't change, skipping" in second and "Running stage" not in second
    # an ablation knob invalidates only its own fine-tune
    params["losses"]["full"]["collision"] = 0.02
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    planned = run([dvc, "repro", "--dry"], tmp_path)
    rerun = {line.split("'")[1] for line in planned.splitlines() if line.startswith("Running")}
    # only that fine-tune is stale; what follows it re-runs if its model changes
    assert rerun == {"finetune@full"}


@pytest.mark.slow
def test_dvc_prepares_real_datasets_from_their_official_layouts(tmp_path):
    """Several real readers at once through `dvc repro prepare`, then read back."""
    project = tmp_path / "project"
    copy_project(project)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    chosen = ["coco_val", "h36m_test", "mupots", "panoptic", "posetrack_val"]
    params["datasets"] = chosen
    params["sources"] = {k: {"root": v} for k, v in build_real_tree(tmp_path / "real", 5).items()}
    params["prepare"].update({name: PREPARE[name] for name in chosen})
    params["prepare"]["mupots"] = {**PREPARE["mupots"], "limit": 5}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    dvc = str(Path(sys.executable).parent / "dvc")
    run(["git", "init", "-q"], project)
    run([dvc, "init", "-q"], project)
    run([dvc, "repro", "prepare"], project)
    counts = {name: len(list(read_shards(project / "data/shards" / name))) for name in chosen}
    assert counts == {"coco_val": 4, "h36m_test": 4, "mupots": 5, "panoptic": 4,
                      "posetrack_val": 2}
    second = run([dvc, "repro", "prepare"], project)
    assert "Running stage" not in second
