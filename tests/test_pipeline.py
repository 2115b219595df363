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

from tests.training_setup import tiny_training_params

ROOT = Path(__file__).resolve().parents[1]
COPIED = ["dvc.yaml", "params.yaml", "pyproject.toml", ".dvcignore", ".gitignore", "model",
          "ops", "pipelines", "stages", "reference", "profiles"]


def run(args: list[str], cwd: Path, expect_failure: bool = False) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(cwd), "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    failed = done.returncode != 0
    assert failed == expect_failure, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr if expect_failure else done.stdout


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
    params["datasets"] = {"synth_train": "train", "synth_multi": "test"}
    params["eval"].update(models=["baseline", "full", "full_refine"],
                          benchmarks=["synth_multi"])
    params["refine"].update(steps=2, grid=16)
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
    for dataset, role in params["datasets"].items():
        index = json.loads((tmp_path / "data/shards" / role / dataset / "index.json").read_text())
        assert index["num_samples"] == 4
    for model in ("pretrain", "baseline", "full", "no_collision", "no_depth", "no_scene"):
        assert (tmp_path / "models" / model / "model.pt").is_file()
        assert json.loads((tmp_path / "logs" / model / "metrics.json").read_text())["step"] == 1
    for model in ("baseline", "full", "full_refine"):
        result = json.loads((tmp_path / "metrics" / model / "synth_multi.json").read_text())
        assert result["images"] == 4 and result["failed_images"] == 0
    assert "refine_steps" in result  # full_refine: the network followed by refinement
    assert "ours (synthetic): full" in (tmp_path / "reports/table3.md").read_text()
    assert "synth_multi: collision_frames" in (tmp_path / "reports/refine.md").read_text()
    metrics_diff = run([dvc, "metrics", "show"], tmp_path)
    assert "metrics/full/synth_multi.json" in metrics_diff
    second = run([dvc, "repro"], tmp_path)
    assert "didn't change, skipping" in second and "Running stage" not in second
    # an ablation knob invalidates only its own fine-tune
    params["losses"]["full"]["collision"] = 0.02
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    planned = run([dvc, "repro", "--dry"], tmp_path)
    rerun = {line.split("'")[1] for line in planned.splitlines() if line.startswith("Running")}
    # only that fine-tune is stale; what follows it re-runs if its model changes
    assert rerun == {"finetune@full"}


def test_checkpoint_identity_hashes_the_code_dvc_reruns_training_for():
    """A checkpoint resumes only the same configuration and code: the code it hashes
    (``pipelines.training.CODE``) is the code every training stage depends on in
    dvc.yaml, no more (a change elsewhere would orphan checkpoints DVC keeps) and no less."""
    from pipelines.training import CODE

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("pretrain", "baseline", "finetune"):
        stage = stages[name].get("do", stages[name])
        code = [dep for dep in stage["deps"] if not dep.startswith(("data/", "models/"))]
        assert sorted(code) == sorted(CODE), name


def test_training_code_dependencies_cover_every_module_training_imports():
    """The training stages list only some of ops/ (so an evaluation fix does not re-run
    training): every module of this project that a training run imports, the scene
    losses included, must be under one of them, or DVC would miss a change to it."""
    from pipelines.training import CODE

    script = ("import sys, stages.train, model.losses, model.smpl_criterion\n"
              "print('\\n'.join(getattr(m, '__file__', None) or '' for m in "
              "list(sys.modules.values())))")
    files = subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, text=True,
                           capture_output=True).stdout.split()
    ours = {Path(f).resolve().relative_to(ROOT).as_posix() for f in files
            if Path(f).resolve().is_relative_to(ROOT) and ".venv" not in Path(f).parts}
    needed = {f for f in ours if f.startswith(("ops/", "model/"))}
    assert "ops/sdf.py" in needed and "ops/bootstrap.py" not in needed
    missing = [f for f in needed if not any(f == c or f.startswith(c + "/") for c in CODE)]
    assert not missing
