"""Stage ``tables``: the paper's Tables 1-5 beside this run's numbers.

    python -m stages.tables --out reports

Reads ``metrics/<model>/<benchmark>.json`` (values with their bootstrap intervals),
``evaluations/<model>/<benchmark>.jsonl`` (per-image values, for the paired differences)
and the published numbers (``tables.paper``). Writes ``reports/table1..5.md`` and
``.csv``, the detection, refinement and per-action reports (``detection``, ``refine``,
``actions``), and ``reports/summary.json`` (flat keys ``<benchmark>.<model>.<metric>``, with
``_lo``/``_hi`` bounds and ``..._vs_baseline`` paired differences). Every table says
which benchmark and which body model produced our rows. A missing benchmark or model
shows as "n/a".
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from model.io import load_network
from ops.bootstrap import Interval, paired
from pipelines.evaluation import (
    METRICS,
    EvalParams,
    find_records,
    metric_replicates,
    read_records,
    record_weights,
)
from pipelines.figures import comparison_figures
from pipelines.shards import SHARDS, read_shards
from pipelines.training import TrainParams
from stages.common import BodyModelParams, from_section, read_params, section, typed, write_json

# table -> (column -> (paper benchmark, metric, group)), our models. Each evaluated
# benchmark stands for one paper benchmark (eval.stands_for): h36m, panoptic, mupots or
# posetrack; a table prints one block of rows per kind (synthetic, real) of benchmark.
SPECS = {
    "table1": ({"reconstruction_error_mm": ("h36m", "pa_mpjpe_mm", None)},
               ["mean_pose", "baseline", "full"]),
    "table2": ({**{g: ("panoptic", "mpjpe_mm", g) for g in ("haggling", "mafia", "ultimatum",
                                                            "pizza")},
                "mean": ("panoptic", "mpjpe_mm", "mean")}, ["mean_pose", "baseline", "full"]),
    "table3": ({"all": ("mupots", "pck_all", None), "matched": ("mupots", "pck_matched", None)},
               ["mean_pose", "baseline", "full", "full_refine"]),
    "table4": ({"mupots": ("mupots", "collision_frames", None),
                "posetrack": ("posetrack", "collision_frames", None),
                "mupots_matched_only": ("mupots", "collision_frames_matched", None),
                "posetrack_matched_only": ("posetrack", "collision_frames_matched", None)},
               ["baseline", "no_scene", "no_depth", "no_collision", "full", "full_refine"]),
    "table5": ({"accuracy": ("mupots", "depth_order_acc", None),
                "accuracy_overlapping_only": ("mupots", "depth_order_overlap_acc", None),
                "box_bottom_cue_same_pairs": ("mupots", "depth_order_box_cue_acc", None)},
               ["baseline", "no_scene", "no_collision", "no_depth", "full", "full_refine"]),
}
MODEL_LABELS = {"mean_pose": "mean pose at the true root (no image)", "baseline": "baseline",
                "full": "full (L_P + L_D)", "no_collision": "baseline + L_D (no L_P)",
                "no_depth": "baseline + L_P (no L_D)",
                "no_scene": "baseline fine-tuned without L_P or L_D (control, not in the paper)",
                "full_refine": "full + test-time refinement (not in the paper)"}
REFERENCE = "baseline"  # paired differences are against this model
CONTROL = "no_scene"  # the fine-tune without scene losses (reports/control.md)
KINDS = ("synthetic", "real")


def load_metrics(root: Path) -> dict[str, dict[str, dict]]:
    """benchmark -> model -> metrics dict, keyed by the ``benchmark`` and ``model`` each
    file records (so the folder layout, ``metrics_path``'s, is not read from the path)."""
    metrics: dict[str, dict[str, dict]] = {}
    for path in sorted(root.glob("*/*.json")):
        result = json.loads(path.read_text())
        models = metrics.setdefault(result["benchmark"], {})
        if result["model"] in models:
            raise ValueError(f"{path}: a second metrics file for {result['model']} on "
                             f"{result['benchmark']} under {root}")
        models[result["model"]] = result
    return {benchmark: dict(sorted(models.items()))
            for benchmark, models in sorted(metrics.items())}


def benchmark_sets(metrics: dict, stands_for: dict[str, str]) -> dict[str, dict[str, str]]:
    """kind -> (paper benchmark -> our benchmark of that kind evaluated for it)."""
    sets: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    for benchmark, models in sorted(metrics.items()):
        if benchmark in stands_for and models:
            kind = next(iter(models.values()))["dataset_kind"]
            sets[kind].setdefault(stands_for[benchmark], benchmark)
    return sets


def metric_key(metric: str, group: str | None, result: dict | None) -> str:
    """The key of ``metric`` in a metrics dict: overall, the mean over groups, or the
    group whose name contains ``group`` (a Panoptic sequence name holds its scene type)."""
    if group is None:
        return metric
    if group == "mean":
        return f"{metric}_group_mean"
    names = sorted(k for k in (result or {}) if k.startswith(f"{metric}_") and group in k
                   and not k.endswith(("_lo", "_hi")))
    return names[0] if names else f"{metric}_{group}"


def _number(value: float, metric: str) -> str:
    """Counts as integers, litres with two decimals, the rest with one (millimetres,
    percentages)."""
    if METRICS[metric][1] is None:
        return f"{value:.0f}"
    return f"{value:.2f}" if metric.startswith("collision_litres") else f"{value:.1f}"


def cell(result: dict | None, key: str, metric: str) -> str:
    """``value [lo, hi]`` from a metrics dict, or "n/a"."""
    if not result or key not in result:
        return "n/a"
    if f"{key}_lo" not in result:
        return _number(result[key], metric)
    return (f"{_number(result[key], metric)} [{_number(result[f'{key}_lo'], metric)}, "
            f"{_number(result[f'{key}_hi'], metric)}]")


def paired_difference(evaluations: Path, benchmark: str, model: str, metric: str,
                      group: str | None, replicates: int, seed: int,
                      reference: str = REFERENCE, action: str | None = None) -> Interval | None:
    """``model - reference`` on the images both evaluated (on ``action``'s people only,
    when given), with a paired bootstrap interval (the same resampled images for both),
    or ``None`` without records."""
    paths = [find_records(evaluations, benchmark, name) for name in (model, reference)]
    if not all(path.is_file() for path in paths):
        return None
    ours, theirs = ({r["key"]: r for r in read_records(path)} for path in paths)
    keys = sorted(set(ours) & set(theirs))
    entry = METRICS[metric][0]
    if not keys or any(entry not in r["values"] for r in (*ours.values(), *theirs.values())):
        return None
    if group not in (None, "mean"):
        matching = sorted({r["group"] for r in ours.values() if group in r["group"]})
        if not matching:
            return None
        group = matching[0]
    weights = record_weights([ours[k] for k in keys], replicates, seed)
    a_point, a_draws = metric_replicates([ours[k] for k in keys], weights, metric, group,
                                         action)
    b_point, b_draws = metric_replicates([theirs[k] for k in keys], weights, metric, group,
                                         action)
    if not (np.isfinite(a_point) and np.isfinite(b_point)):
        return None
    return paired(a_point, b_point, a_draws, b_draws)


def difference_cell(difference: Interval | None, metric: str) -> str:
    """``Δ [lo, hi]``, starred where the interval excludes zero."""
    if difference is None:
        return "n/a"
    shown = difference.high < 0 or difference.low > 0

    def signed(value: float) -> str:
        return f"+{_number(value, metric)}" if value >= 0 else _number(value, metric)

    return (f"{signed(difference.value)} [{signed(difference.low)}, "
            f"{signed(difference.high)}]{' *' if shown else ''}")


def build_table(name: str, paper: dict, metrics: dict, stands_for: dict[str, str],
                evaluations: Path, bootstrap: tuple[int, int]) -> tuple[pd.DataFrame, str, dict]:
    """The table (paper rows, then ours per kind of benchmark, with intervals and paired
    differences from the baseline), its note, and the paired differences (summary keys
    -> values)."""
    columns_spec, models = SPECS[name]
    extra = [c for c in columns_spec if c not in paper["columns"]]  # ours only (diagnostics)
    columns = paper["columns"] + extra
    differences = [f"Δ {c} vs {REFERENCE}" for c in columns]
    rows = {f"paper: {label}": [*values, *["n/a"] * len(extra), *["n/a"] * len(columns)]
            for label, values in paper["rows"].items()}
    notes, summary = [], {}
    for kind, chosen in benchmark_sets(metrics, stands_for).items():
        if not {spec[0] for spec in columns_spec.values()} & set(chosen):
            continue
        seen: dict[str, dict] = {}
        for model in models:
            row, deltas = [], []
            for column in columns:
                paper_benchmark, metric, group = columns_spec[column]
                benchmark = chosen.get(paper_benchmark)
                result = metrics.get(benchmark, {}).get(model) if benchmark else None
                row.append(cell(result, metric_key(metric, group, result), metric))
                if result:
                    seen[benchmark] = result
                if model in (REFERENCE, "mean_pose"):
                    deltas.append("")
                    continue
                difference = paired_difference(evaluations, benchmark, model, metric, group,
                                               *bootstrap) if benchmark else None
                deltas.append(difference_cell(difference, metric))
                if difference is not None:
                    key = (f"{benchmark}.{model}.{metric_key(metric, group, result)}"
                           f"_vs_{REFERENCE}")
                    summary.update({key: round(difference.value, 3),
                                    f"{key}_lo": round(difference.low, 3),
                                    f"{key}_hi": round(difference.high, 3)})
            rows[f"ours ({kind}): {MODEL_LABELS[model]}"] = row + deltas
        notes.append(_kind_note(kind, seen, name))
    return (pd.DataFrame.from_dict(rows, orient="index", columns=columns + differences),
            _note(name, notes), summary)


def _kind_note(kind: str, seen: dict[str, dict], name: str) -> str:
    sources = ", ".join(f"{b} ({r['images']} images)" for b, r in sorted(seen.items()))
    bodies = sorted({r["body_model"] for r in seen.values()})
    note = f"ours ({kind}): {sources or 'n/a'}, body model {'/'.join(bodies) or 'n/a'}"
    if name == "table1":
        joints = sorted({r.get("h36m_joints", "n/a") for r in seen.values()})
        note += f"; H36M joints from {' / '.join(joints)}"
    return note + "."


def _note(name: str, notes: list[str]) -> str:
    note = ("Our rows, by kind of benchmark: " + " ".join(notes) + " Synthetic rows stand in "
            "for the real benchmark and are not comparable with the paper's; real rows are, "
            "only with SMPL and the paper's training. Each of our numbers is followed by its "
            "95 % bootstrap interval over images; the Δ columns give each model minus the "
            f"{REFERENCE} on the same images, with a paired bootstrap interval, starred (*) "
            "where it excludes zero: only a starred difference is shown by this run.")
    if name == "table4":
        note += (" Collisions: frames with any positive 64^3 intersection volume among the"
                 " detections scoring >= eval.collision_score_threshold. The *_matched_only"
                 " columns (a diagnostic, ours only) count only those detections matched"
                 " to distinct annotated people, so duplicate detections of one person do"
                 " not count.")
    if name == "table5":
        note += (" Depth order: the share of pairs of matched people whose predicted root"
                 " depths are in the annotated order. The accuracy_overlapping_only column"
                 " (a diagnostic, ours only) counts only the pairs whose annotated boxes"
                 " overlap: the pairs whose order a rendering loss can see. The"
                 " box_bottom_cue_same_pairs column (a diagnostic, ours only) orders the"
                 " same pairs as the accuracy column by the bottom edges of the model's own"
                 " boxes (lower in the image: nearer), with no depth from the network.")
    return note


def detection_table(metrics: dict) -> pd.DataFrame:
    """AP50 (%) of each model's person detector on each benchmark, with intervals."""
    models = sorted({m for results in metrics.values() for m in results} - {"mean_pose"})
    return pd.DataFrame.from_dict(
        {f"ours: {MODEL_LABELS.get(m, m)}": [cell(metrics[b].get(m), "ap50", "pck_all")
                                             for b in sorted(metrics)] for m in models},
        orient="index", columns=sorted(metrics))


ACTION_MODELS = ("mean_pose", "baseline", "full")  # Table 1's rows


def actions_table(metrics: dict, evaluations: Path, bootstrap: tuple[int, int]) -> pd.DataFrame:
    """PA-MPJPE (mm) per action, on each benchmark whose people have one: the people
    scored, each of :data:`ACTION_MODELS`, and each trained model minus the mean pose on
    the same people (paired interval)."""
    rows, columns = {}, set()
    for benchmark, models in sorted(metrics.items()):
        first = models.get("mean_pose", next(iter(models.values())))
        actions = sorted(k.removeprefix("people_action_") for k in first
                         if k.startswith("people_action_"))
        if not actions:
            continue
        columns.update(actions)
        rows[f"{benchmark}: people"] = {a: str(first[f"people_action_{a}"]) for a in actions}
        for model in (m for m in ACTION_MODELS if m in models):
            rows[f"{benchmark}: {MODEL_LABELS[model]}"] = {
                a: cell(models[model], f"pa_mpjpe_mm_action_{a}", "pa_mpjpe_mm") for a in actions}
        for model in (m for m in ACTION_MODELS[1:] if m in models and "mean_pose" in models):
            rows[f"{benchmark}: Δ {model} − mean pose"] = {
                a: difference_cell(paired_difference(evaluations, benchmark, model,
                                                     "pa_mpjpe_mm", None, *bootstrap,
                                                     reference="mean_pose", action=a),
                                   "pa_mpjpe_mm") for a in actions}
    return pd.DataFrame.from_dict(rows, orient="index", columns=sorted(columns)).fillna("")


REFINE_METRICS = ("collision_frames", "depth_order_acc", "pck_all", "mpjpe_mm", "pa_mpjpe_mm")
CONTROL_METRICS = ("collision_frames", "collision_frames_matched", "collision_litres_matched",
                   "depth_order_acc", "depth_order_overlap_acc", "pck_all", "pa_mpjpe_mm")


def versus_table(metrics: dict, evaluations: Path, bootstrap: tuple[int, int], reference: str,
                 models: list[str], names: tuple[str, ...]) -> pd.DataFrame:
    """Each of ``models`` against ``reference`` on the same images: per benchmark and
    metric of ``names``, the reference, each model, and each model minus the reference
    with its paired interval (benchmarks without the reference are left out; a model not
    evaluated on one is "n/a" there)."""
    rows = {}
    for benchmark, results in sorted(metrics.items()):
        if reference not in results:
            continue
        for metric in (m for m in names if m in results[reference]):
            values = [cell(results.get(m), metric, metric) for m in (reference, *models)]
            deltas = [difference_cell(paired_difference(evaluations, benchmark, m, metric, None,
                                                        *bootstrap, reference=reference),
                                      metric) for m in models]
            rows[f"{benchmark}: {metric}"] = values + deltas
    return pd.DataFrame.from_dict(rows, orient="index", columns=[
        reference, *models, *(f"Δ {m} - {reference}" for m in models)])


@dataclass(frozen=True)
class FigureParams:
    """``tables.figures``: which models to draw on the first images of a benchmark."""

    benchmark: str
    count: int
    models: tuple[str, ...]


def figures(params: dict, out: Path) -> list[str]:
    """The ``tables.figures`` models side by side on the first few multi-person images;
    the written file names (none when a model or the benchmark is missing)."""
    spec = from_section(FigureParams, {"figures": section(params, "tables.figures")}, "figures")
    root = SHARDS / "test" / spec.benchmark
    paths = [Path("models") / name / "model.pt" for name in spec.models]
    if not root.is_dir() or not all(path.is_file() for path in paths):
        return []
    body = from_section(BodyModelParams, params, "body_model").build()
    networks = {name: load_network(path, body)[0] for name, path in zip(spec.models, paths,
                                                                         strict=True)}
    common = typed(TrainParams, params, "train.common")
    threshold = typed(EvalParams, params, "eval").collision_score_threshold
    return comparison_figures(read_shards(root), networks, body, threshold,
                              (common.input_height, common.input_width), out / "figures",
                              spec.count)


def write_report(out: Path, name: str, table: pd.DataFrame, index_label: str, title: str,
                 note: str) -> None:
    """``<name>.csv`` and ``<name>.md`` (title, table, note) in ``out``."""
    table.to_csv(out / f"{name}.csv", index_label=index_label)
    markdown = table.to_markdown(tablefmt="github")
    (out / f"{name}.md").write_text(f"# {title}\n\n{markdown}\n\n{note}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="Write Tables 1-5.")
    parser.add_argument("--metrics", default="metrics")
    parser.add_argument("--evaluations", default="evaluations")
    parser.add_argument("--paper", default="reference/paper_tables.yaml")
    parser.add_argument("--out", default="reports")
    parser.add_argument("--figures", action="store_true",
                        help="also draw baseline-vs-full figures (needs params.yaml, models)")
    args = parser.parse_args()
    params = read_params()
    config = typed(EvalParams, params, "eval")
    bootstrap, stands_for = (config.bootstrap_replicates, int(params["seed"])), config.stands_for
    paper = yaml.safe_load(Path(args.paper).read_text())
    metrics = load_metrics(Path(args.metrics))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    drawn = figures(params, out) if args.figures else []
    links = "\n".join(f"- [{name}](figures/{name})" for name in drawn)
    summary = {f"{b}.{m}.{k}": v for b, models in metrics.items() for m, result in models.items()
               for k, v in result.items() if isinstance(v, (int, float))}
    for name in SPECS:
        table, note, differences = build_table(name, paper[name], metrics, stands_for,
                                               Path(args.evaluations), bootstrap)
        summary.update(differences)
        if drawn and name in ("table4", "table5"):
            note += ("\n\nFigures (baseline vs full; input, top and side views; red ="
                     f" inside another person):\n{links}")
        write_report(out, name, table, "method", paper[name]["title"], note)
    write_report(out, "detection", detection_table(metrics), "method",
                 "Person detection: COCO-style AP50 (%)",
                 "AP at IoU 0.5 over every detection scoring >= eval.score_threshold, "
                 "computed as pycocotools does, with its 95 % bootstrap interval over images.")
    write_report(out, "refine", versus_table(metrics, Path(args.evaluations), bootstrap, "full",
                                             ["full_refine"], REFINE_METRICS),
                 "benchmark: metric", "Test-time coherence refinement (not in the paper)",
                 "Each value with its 95 % bootstrap interval over images; Δ: full + "
                 "refinement minus full on the same images, with a paired interval, starred "
                 "(*) where it excludes zero.")
    variants = [v for v in params["variants"] if v != CONTROL]
    write_report(out, "control", versus_table(metrics, Path(args.evaluations), bootstrap,
                                              CONTROL, variants, CONTROL_METRICS),
                 "benchmark: metric", "The scene losses against the fine-tune without them "
                 "(control, not in the paper)",
                 f"{CONTROL}: the baseline fine-tuned as the variants are (same steps, seed and "
                 "images) with neither scene loss, so Δ isolates what each scene loss adds; "
                 "the tables' Δ against the baseline also include the fine-tune itself. Each "
                 "value with its 95 % bootstrap interval over images; Δ: the variant minus "
                 f"{CONTROL} on the same images, with a paired interval, starred (*) where it "
                 "excludes zero.")
    write_report(out, "actions", actions_table(metrics, Path(args.evaluations), bootstrap),
                 "benchmark: row", "Pose error per action: PA-MPJPE (mm), a diagnostic",
                 "Each person counts under the action it performs (synthetic scenes: its "
                 "activity; Human3.6M: the frame's action). Values with their 95 % bootstrap "
                 "interval over images; Δ: the model minus the mean pose at the true root on "
                 "the same people, with a paired interval, starred (*) where it excludes "
                 "zero. A model that predicts about one pose whatever the image shows is "
                 "no better than the mean pose on the poses far from it.")
    write_json(out / "summary.json", summary)
    print(f"wrote {len(SPECS)} tables to {out}/")


if __name__ == "__main__":
    main()
