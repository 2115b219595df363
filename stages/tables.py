"""Stage ``tables``: the paper's Tables 1-5 beside this run's numbers.

    python -m stages.tables --out reports

Reads ``metrics/<benchmark>/<model>.json`` and the published numbers
(``tables.paper``). Writes ``reports/table1..5.md`` and ``.csv``, and
``reports/summary.json`` (flat keys ``<benchmark>.<model>.<metric>``). Every table
says which benchmark and which body model produced our rows. A missing benchmark or
model shows as "n/a".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import yaml

from stages.common import read_params, write_json

# table -> (benchmark per paper column, metric per paper column, our models)
SPECS = {
    "table1": ({"reconstruction_error_mm": "synth_single"},
               {"reconstruction_error_mm": "pa_mpjpe_mm"}, ["baseline", "full"]),
    "table2": ({c: "synth_groups" for c in ("haggling", "mafia", "ultimatum", "pizza", "mean")},
               {"haggling": "mpjpe_mm_haggling", "mafia": "mpjpe_mm_mafia",
                "ultimatum": "mpjpe_mm_ultimatum", "pizza": "mpjpe_mm_pizza",
                "mean": "mpjpe_mm"}, ["baseline", "full"]),
    "table3": ({"all": "synth_multi", "matched": "synth_multi"},
               {"all": "pck_all", "matched": "pck_matched"}, ["baseline", "full"]),
    "table4": ({"mupots": "synth_multi", "posetrack": "synth_crowd",
                "mupots_matched_only": "synth_multi", "posetrack_matched_only": "synth_crowd"},
               {"mupots": "collision_frames", "posetrack": "collision_frames",
                "mupots_matched_only": "collision_frames_matched",
                "posetrack_matched_only": "collision_frames_matched"},
               ["baseline", "no_depth", "no_collision", "full"]),
    "table5": ({"accuracy": "synth_multi"}, {"accuracy": "depth_order_acc"},
               ["baseline", "no_collision", "no_depth", "full"]),
}
MODEL_LABELS = {"baseline": "baseline", "full": "full (L_P + L_D)",
                "no_collision": "baseline + L_D (no L_P)", "no_depth": "baseline + L_P (no L_D)"}


def load_metrics(root: Path) -> dict[str, dict[str, dict]]:
    """benchmark -> model -> metrics dict."""
    metrics: dict[str, dict[str, dict]] = {}
    for path in sorted(root.glob("*/*.json")):
        metrics.setdefault(path.parent.name, {})[path.stem] = json.loads(path.read_text())
    return metrics


def build_table(name: str, paper: dict, metrics: dict) -> tuple[pd.DataFrame, str]:
    """The table (paper rows, then ours) and its note on where our numbers come from."""
    benchmarks, keys, models = SPECS[name]
    extra = [c for c in benchmarks if c not in paper["columns"]]  # ours only (diagnostics)
    columns = paper["columns"] + extra
    rows = {f"paper: {label}": values + ["n/a"] * len(extra)
            for label, values in paper["rows"].items()}
    body_models, images = set(), {}
    for model in models:
        values = []
        for column in columns:
            result = metrics.get(benchmarks[column], {}).get(model)
            value = result.get(keys[column]) if result else None
            values.append("n/a" if value is None else value)
            if result:
                body_models.add(result["body_model"])
                images[benchmarks[column]] = result["images"]
        rows[f"ours: {MODEL_LABELS[model]}"] = values
    sources = ", ".join(f"{b} ({images.get(b, 'n/a')} images)"
                        for b in sorted(set(benchmarks.values())))
    note = (f"Our rows: benchmark(s) {sources} (synthetic, embedded default), body model "
            f"{'/'.join(sorted(body_models)) or 'n/a'}. They are not comparable with the "
            "paper's rows, which were measured on the real benchmark with SMPL.")
    if name == "table4":
        note += (" Collisions: frames with any positive 64^3 intersection volume among the"
                 " detections scoring >= eval.collision_score_threshold. The *_matched_only"
                 " columns (a diagnostic, ours only) count only predictions matched to"
                 " distinct annotated people, so duplicate detections of one person do"
                 " not count.")
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns), note


def figures(params: dict, out: Path) -> list[str]:
    """Baseline vs full on the first few multi-person images of ``tables.figures``;
    returns the written file names (empty when a model or the benchmark is missing)."""
    import torch

    from pipelines.shards import read_shards
    from pipelines.transforms import to_network_input
    from stages.common import BodyModelParams, from_section
    from stages.evaluate import load_model
    from stages.figures import scene_figure

    spec = params["tables"]["figures"]
    models = list(spec["models"])
    root = Path("data/shards") / spec["benchmark"]
    if not root.is_dir() or not all(Path(f"models/{m}/model.pt").is_file() for m in models):
        return []
    body = from_section(BodyModelParams, params, "body_model").build()
    networks = {m: load_model(params, m, body) for m in models}
    size = (params["train"]["common"]["input_height"], params["train"]["common"]["input_width"])
    threshold = params["eval"]["collision_score_threshold"]
    (out / "figures").mkdir(parents=True, exist_ok=True)
    written = []
    for sample in read_shards(root):
        if len(written) == spec["count"]:
            break
        if sample["meta"]["num_people"] < 2:
            continue
        network_input = to_network_input(sample, *size)
        K = network_input["target"]["K"]
        rows = []
        with torch.no_grad():
            for name, network in networks.items():
                det = network(network_input["image"][None], intrinsics=[K])[0]
                keep = det["scores"] >= threshold
                if keep.any():
                    posed = body(det["rotmats"][keep], det["shape"][keep]).vertices
                    rows.append((name, posed + det["transl"][keep][:, None]))
                else:  # nothing confident enough to draw
                    rows.append((name, torch.zeros(0, int(body.faces.max()) + 1, 3)))
        picture = (network_input["image"].permute(1, 2, 0).numpy() * 255).astype("uint8")
        scene_figure(picture, K, rows, body.faces).save(out / "figures" / f"{sample['key']}.png")
        written.append(f"{sample['key']}.png")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description="Write Tables 1-5.")
    parser.add_argument("--metrics", default="metrics")
    parser.add_argument("--paper", default="reference/paper_tables.yaml")
    parser.add_argument("--out", default="reports")
    parser.add_argument("--figures", action="store_true",
                        help="also draw baseline-vs-full figures (needs params.yaml, models)")
    args = parser.parse_args()
    paper = yaml.safe_load(Path(args.paper).read_text())
    metrics = load_metrics(Path(args.metrics))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    drawn = figures(read_params(), out) if args.figures else []
    links = "\n".join(f"- [{name}](figures/{name})" for name in drawn)
    for name in SPECS:
        table, note = build_table(name, paper[name], metrics)
        if drawn and name in ("table4", "table5"):
            note += ("\n\nFigures (baseline vs full; input, top and side views; red ="
                     f" inside another person):\n{links}")
        table.to_csv(out / f"{name}.csv", index_label="method")
        markdown = table.to_markdown(tablefmt="github")
        (out / f"{name}.md").write_text(f"# {paper[name]['title']}\n\n{markdown}\n\n{note}\n")
    summary = {f"{b}.{m}.{k}": v for b, models in metrics.items() for m, result in models.items()
               for k, v in result.items() if isinstance(v, (int, float))}
    write_json(out / "summary.json", summary)
    print(f"wrote {len(SPECS)} tables to {out}/")


if __name__ == "__main__":
    main()
