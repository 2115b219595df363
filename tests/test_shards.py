"""Shard writing (byte-identical, seeded), reading (schema, shuffling, splitting) and
clear errors for malformed shards."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.shards import ShardFormatError, decode_sample, read_shards
from stages.prepare import prepare
from tests.synthetic_params import tiny_params

DATASET = "synth_multi"


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / DATASET
    prepare(DATASET, out, tiny_params(size=6, workers=1))
    return out


def test_index_and_shards(prepared):
    index = json.loads((prepared / "index.json").read_text())
    assert index["num_samples"] == 6 and index["dataset"] == DATASET
    assert [s["nsamples"] for s in index["shardlist"]] == [4, 2]
    assert isinstance(index["rejected"], dict) and len(index["inputs_sha256"]) == 64
    assert sorted(p.name for p in prepared.glob("*.tar")) == [s["url"] for s in index["shardlist"]]


def test_rerun_is_byte_identical_with_any_worker_count(prepared, tmp_path):
    prepare(DATASET, tmp_path / "again", tiny_params(size=6, workers=2))
    assert digest(tmp_path / "again") == digest(prepared)


def test_another_seed_gives_other_shards(prepared, tmp_path):
    prepare(DATASET, tmp_path / "seed1", tiny_params(size=6, seed=1))
    ours, theirs = digest(prepared), digest(tmp_path / "seed1")
    assert all(ours[name] != theirs[name] for name in ours)


def test_round_trip_decodes_targets(prepared):
    samples = list(read_shards(prepared))
    assert [s["key"] for s in samples] == [f"{DATASET}-test-{i:06d}" for i in range(6)]
    sample = samples[0]
    people = sample["meta"]["num_people"]
    target = sample["target"]
    assert sample["image"].shape == (3, 80, 128) and sample["image"].dtype == torch.uint8
    assert target["boxes"].shape == (people, 4) and target["labels"].tolist() == [1] * people
    assert target["keypoints"].shape == (people, 17, 3) and target["kp3d"].shape == (people, 17, 4)
    assert target["masks"].shape == (80, 128) and int(target["masks"].max()) <= people
    assert target["rotmats"].shape == (people, 20, 3, 3) and target["K"].shape == (3, 3)


def test_shuffle_is_seeded_and_nodes_get_disjoint_shards(prepared, monkeypatch):
    order = [s["key"] for s in read_shards(prepared)]
    first = [s["key"] for s in read_shards(prepared, shuffle=True, seed=3)]
    second = [s["key"] for s in read_shards(prepared, shuffle=True, seed=3)]
    assert first == second and sorted(first) == sorted(order)
    assert any(a != b for a, b in zip(first, [s["key"] for s in read_shards(
        prepared, shuffle=True, seed=4)], strict=True))
    seen = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        seen.append({s["key"] for s in read_shards(prepared)})
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(order)


def raw_samples(prepared: Path) -> list[dict]:
    """The raw fields of the first shard, grouped by key."""
    samples: dict[str, dict] = {}
    with tarfile.open(prepared / f"{DATASET}-000000.tar") as archive:
        for member in archive.getmembers():
            key, field = member.name.split(".", 1)
            samples.setdefault(key, {"__key__": key})[field] = archive.extractfile(member).read()
    return list(samples.values())


def test_missing_field_and_wrong_shape_name_the_sample(prepared):
    sample = raw_samples(prepared)[1]
    broken = {k: v for k, v in sample.items() if k != "kp2d.npy"}
    key = sample["__key__"]
    with pytest.raises(ShardFormatError, match=rf"{key}: missing field\(s\) \['kp2d.npy'\]"):
        decode_sample(broken)
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((7, 5), dtype=np.float32))
    with pytest.raises(ShardFormatError, match=rf"{key}: field 'boxes.npy' has shape \[7, 5\]"):
        decode_sample({**sample, "boxes.npy": buffer.getvalue()})
    no_body = {k: v for k, v in sample.items() if k != "body.npz"}
    with pytest.raises(ShardFormatError, match="sets has_body but field 'body.npz' is missing"):
        decode_sample(no_body)


def test_truncated_shard_names_the_last_good_sample(prepared, tmp_path):
    broken = tmp_path / DATASET
    broken.mkdir()
    (broken / "index.json").write_text((prepared / "index.json").read_text())
    data = (prepared / f"{DATASET}-000000.tar").read_bytes()
    (broken / f"{DATASET}-000000.tar").write_bytes(data[: len(data) // 2 + 100])
    second = f"{DATASET}-000001.tar"
    (broken / second).write_bytes((prepared / second).read_bytes())
    with pytest.raises(ShardFormatError, match=rf"(after sample {DATASET}-test-0000\d\d)|"
                                               rf"({DATASET}-test-0000\d\d: missing)"):
        list(read_shards(broken))


def test_missing_index_says_which_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the prepare stage"):
        read_shards(tmp_path)



def test_shards_do_not_depend_on_the_cpu_kernels(tmp_path):
    """The prepare stage pins MKL's reproducible mode, so other kernel choices (here
    torch's unvectorised kernels and MKL limited to SSE4.2, as on an older CPU) give
    the same bytes."""
    import os
    import subprocess
    import sys

    import yaml

    params = tiny_params(size=3)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    root = Path(__file__).resolve().parents[1]
    digests = []
    for extra in ({}, {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}):
        out = tmp_path / f"out{len(digests)}"
        env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
        env.update(extra, PYTHONPATH=os.pathsep.join([str(root), env.get("PYTHONPATH", "")]))
        code = ("import os, sys; from stages.prepare import main; "
                "assert os.environ['MKL_CBWR'] == 'COMPATIBLE'; "
                f"main(['--dataset', '{DATASET}', '--out', sys.argv[1]])")
        done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        digests.append(digest(out))
    assert digests[0] == digests[1]
