"""Do duplicate detections show in the bodies they predict? (probe; run in a workspace
whose ``data/shards/test`` holds the benchmarks to measure.)

    PYTHONPATH=. python docs/probes/body_duplicates/probe.py MODEL_NAME synth_single ...

Runs a model as the evaluation does (its stored suppression), poses every detection
scoring >= the collision threshold, and for each pair that intersects prints how much:
the intersection volume over the smaller body's own volume (``share``), the distance
between the two pelvises, the boxes' IoU and the two scores. A pair is ``distinct`` when
the evaluation's MuPoTS matching gives the two detections to two annotated people, and
``extra`` otherwise (at least one of them matched to nobody: a duplicate or a false
detection). Then, for suppression rules "drop the lower-scoring detection of every pair
whose share is at least s", AP50 (COCO-style, ``ops.detection``) and the colliding frames
of the whole benchmark, with the distinct pairs such a rule would break up.
"""

import sys

import numpy as np
import torch
from torchvision.ops import box_iou

from model.body import posed_in_camera
from model.camera import project
from ops.collision import collision_volume
from ops.detection import average_precision, match_detections
from ops.metrics import match_people
from pipelines.evaluation import EvalParams, annotated_kp3d
from pipelines.shards import SHARDS, read_shards
from pipelines.training import TrainParams
from pipelines.transforms import to_network_input
from stages.common import BodyModelParams, from_section, read_params, typed
from stages.evaluate import load_predictor, match_threshold

SHARES = (None, 0.7, 0.5, 0.3, 0.2)


def own_volumes(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``[P]`` m^3: each body's volume, as its intersection with a copy of itself. The
    same 64^3 voxel count as the pairwise intersections, so their ratio shares one
    estimator (trimesh's exact volume, as ``stages.body_model`` reports, would not)."""
    return torch.stack([collision_volume(torch.stack([v, v]), faces)[0, 1] for v in vertices])


def image_pairs(sample: dict, network, body, config: EvalParams,
                size: tuple[int, int]) -> dict:
    """The confident detections of one image and every intersecting pair among them."""
    inputs = to_network_input(sample, *size)
    with torch.no_grad():
        found = network(inputs["image"][None], intrinsics=[inputs["target"]["K"]])[0]
    kept = found["scores"] >= config.score_threshold
    det = {k: v[kept] for k, v in found.items() if torch.is_tensor(v)}
    posed = posed_in_camera(body, det["rotmats"], det["shape"], det["transl"])
    K = sample["target"]["K"]
    kp3d = annotated_kp3d(sample["target"])
    annotated = kp3d[..., 3].bool().any(dim=-1)
    matches = match_people(project(posed.joints["h36m17"], K),
                           project(kp3d[annotated][..., :3], K),
                           match_threshold(config, True, K))
    owner = {m: person for person, m in enumerate(matches) if m is not None}
    confident = (det["scores"] >= config.collision_score_threshold).nonzero().flatten()
    vertices = posed.vertices[confident]
    volumes = collision_volume(vertices, body.faces, grid_size=64)
    own = own_volumes(vertices, body.faces) if len(confident) > 1 else torch.zeros(0)
    ious = box_iou(det["boxes"][confident], det["boxes"][confident])
    pairs = []
    for a in range(len(confident)):
        for b in range(a + 1, len(confident)):
            if volumes[a, b] <= 0:
                continue
            i, j = int(confident[a]), int(confident[b])
            distinct = i in owner and j in owner
            pairs.append({"i": i, "j": j, "share": float(volumes[a, b] / own[[a, b]].min()),
                          "distance": float((det["transl"][i] - det["transl"][j]).norm()),
                          "iou": float(ious[a, b]), "distinct": distinct,
                          "scores": (float(det["scores"][i]), float(det["scores"][j]))})
    return {"key": sample["key"], "pairs": pairs, "scores": det["scores"],
            "boxes": det["boxes"], "gt_boxes": inputs["target"]["boxes"],
            "confident": confident.tolist()}


def apply_rule(image: dict, share: float | None) -> tuple[torch.Tensor, int]:
    """Detections kept by the rule (indices), and whether the frame still collides."""
    dropped: set[int] = set()
    for pair in sorted(image["pairs"], key=lambda p: -max(p["scores"])):
        if share is None or pair["share"] < share or pair["i"] in dropped or pair["j"] in dropped:
            continue
        dropped.add(pair["j"] if pair["scores"][0] >= pair["scores"][1] else pair["i"])
    kept = [k for k in range(len(image["scores"])) if k not in dropped]
    collides = any(p["i"] not in dropped and p["j"] not in dropped for p in image["pairs"])
    return torch.tensor(kept, dtype=torch.long), int(collides)


def report(benchmark: str, images: list[dict]) -> None:
    pairs = [p for image in images for p in image["pairs"]]
    for kind in (True, False):
        chosen = sorted(p["share"] for p in pairs if p["distinct"] == kind)
        name = "distinct" if kind else "extra"
        quantiles = np.quantile(chosen, [0, 0.5, 0.9, 1]).round(3).tolist() if chosen else []
        print(f"{benchmark} {name} pairs {len(chosen)}: share min/median/p90/max {quantiles}")
    for image in images:
        for p in image["pairs"]:
            if not p["distinct"] or p["share"] >= 0.2:
                print(f"  {image['key']} {'distinct' if p['distinct'] else 'extra   '} "
                      f"share {p['share']:.3f} distance {p['distance']:.2f} m "
                      f"iou {p['iou']:.2f} scores {p['scores'][0]:.2f}/{p['scores'][1]:.2f}")
    for share in SHARES:
        scored, counts, frames, broken = [], [], 0, 0
        for image in images:
            kept, collides = apply_rule(image, share)
            boxes, scores = image["boxes"][kept], image["scores"][kept]
            scored.append((scores.numpy().astype(float),
                           match_detections(boxes, scores, image["gt_boxes"])))
            counts.append(len(image["gt_boxes"]))
            frames += collides
            broken += sum(p["distinct"] and (p["i"] not in kept or p["j"] not in kept)
                          for p in image["pairs"])
        ap = average_precision(scored, np.array(counts, dtype=float))
        print(f"{benchmark} share >= {share}: AP50 {100 * ap:.1f}, colliding frames {frames} "
              f"of {len(images)}, distinct pairs broken up {broken}")


def main() -> None:
    torch.set_num_threads(2)
    name, benchmarks = sys.argv[1], sys.argv[2:]
    params = read_params()
    body = from_section(BodyModelParams, params, "body_model").build()
    config = from_section(EvalParams, params, "eval")
    common = typed(TrainParams, params, "train.common")
    size = (common.input_height, common.input_width)  # as stages.evaluate reads it
    network = load_predictor(name, body)
    network.eval()
    for benchmark in benchmarks:
        images = [image_pairs(s, network, body, config, size)
                  for s in read_shards(SHARDS / "test" / benchmark)]
        report(benchmark, images)


if __name__ == "__main__":
    main()
