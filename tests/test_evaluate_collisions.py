"""The evaluation's intersection volumes (collision_litres), on tiny data."""

import pytest
import torch

from model.body import posed_in_camera
from ops.collision import collision_volume
from pipelines.evaluation import summarise
from tests.test_evaluate import CONFIG, GroundTruthModel, run


class DuplicateModel(GroundTruthModel):
    """The annotated people, and a confident copy of the first one moved 8 cm sideways."""

    def __call__(self, images, intrinsics):
        out = super().__call__(images, intrinsics)[0]
        copy = {key: value[:1].clone() for key, value in out.items()}
        copy["transl"][0, 0] += 0.08
        copy["scores"][:] = 0.9
        return [{key: torch.cat([value, copy[key]]) for key, value in out.items()}]


def test_intersection_litres_sum_the_confident_pairs(tiny_synth_multi, anny_body):
    samples, body = tiny_synth_multi, anny_body  # the session's fixtures (conftest.py)
    records, failed = run(samples, DuplicateModel(samples), body)
    assert not failed
    for sample, record in zip(samples, records, strict=True):
        model = DuplicateModel(samples)
        model.key = sample["key"]
        det = model(None, None)[0]
        confident = det["scores"] >= CONFIG.collision_score_threshold
        vertices = posed_in_camera(body, det["rotmats"][confident], det["shape"][confident],
                                   det["transl"][confident]).vertices
        volumes = collision_volume(vertices, body.faces, grid_size=64)
        assert volumes[0, -1] > 0  # the copy enters the person it copies
        litres, frames = record["values"]["collision_volume"]
        assert frames == 1.0 and litres == pytest.approx(1000 * float(volumes.triu(1).sum()))
        assert record["values"]["collision"] == (1.0, 1.0)
        # one of the two is matched: the other pairs are all that is left
        matched = record["values"]["collision_volume_matched"][0]
        assert matched < litres
    result = summarise(records, 200, 0)
    assert result["collision_litres"] > result["collision_litres_matched"] >= 0
    ground_truth = summarise(run(samples, GroundTruthModel(samples), body)[0], 200, 0)
    assert ground_truth["collision_litres"] == ground_truth["collision_litres_matched"] == 0
