"""Stage ``evaluate@<model>``: run a trained model over every benchmark's shards.

    python -m stages.evaluate --model full                           # eval.benchmarks
    python -m stages.evaluate --model full --benchmark synth_multi   # only these

For each benchmark, writes ``evaluations/<model>/<benchmark>.jsonl`` (one line per
image: its metric numerators and denominators, or why it failed) and
``metrics/<model>/<benchmark>.json`` (flat keys: every metric with its 95 % bootstrap
interval as ``<key>_lo``/``<key>_hi``, per-group values, and the counts of images,
people, detections and failed images). One stage per model, not per benchmark: the
model is what an ablation changes, and each process spends seconds starting up.
The protocols are in :mod:`pipelines.evaluation` and :mod:`ops.metrics`.

The model ``mean_pose`` is the trivial reference: the mean training pose and shape
(stage ``mean_pose``) placed at each annotated person's true pelvis, with no image
evidence at all.

An image that fails (an exception, or a non-finite prediction) is counted once, logged
with its key and reason, and contributes nothing else. The stage fails when more than
``eval.max_failed_fraction`` of the images fail.
"""

from __future__ import annotations

import argparse
import json
import traceback
from collections.abc import Iterable
from pathlib import Path

import torch
from tqdm import tqdm

from model.body import BodyModel
from model.io import load_network, read_model
from ops.detection import ignored_detections, match_detections
from pipelines.evaluation import (
    EvalParams,
    PredictionError,
    Protocol,
    action_labels,
    annotated_kp3d,
    image_values,
    metrics_path,
    records_path,
    resampling_block,
    summarise,
    write_records,
)
from pipelines.refining_network import with_refinement
from pipelines.shards import SHARDS, load_index, read_shards
from pipelines.training import TrainParams
from pipelines.transforms import to_network_input
from stages.common import BodyModelParams, from_section, read_params, section, typed, write_json

EVALUATIONS, METRICS_ROOT = Path("evaluations"), Path("metrics")


def load_predictor(name: str, body: BodyModel) -> torch.nn.Module | dict:
    """A trained network (followed by test-time refinement when its model file carries a
    ``refine`` configuration), or the ``mean_pose`` reference (the dict of its parameters)."""
    path = Path("models") / name / "model.pt"
    state = read_model(path)
    if state["kind"] == "mean_pose":
        return state
    network, state = load_network(path, body)
    return with_refinement(network, state, body) if "refine" in state else network


def mean_pose_detections(reference: dict, target: dict) -> dict[str, torch.Tensor]:
    """The reference's pose and shape at each annotated person's true pelvis."""
    kp3d = annotated_kp3d(target)
    present = kp3d[:, 0, 3] > 0
    people = int(present.sum())
    return {"boxes": target["boxes"][present], "scores": torch.ones(people),
            "rotmats": reference["rotmats"].expand(people, -1, -1, -1),
            "shape": reference["shape"].expand(people, -1),
            "transl": kp3d[present, 0, :3]}


def match_threshold(config: EvalParams, synthetic: bool, K: torch.Tensor) -> float:
    """The official 40 px on real frames; on synthetic images, the same angle as 40 px
    at MuPoTS's focal length, so the threshold scales with the image."""
    if not synthetic:
        return config.match_threshold_px
    return config.match_threshold_px * float(K[0, 0]) / config.synthetic_match_focal


@torch.no_grad()
def evaluate_sample(sample: dict, model: torch.nn.Module | dict, body: BodyModel,
                    config: EvalParams, size: tuple[int, int], synthetic: bool) -> dict:
    """One image's record: ``{key, group, people, detections, values}``."""
    network_input = to_network_input(sample, *size)
    original_K = sample["target"]["K"]
    if isinstance(model, dict):
        detections = mean_pose_detections(model, network_input["target"])  # boxes as ours
    else:
        detections = model(network_input["image"][None],
                           intrinsics=[network_input["target"]["K"]])[0]
    detections = dict(detections)
    steps = detections.pop("refine_steps", None)  # a refined model's, per image
    protocol = Protocol(config.score_threshold, config.collision_score_threshold,
                        match_threshold(config, synthetic, original_K))
    kp3d = sample["target"].get("kp3d")
    actions = None if kp3d is None else action_labels(sample["meta"], len(kp3d))
    values = image_values(detections, sample["target"], original_K, body, protocol, actions)
    kept = detections["scores"] >= config.score_threshold
    boxes, scores = detections["boxes"][kept], detections["scores"][kept]
    tp = match_detections(boxes, scores, network_input["target"]["boxes"])
    if "ignore" in network_input["target"]:  # unannotated people: neither true nor false
        counted = tp | ~ignored_detections(boxes, network_input["target"]["ignore"])
        scores, tp = scores[torch.from_numpy(counted)], tp[counted]
    meta = sample["meta"]
    extra = {} if steps is None else {"refine_steps": int(steps)}
    block = resampling_block(meta, config.bootstrap_block_frames)
    if block is not None:  # frames of one video: resampled together
        extra["block"] = block
    return {**extra, "key": sample["key"],
            "group": str(meta.get("layout", meta.get("sequence", "all"))),
            "people": int(len(sample["target"]["boxes"]) if "kp3d" not in sample["target"]
                          else (sample["target"]["kp3d"][..., 3] > 0).any(-1).sum()),
            "detections": int(kept.sum()), "values": values,
            "detection": {"scores": [round(float(s), 6) for s in scores],
                          "tp": tp.astype(int).tolist(),
                          "gt": len(network_input["target"]["boxes"])}}


