"""Training-seed replicates of the fine-tunes: how much of a scene loss's effect survives
another run of the same training? (Opt-in; not a DVC stage, since it multiplies the
fine-tuning time.)

    python -m stages.replicate --seeds 1 2 [--variants full no_depth no_collision no_scene]
        [--benchmarks synth_multi synth_crowd] [--out replicates]

Needs a finished ``dvc repro`` (the shards, ``models/baseline``, the evaluations). For
each extra seed it makes a workspace ``<out>/seed<k>/`` (links to ``data/`` and
``models/baseline``, and ``params.yaml`` with ``seed: k``), fine-tunes each variant
there from the same baseline and evaluates it on each benchmark, resuming whatever is
already done. A workspace made from another baseline or other parameters is emptied
and made again, so a new ``dvc repro`` never pairs its baseline with old fine-tunes;
when only one variant's ``losses`` entry changed, only that variant is made again. (The
workspace's ``params.yaml`` says what it was made from, and its stamp, the SHA-256 of
the baseline's model file and of that ``params.yaml``, vouches for it.) The main run
counts as seed 0.

It then writes ``<out>/report.md`` and ``<out>/summary.json``: for each variant,
benchmark and metric (Table 4's collision frames, also among matched people only, and
how much those people intersect, in litres per frame; Table 5's depth-order accuracy;
and PA-MPJPE: what the variant costs in pose), each seed's paired difference from the
baseline with its image-bootstrap interval, their mean over seeds, and two intervals
for that mean.
When the control ``no_scene`` (the fine-tune without scene losses) is among the
variants, each other variant is also compared with the control *of the same seed*
(same images in the same order, so the difference holds what the scene losses add,
less of the fine-tune's own randomness). The intervals:

- **across seeds**: Student's t over the seeds' differences (the spread of training
  itself, on these test images);
- **over images**: the percentile bootstrap of the seed mean, every seed and the
  baseline resampled on the same images.

A difference counts as shown only when both exclude zero on the same side.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml
from scipy import stats

from ops.bootstrap import Interval, interval, paired
from pipelines.evaluation import metric_replicates, read_records, record_weights, records_path
from stages.common import read_params, write_json

ROOT = Path(__file__).resolve().parents[1]
# Table 4 (all detections, and those matched to distinct people: no duplicates), how deep
# those matched people intersect, Table 5, Table 5 on the pairs whose boxes overlap
# (diagnostics), and what a variant costs in pose
METRICS = ("collision_frames", "collision_frames_matched", "collision_litres_matched",
           "depth_order_acc", "depth_order_overlap_acc", "pa_mpjpe_mm")
REFERENCE = "baseline"
CONTROL = "no_scene"  # the fine-tune without scene losses, compared seed by seed
# What a variant's fine-tune and evaluations leave in a workspace: <folder>/<variant>/
VARIANT_OUTPUTS = ("models", "checkpoints", "logs", "metrics", "evaluations")


@dataclass
class SeedSpread:
    """One (variant, reference, benchmark, metric): the seeds' paired differences from
    the reference and their mean with its two intervals."""

    seeds: list[int]
    per_seed: list[Interval]
    across_seeds: Interval
    over_images: Interval

    @property
    def shown(self) -> bool:
        bounds = [self.across_seeds, self.over_images]
        return (all(b.low > 0 for b in bounds) or all(b.high < 0 for b in bounds))


def seed_spread(per_seed_records: dict[int, list[dict]],
                reference_records: list[dict] | dict[int, list[dict]], metric: str,
                replicates: int, seed: int) -> SeedSpread:
    """:class:`SeedSpread` of ``metric`` from each seed's per-image records and the
    reference's, on the images all of them evaluated. The reference is one model (the
    baseline: a list of records) or one per seed (the control: seed -> records)."""
    by_key = {s: {r["key"]: r for r in records} for s, records in per_seed_records.items()}
    if not isinstance(reference_records, dict):
        reference_records = dict.fromkeys(per_seed_records, reference_records)
    references = {s: {r["key"]: r for r in reference_records[s]} for s in per_seed_records}
    keys = sorted(set.intersection(*(set(k) for k in (*by_key.values(),
                                                      *references.values()))))
    if not keys:
        raise ValueError(f"replicate: no image evaluated by every seed and the reference "
                         f"({metric})")
    weights = record_weights([by_key[min(by_key)][k] for k in keys], replicates, seed)
    seeds = sorted(by_key)
    per_seed, draws = [], []
    for s in seeds:
        point, draw = metric_replicates([by_key[s][k] for k in keys], weights, metric)
        base_point, base_draws = metric_replicates([references[s][k] for k in keys], weights,
                                                   metric)
        per_seed.append(paired(point, base_point, draw, base_draws))
        draws.append(draw - base_draws)
    across = across_seeds([difference.value for difference in per_seed])
    return SeedSpread(seeds, per_seed, across, interval(across.value, np.mean(draws, axis=0)))


def across_seeds(points: list[float]) -> Interval:
    """The mean of one value per training seed with its 95 % Student's t interval
    (``nan`` bounds for a single seed)."""
    mean = float(np.mean(points))
    if len(points) < 2:
        return Interval(mean, float("nan"), float("nan"))
    half = stats.t.ppf(0.975, len(points) - 1) * np.std(points, ddof=1) / np.sqrt(len(points))
    return Interval(mean, mean - half, mean + half)


def prepare_workspace(work: Path, seed: int, root: Path = Path(".")) -> None:
    """``work`` with ``data`` and ``models/baseline`` linked from ``root`` and its
    ``params.yaml`` with ``seed: <seed>``. What it already holds is kept only where it was
    made from this baseline and these parameters: the workspace is emptied when the
    baseline or any parameter outside ``losses`` changed, and a variant's outputs are
    removed when only its ``losses`` entry changed (the other variants are kept)."""
    for target in (root / "data", root / "models" / REFERENCE):
        if not target.exists():
            raise FileNotFoundError(f"replicate: {target} is missing; run `dvc repro` first")
    params = read_params(root / "params.yaml")
    params["seed"] = seed
    text = yaml.safe_dump(params, sort_keys=False)
    baseline = root / "models" / REFERENCE / "model.pt"
    baseline_bytes = baseline.read_bytes() if baseline.is_file() else b""
    if work.exists():
        _keep_what_these_params_made(work, params, baseline_bytes)
    (work / "models").mkdir(parents=True, exist_ok=True)
    for link, target in ((work / "data", root / "data"),
                         (work / "models" / REFERENCE, root / "models" / REFERENCE)):
        if not link.is_symlink():
            link.symlink_to(target.resolve(), target_is_directory=True)
    (work / "params.yaml").write_text(text)
    (work / "stamp.sha256").write_text(_stamp(baseline_bytes, text))


def _stamp(baseline_bytes: bytes, params_text: str) -> str:
    """What a workspace was made from: its baseline's model file and its params.yaml."""
    return hashlib.sha256(baseline_bytes + params_text.encode()).hexdigest()


