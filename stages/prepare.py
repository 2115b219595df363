"""Stage ``prepare@<dataset>``: turn one dataset into WebDataset shards.

    python -m stages.prepare --dataset synth_train --out data/shards/train/synth_train
    python -m stages.prepare --dataset coco_val --out data/shards/test/coco_val
    python -m stages.prepare --preview synth_multi --out preview.png   # look at it
    python -m stages.prepare --preview coco_val mupots --count 2 --out preview.png

``prepare.<dataset>.kind`` picks the source. ``synthetic`` generates the embedded
default (:mod:`pipelines.synthetic`); every other kind reads a real dataset from
``sources.<kind>.root`` in the layout it ships in (:mod:`pipelines.readers`). Samples are
made in parallel (``shard.workers`` processes) and written in index order, so the
shards do not depend on the number of workers.

Nothing is left out silently. Rejected scene draws and failed synthetic samples, and
the images and people a reader skips, are counted by reason in ``index.json`` and
printed. The stage fails when more than ``shard.max_failed_fraction`` of the samples
(or, for real datasets, of the people) fail.
"""

from __future__ import annotations

import os

# Byte-identical shards on every machine. MKL picks its kernels by CPU model, and their
# rounding differs: one ulp in a vertex flips a rendered pixel or a rejection test, and
# the shards (and all that is trained on them) differ between machines. MKL's
# "conditional numerical reproducibility" mode gives every x86 CPU the same results. It
# must be set before torch loads MKL; the worker processes inherit it.
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")

import argparse
import hashlib
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from pipelines.preview import preview_grid
from pipelines.readers import build_reader
from pipelines.readers.base import Tally, load_record
from pipelines.shards import SHARDS, encode_sample, find_dataset, read_shards, write_shards
from pipelines.synthetic import SceneGenerator, SplitSpec, SyntheticConfig
from stages.common import from_section, read_params


@dataclass(frozen=True)
class ShardParams:
    """``shard`` section."""

    max_count: int  # samples per tar shard
    workers: int  # generator or reader processes
    max_failed_fraction: float  # fail the stage above this share of failed samples


def ordered_map(function: Callable, items: Iterable, total: int, workers: int, desc: str,
                initializer: Callable | None = None, initargs: tuple = ()) -> Iterator:
    """``function`` over ``items`` in ``workers`` processes, results in input order,
    with a progress bar (rate and time left)."""
    pool = None
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        results = map(function, items)
    else:
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer, initargs)
        results = pool.imap(function, items, chunksize=2)
    try:
        yield from tqdm(results, total=total, desc=desc, unit="img", mininterval=5.0)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


# ----------------------------------------------------------------------------
# Synthetic datasets

def synthetic_config(params: dict) -> SyntheticConfig:
    section = {k: tuple(v) if isinstance(v, list) else v for k, v in params["synthetic"].items()}
    return from_section(SyntheticConfig, {"synthetic": section}, "synthetic")


def split_spec(params: dict, dataset: str) -> SplitSpec:
    section = {k: tuple(v) if isinstance(v, list) else v
               for k, v in params["prepare"][dataset].items() if k != "kind"}
    return from_section(SplitSpec, {dataset: section}, dataset)


_GENERATOR: SceneGenerator | None = None


def _init_worker(config: SyntheticConfig, dataset: str, spec: SplitSpec, seed: int) -> None:
    global _GENERATOR
    torch.set_num_threads(1)  # one core per process; also keeps results independent of it
    from model.body import load_body_model

    _GENERATOR = SceneGenerator(load_body_model("anny"), config, dataset, spec, seed)


def _make(index: int):
    sample, rejected = _GENERATOR.sample(index)
    return (encode_sample(sample) if sample is not None else None), rejected