def evaluate_samples(samples: Iterable[dict], model: torch.nn.Module | dict, body: BodyModel,
                     config: EvalParams, size: tuple[int, int],
                     synthetic: bool) -> tuple[list[dict], list[dict]]:
    """Records of the images that succeeded, and of those that failed (each once, with
    its key and reason)."""
    records, failed = [], []
    for sample in samples:
        try:
            records.append(evaluate_sample(sample, model, body, config, size, synthetic))
        except Exception as error:  # noqa: BLE001 - counted, reported, and bounded above
            reason = "non_finite_prediction" if isinstance(error, PredictionError) else "error"
            failed.append({"key": sample["key"], "failed": reason, "error": repr(error)})
            print(f"{sample['key']}: evaluation failed: {error!r}")
            if reason == "error":
                traceback.print_exc()
    return records, failed


def refinement_counts(records: list[dict]) -> dict[str, int]:
    """For a refined model: images refinement changed, and its steps in all."""
    steps = [r["refine_steps"] for r in records if "refine_steps" in r]
    if not steps:
        return {}
    return {"refined_images": sum(s > 0 for s in steps), "refine_steps": sum(steps)}


def evaluate_benchmark(model_name: str, model: torch.nn.Module | dict, body: BodyModel,
                       benchmark: str, params: dict) -> dict:
    """The model on one benchmark: writes its records and metrics and returns the metrics.
    Fails when more than ``eval.max_failed_fraction`` of the images failed."""
    config = typed(EvalParams, params, "eval")
    common = typed(TrainParams, params, "train.common")
    size = (common.input_height, common.input_width)
    synthetic = section(params, f"prepare.{benchmark}")["kind"] == "synthetic"
    root = SHARDS / "test" / benchmark
    progress = tqdm(read_shards(root), total=load_index(root)["num_samples"],
                    desc=f"{model_name} on {benchmark}", unit="img", mininterval=5.0)
    records, failed = evaluate_samples(progress, model, body, config, size, synthetic)
    write_records(records_path(EVALUATIONS, benchmark, model_name), records + failed)
    result = {"benchmark": benchmark, "model": model_name, "body_model": body.name,
              "h36m_joints": body.h36m_joint_source,
              "dataset_kind": "synthetic" if synthetic else "real",
              "images": len(records), "failed_images": len(failed),
              "people": sum(r["people"] for r in records),
              "detections": sum(r["detections"] for r in records),
              "matched_people": int(sum(r["values"]["matched"][0] for r in records)),
              "depth_pairs": int(sum(r["values"]["depth_order"][1] for r in records)),
              "depth_pairs_overlapping": int(sum(r["values"]["depth_order_overlap"][1]
                                                 for r in records)),
              **refinement_counts(records),
              **summarise(records, config.bootstrap_replicates, int(params["seed"]))}
    write_json(metrics_path(METRICS_ROOT, benchmark, model_name), result)
    images = len(records) + len(failed)
    if len(failed) > config.max_failed_fraction * max(images, 1):
        raise RuntimeError(f"{len(failed)} of {images} images failed on {benchmark}: "
                           f"{[f['key'] for f in failed][:10]}")
    return result


def evaluate(model_name: str, benchmarks: list[str], params: dict) -> list[dict]:
    """The model on each benchmark in turn, the body model and the network loaded once
    (a process per benchmark would spend about 4 s of each stage starting up)."""
    body = from_section(BodyModelParams, params, "body_model").build()
    model = load_predictor(model_name, body)
    return [evaluate_benchmark(model_name, model, body, benchmark, params)
            for benchmark in benchmarks]


def main() -> None:
    parser = argparse.ArgumentParser(description="Evaluate one model on the benchmarks.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--benchmark", nargs="+",
                        help="default: every benchmark of eval.benchmarks")
    args = parser.parse_args()
    torch.set_num_threads(2)
    params = read_params()
    benchmarks = args.benchmark or list(typed(EvalParams, params, "eval").benchmarks)
    for result in evaluate(args.model, benchmarks, params):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