def _keep_what_these_params_made(work: Path, params: dict, baseline_bytes: bytes) -> None:
    """Empty ``work``, or remove single variants' outputs, where they were made from
    another baseline or other parameters than ``params``. The workspace's own
    ``params.yaml`` says what they were made from; its stamp vouches for it."""
    stamp_file, made_with = work / "stamp.sha256", work / "params.yaml"
    old_text = made_with.read_text() if made_with.is_file() else ""
    trusted = stamp_file.is_file() and stamp_file.read_text() == _stamp(baseline_bytes,
                                                                        old_text)
    old = yaml.safe_load(old_text) if trusted else {}  # only what we wrote is parsed
    without_losses = [{k: v for k, v in p.items() if k != "losses"} for p in (old, params)]
    if not trusted or without_losses[0] != without_losses[1]:
        print(f"replicate: {work} was made from another baseline or other parameters; "
              "starting it afresh", flush=True)
        shutil.rmtree(work)
        return
    old_losses, new_losses = old.get("losses", {}), params.get("losses", {})
    for variant in sorted(set(old_losses) | set(new_losses)):
        if old_losses.get(variant) != new_losses.get(variant):
            print(f"replicate: {work.name}: losses.{variant} changed; its fine-tune and "
                  "evaluations are made again", flush=True)
            for folder in VARIANT_OUTPUTS:
                shutil.rmtree(work / folder / variant, ignore_errors=True)


def _run(command: list[str], work: Path, label: str) -> None:
    print(f"replicate: {label}", flush=True)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", *command], cwd=work, env=environment)
    if result.returncode:
        raise SystemExit(f"replicate: {label} failed (exit {result.returncode}) in {work}")


