"""Stage ``prepare@<dataset>``: turn one dataset into WebDataset shards.

    python -m stages.prepare --dataset synth_train --out data/shards/synth_train
    python -m stages.prepare --preview synth_multi --out preview.png   # look at it

The embedded default datasets are synthetic (:mod:`pipelines.synthetic`). Samples are
generated in parallel (``shard.workers`` processes) but written in index order, so the
shards do not depend on the number of workers. Rejected scene draws and failed samples
are counted by reason in ``index.json``. The stage fails when more than
``shard.max_failed_fraction`` of the samples fail.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections import Counter
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import torch
from tqdm import tqdm

from pipelines.preview import preview_grid
from pipelines.shards import encode_sample, read_shards, write_shards
from pipelines.synthetic import SceneGenerator, SplitSpec, SyntheticConfig
from stages.common import from_section, read_params


@dataclass(frozen=True)
class ShardParams:
    """``shard`` section."""

    max_count: int  # samples per tar shard
    workers: int  # generator processes
    max_failed_fraction: float  # fail the stage above this share of failed samples


def synthetic_config(params: dict) -> SyntheticConfig:
    section = {k: tuple(v) if isinstance(v, list) else v for k, v in params["synthetic"].items()}
    return from_section(SyntheticConfig, {"synthetic": section}, "synthetic")


def split_spec(params: dict, dataset: str) -> SplitSpec:
    if dataset not in params.get("prepare", {}):
        raise KeyError(f"params.yaml has no prepare.{dataset} section")
    section = dict(params["prepare"][dataset])
    kind = section.pop("kind")
    if kind != "synthetic":
        raise NotImplementedError(f"prepare.{dataset}: kind {kind!r} has no reader yet; the "
                                  "embedded default supports kind 'synthetic'")
    section = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
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


def generate(config: SyntheticConfig, dataset: str, spec: SplitSpec, seed: int, workers: int,
             rejected: Counter):
    """Encoded samples in index order; counts rejections into ``rejected``."""
    args = (config, dataset, spec, seed)
    if workers <= 1:
        _init_worker(*args)
        results = map(_make, range(spec.size))
    else:
        pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker, args)
        results = pool.imap(_make, range(spec.size), chunksize=2)
    for encoded, counts in tqdm(results, total=spec.size, desc=dataset, unit="img",
                                mininterval=5.0):
        rejected.update(counts)
        if encoded is not None:
            yield encoded
    if workers > 1:
        pool.close()
        pool.join()


def prepare(dataset: str, out: Path, params: dict) -> dict:
    config, spec = synthetic_config(params), split_spec(params, dataset)
    shard = from_section(ShardParams, params, "shard")
    rejected: Counter = Counter()
    start = time.perf_counter()
    inputs = {"seed": params["seed"], "synthetic": asdict(config), "spec": asdict(spec)}
    index = write_shards(generate(config, dataset, spec, params["seed"], shard.workers,
                                  rejected), out, dataset, shard.max_count, rejected, inputs)
    elapsed = time.perf_counter() - start
    print(f"{dataset}: {index['num_samples']} images, {index['num_people']} people in "
          f"{len(index['shardlist'])} shards, {index['num_samples'] / elapsed:.1f} images/s; "
          f"rejected draws {dict(rejected)}")
    if rejected["failed"] > shard.max_failed_fraction * spec.size:
        raise RuntimeError(f"{dataset}: {rejected['failed']} of {spec.size} samples failed "
                           f"(limit {shard.max_failed_fraction:.0%}); see {out / 'index.json'}")
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a dataset's shards, or preview them.")
    parser.add_argument("--dataset", help="dataset to prepare (a key of params.yaml prepare)")
    parser.add_argument("--preview", metavar="DATASET", help="draw samples of a prepared dataset")
    parser.add_argument("--out", required=True, help="shard folder, or the preview PNG")
    parser.add_argument("--count", type=int, default=8, help="samples in the preview")
    args = parser.parse_args()
    if args.preview:
        samples = list(islice(read_shards(Path("data/shards") / args.preview), args.count))
        preview_grid(samples).save(args.out)
        print(f"wrote {args.out} ({len(samples)} samples of {args.preview})")
        return
    if not args.dataset:
        parser.error("--dataset or --preview is required")
    prepare(args.dataset, Path(args.out), read_params())


if __name__ == "__main__":
    main()
