"""Reader throughput: samples/s of each real-dataset reader on the fixtures, beside the
synthetic generator measured in the same process.

Each reader reads its miniature official layout (tests/real_tree.py: real annotation
excerpts, real or blank images), makes every record, loads and encodes every sample in
one process (``shard.workers`` processes scale both the same way). The synthetic
generator makes default-size scenes (params.yaml ``synthetic``). Real readers mostly
copy bytes and check that the JPEG decodes, so they should be far faster than
rendering scenes; the ratio says how much.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
import yaml

from pipelines.readers import build_reader
from pipelines.readers.base import Tally, load_record
from pipelines.synthetic import SceneGenerator
from stages.prepare import split_spec, synthetic_config
from tests.real_tree import PREPARE, build_real_tree

ROOT = Path(__file__).resolve().parents[1]


def reader_rate(name: str, sources: dict, repeats: int = 3) -> tuple[int, float]:
    """(samples, samples/s) of one fixture dataset, best of ``repeats`` passes."""
    section = copy.deepcopy(PREPARE[name])
    kind = section.pop("kind")
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        reader = build_reader(kind, name, section, sources, "anny")
        count = sum(load_record(record)[0] is not None for record in reader.records(Tally()))
        best = min(best, time.perf_counter() - start)
    return count, count / best


def synthetic_rate(count: int = 4) -> float:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    from model.body import load_body_model

    generator = SceneGenerator(load_body_model("anny"), synthetic_config(params), "synth_multi",
                               split_spec(params, "synth_multi"), seed=0)
    generator.sample(0)  # warm-up
    start = time.perf_counter()
    for index in range(1, count + 1):
        generator.sample(index)
    return count / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(1)
    synthetic = synthetic_rate()
    with tempfile.TemporaryDirectory() as folder:
        roots = build_real_tree(Path(folder))
        sources = {kind: {"root": root} for kind, root in roots.items()}
        rows = [(name, *reader_rate(name, sources)) for name in PREPARE]
    print(f"{'dataset (fixture)':22s} {'samples':>8s} {'samples/s':>10s} {'vs synthetic':>13s}")
    for name, count, rate in rows:
        print(f"{name:22s} {count:8d} {rate:10.1f} {rate / synthetic:12.1f}x")
    print(f"{'synthetic generator':22s} {4:8d} {synthetic:10.2f} {1.0:12.1f}x")


if __name__ == "__main__":
    main()