def run_seed(work: Path, variants: list[str], benchmarks: list[str]) -> None:
    """Fine-tune and evaluate each variant in ``work``, skipping what is there (a variant
    whose evaluations all exist is not fine-tuned again, even if its model was removed)."""
    for variant in variants:
        missing = [b for b in benchmarks
                   if not records_path(work / "evaluations", b, variant).is_file()]
        if missing and not (work / "models" / variant / "model.pt").is_file():
            _run(["stages.train", "--phase", "finetune", "--variant", variant], work,
                 f"{work.name}: fine-tune {variant}")
        if missing:
            _run(["stages.evaluate", "--model", variant, "--benchmark", *missing], work,
                 f"{work.name}: evaluate {variant} on {', '.join(missing)}")


def _cell(value: Interval, digits: int) -> str:
    return f"{value.value:+.{digits}f} [{value.low:+.{digits}f}, {value.high:+.{digits}f}]"


def report(spreads: dict[tuple[str, str, str, str], SeedSpread]) -> str:
    """Markdown table of every :class:`SeedSpread`."""
    lines = ["# Training-seed replicates of the fine-tunes", "",
             "| variant | vs | benchmark | metric | per seed (Δ, image interval) "
             "| mean | across seeds (t) | over images | shown |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (variant, reference, benchmark, metric), spread in spreads.items():
        digits = (0 if metric.startswith("collision_frames")
                  else 2 if metric.startswith("collision_litres") else 1)
        per_seed = "; ".join(f"seed {s}: {_cell(v, digits)}"
                             for s, v in zip(spread.seeds, spread.per_seed, strict=True))
        lines.append(f"| {variant} | {reference} | {benchmark} | {metric} | {per_seed} | "
                     f"{spread.across_seeds.value:+.{digits + 1}f} | "
                     f"{_cell(spread.across_seeds, digits + 1)} | "
                     f"{_cell(spread.over_images, digits + 1)} | "
                     f"{'yes' if spread.shown else 'no'} |")
    lines += ["", "Δ: the variant minus the reference (vs) on the same images: the "
              f"baseline, or the control {CONTROL} (the fine-tune without scene losses) of "
              "the same seed. Across seeds: Student's t over the seeds' differences "
              "(training randomness, these images). Over images: percentile bootstrap of "
              "the seed mean, all seeds and references resampled on the same images. "
              "Shown: both exclude zero on the same side.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True,
                        help="extra training seeds (the main run is seed 0)")
    parser.add_argument("--variants", nargs="+", help="default: params.yaml's variants")
    parser.add_argument("--benchmarks", nargs="+", default=["synth_multi", "synth_crowd"])
    parser.add_argument("--out", default="replicates")
    args = parser.parse_args()
    if 0 in args.seeds:
        raise SystemExit("replicate: seed 0 is the main run; give the extra seeds")
    params, out = read_params(), Path(args.out)
    args.variants = args.variants or list(params["variants"])
    for seed in args.seeds:
        prepare_workspace(out / f"seed{seed}", seed)
        run_seed(out / f"seed{seed}", args.variants, args.benchmarks)
    places = {0: Path("."), **{s: out / f"seed{s}" for s in args.seeds}}

    def records(place: Path, benchmark: str, model: str) -> list[dict]:
        return read_records(records_path(place / "evaluations", benchmark, model))

    spreads = {}
    for variant in args.variants:
        for benchmark in args.benchmarks:
            ours = {s: records(place, benchmark, variant) for s, place in places.items()}
            references = {REFERENCE: records(Path("."), benchmark, REFERENCE)}
            if CONTROL in args.variants and variant != CONTROL:
                references[CONTROL] = {s: records(place, benchmark, CONTROL)
                                       for s, place in places.items()}
            for name, reference in references.items():
                for metric in METRICS:
                    spreads[variant, name, benchmark, metric] = seed_spread(
                        ours, reference, metric, params["eval"]["bootstrap_replicates"],
                        params["seed"])
    (out / "report.md").write_text(report(spreads))
    write_json(out / "summary.json", {"/".join(key): {**asdict(spread), "shown": spread.shown}
                                      for key, spread in spreads.items()})
    print(f"replicate: wrote {out / 'report.md'}")


if __name__ == "__main__":
    main()
