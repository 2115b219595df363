"""Shared fixtures: the Anny body model (loaded once per session; Anny keeps its own
user cache, ~2 minutes to build the first time on a new machine), a small
synthetic SMPL-structured model file that runs the real smplx code without any
licensed file, and four tiny synthetic multi-person samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

# SMPL's kinematic tree (parents of the 24 joints): structure, not licensed data.
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


@pytest.fixture(scope="session")
def tiny_synth_multi(tmp_path_factory) -> list[dict]:
    """Four ``synth_multi`` samples at toy size (tests.synthetic_params), decoded once for
    every module that reads them (none may change them in place)."""
    from pipelines.shards import read_shards
    from stages.prepare import prepare
    from tests.synthetic_params import tiny_params

    root = tmp_path_factory.mktemp("tiny") / "synth_multi"
    prepare("synth_multi", root, tiny_params(size=4))
    return list(read_shards(root))


@pytest.fixture(scope="session")
def anny_body():
    from model.body import load_body_model

    return load_body_model("anny")


def make_fake_smpl_arrays(seed: int = 0, num_vertices: int = 6890) -> dict[str, np.ndarray]:
    """Arrays shaped like an SMPL model: joints along a rough stick figure, each vertex
    scattered around and skinned to one joint, random small blend shapes."""
    rng = np.random.default_rng(seed)
    joints = np.zeros((24, 3))
    for j in range(1, 24):  # each joint a random offset from its parent
        joints[j] = joints[SMPL_PARENTS[j]] + rng.normal(0, 0.1, 3)
    owner = np.arange(num_vertices) % 24  # every joint owns vertices
    v_template = joints[owner] + rng.normal(0, 0.03, (num_vertices, 3))
    regressor = np.zeros((24, num_vertices))
    for j in range(24):  # joint j = mean of its own vertices, as SMPL's regressor roughly is
        members = np.flatnonzero(owner == j)
        regressor[j, members] = 1.0 / len(members)
    weights = np.zeros((num_vertices, 24))
    weights[np.arange(num_vertices), owner] = 1.0
    faces = rng.integers(0, num_vertices, (2 * num_vertices, 3))
    kintree = np.stack([np.array(SMPL_PARENTS), np.arange(24)])
    kintree[0, 0] = 4294967295  # as in the original files
    return {
        "v_template": v_template.astype(np.float64),
        "shapedirs": rng.normal(0, 0.01, (num_vertices, 3, 10)),
        "posedirs": rng.normal(0, 0.001, (num_vertices, 3, 207)),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree,
        "f": faces.astype(np.int64),
    }


@pytest.fixture(scope="session")
def fake_smpl_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.npz"
    np.savez(path, **make_fake_smpl_arrays())
    return path


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
