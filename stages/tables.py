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

from stages.common import write_json

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
    "table4": ({"mupots": "synth_multi", "posetrack": "synth_crowd"},
               {"mupots": "collision_frames", "posetrack": "collision_frames"},
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
    columns = paper["columns"]
    rows = {f"paper: {label}": values for label, values in paper["rows"].items()}
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
        note += " Collisions: frames with any positive 64^3 intersection volume."
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns), note


def main() -> None:
    parser = argparse.ArgumentParser(description="Write Tables 1-5.")
    parser.add_argument("--metrics", default="metrics")
    parser.add_argument("--paper", default="reference/paper_tables.yaml")
    parser.add_argument("--out", default="reports")
    args = parser.parse_args()
    paper = yaml.safe_load(Path(args.paper).read_text())
    metrics = load_metrics(Path(args.metrics))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in SPECS:
        table, note = build_table(name, paper[name], metrics)
        table.to_csv(out / f"{name}.csv", index_label="method")
        markdown = table.to_markdown(tablefmt="github")
        (out / f"{name}.md").write_text(f"# {paper[name]['title']}\n\n{markdown}\n\n{note}\n")
    summary = {f"{b}.{m}.{k}": v for b, models in metrics.items() for m, result in models.items()
               for k, v in result.items() if isinstance(v, (int, float))}
    write_json(out / "summary.json", summary)
    print(f"wrote {len(SPECS)} tables to {out}/")


if __name__ == "__main__":
    main()
