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
          "ops", "pipelines", "stages", "reference"]


def run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(cwd), "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_dvc_repro_runs_and_is_then_a_no_op(tmp_path):
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    params = tiny_training_params(iters=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    dvc = str(Path(sys.executable).parent / "dvc")
    run(["git", "init", "-q"], tmp_path)
    run([dvc, "init", "-q"], tmp_path)
    run([dvc, "repro"], tmp_path)
    summary = json.loads((tmp_path / "data/body_model/summary.json").read_text())
    assert summary["kind"] == "anny" and summary["watertight"]
    assert summary["num_vertices"] == 13718 and summary["num_rotations"] == 20
    for dataset in ("synth_train", "synth_single", "synth_groups", "synth_multi", "synth_crowd"):
        index = json.loads((tmp_path / "data/shards" / dataset / "index.json").read_text())
        assert index["num_samples"] == 4
    for model in ("pretrain", "baseline", "full", "no_collision", "no_depth"):
        assert (tmp_path / "models" / model / "model.pt").is_file()
        assert json.loads((tmp_path / "logs" / model / "metrics.json").read_text())["step"] == 1
    second = run([dvc, "repro"], tmp_path)
    assert "didn't change, skipping" in second and "Running stage" not in second
    # an ablation knob invalidates only its own fine-tune
    params["losses"]["full"]["collision"] = 0.02
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    status = run([dvc, "status"], tmp_path)
    assert "finetune@full:" in status
    assert not any(f"{stage}:" in status for stage in ("pretrain", "baseline",
                                                        "finetune@no_depth", "prepare@"))