def prepare_synthetic(dataset: str, out: Path, params: dict, shard: ShardParams) -> dict:
    config, spec = synthetic_config(params), split_spec(params, dataset)
    rejected: Counter = Counter()

    def encoded():
        for sample, counts in ordered_map(_make, range(spec.size), spec.size, shard.workers,
                                          dataset, _init_worker,
                                          (config, dataset, spec, params["seed"])):
            rejected.update(counts)
            if sample is not None:
                yield sample

    inputs = {"seed": params["seed"], "synthetic": asdict(config), "spec": asdict(spec)}
    index = write_shards(encoded(), out, dataset, shard.max_count,
                         lambda: {"rejected": dict(sorted(rejected.items()))}, inputs)
    print(f"rejected draws {dict(rejected)}")
    if rejected["failed"] > shard.max_failed_fraction * spec.size:
        raise RuntimeError(f"{dataset}: {rejected['failed']} of {spec.size} samples failed "
                           f"(limit {shard.max_failed_fraction:.0%}); see {out / 'index.json'}")
    return index


# ----------------------------------------------------------------------------
# Real datasets

def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def prepare_real(dataset: str, out: Path, params: dict, shard: ShardParams) -> dict:
    section = params["prepare"][dataset]
    kind = section["kind"]
    options = {k: v for k, v in section.items() if k != "kind"}
    reader = build_reader(kind, dataset, options, params.get("sources"),
                          params["body_model"]["kind"])
    tally = Tally()

    def encoded():
        for sample, events in ordered_map(load_record, reader.records(tally), len(reader),
                                          shard.workers, dataset):
            tally.merge(events)
            if sample is not None:
                yield sample

    inputs = {"kind": kind, "options": asdict(reader.options), "body_model": reader.body_kind,
              "files": {str(p.relative_to(reader.root)): _digest(p)
                        for p in reader.input_files()}}
    index = write_shards(encoded(), out, dataset, shard.max_count, tally.report, inputs)
    for line in tally.lines():
        print(f"{dataset}: {line}")
    if index["num_samples"] == 0:
        raise RuntimeError(f"{dataset}: no samples from {reader.root} with the options "
                           f"{options} (what was left out and why: {out / 'index.json'})")
    check_failures(dataset, index, tally, shard.max_failed_fraction, out)
    return index


def check_failures(dataset: str, index: dict, tally: Tally, limit: float, out: Path) -> None:
    """Fail when skipped samples, or skipped people, exceed ``limit`` of their total."""
    for kind, done in (("skipped_samples", index["num_samples"]),
                       ("skipped_people", index["num_people"])):
        failed = tally.total(kind)
        if failed > limit * (failed + done):
            raise RuntimeError(f"{dataset}: {failed} of {failed + done} "
                               f"{kind.removeprefix('skipped_')} were skipped (limit "
                               f"{limit:.0%}); reasons in {out / 'index.json'}")


# ----------------------------------------------------------------------------

def prepare(dataset: str, out: Path, params: dict) -> dict:
    if dataset not in (params.get("prepare") or {}):
        raise KeyError(f"params.yaml has no prepare.{dataset} section")
    shard = from_section(ShardParams, params, "shard")
    start = time.perf_counter()
    synthetic = params["prepare"][dataset].get("kind") == "synthetic"
    index = (prepare_synthetic if synthetic else prepare_real)(dataset, out, params, shard)
    elapsed = time.perf_counter() - start
    print(f"{dataset}: {index['num_samples']} images, {index['num_people']} people in "
          f"{len(index['shardlist'])} shards, {index['num_samples'] / elapsed:.1f} images/s")
    return index


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description="Write a dataset's shards, or preview them.")
    parser.add_argument("--dataset", help="dataset to prepare (a key of params.yaml prepare)")
    parser.add_argument("--preview", metavar="DATASET", nargs="+",
                        help="draw samples of prepared datasets")
    parser.add_argument("--out", required=True, help="shard folder, or the preview PNG")
    parser.add_argument("--count", type=int, default=8, help="samples of each dataset to draw")
    parser.add_argument("--shards", default=str(SHARDS), help="where prepared datasets are")
    args = parser.parse_args(argv)
    if args.preview:
        samples = [sample for name in args.preview
                   for sample in islice(read_shards(find_dataset(name, Path(args.shards))),
                                        args.count)]
        grid = preview_grid(samples)
        grid.thumbnail((2000, 2000))  # real images are large; a readable overview is enough
        grid.save(args.out)
        print(f"wrote {args.out} ({len(samples)} samples of {', '.join(args.preview)})")
        return None
    if not args.dataset:
        parser.error("--dataset or --preview is required")
    return prepare(args.dataset, Path(args.out), read_params())


if __name__ == "__main__":
    main()
