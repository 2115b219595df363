"""WebDataset shards in the schema of DESIGN §5: deterministic writing
(:mod:`~pipelines.shards.writer`), validated reading (:mod:`~pipelines.shards.reader`).

Prepared datasets live in ``data/shards/<role>/<name>``: role ``train`` for the datasets
training reads, ``test`` for the benchmarks (``datasets`` in params.yaml maps each name
to its role), so a training stage depends on the training shards only.
"""

from pathlib import Path

from pipelines.shards.reader import (
    BODY_ARRAYS,
    ShardFormatError,
    decode_sample,
    load_index,
    read_shards,
)
from pipelines.shards.writer import encode_sample, write_shards

__all__ = ["ShardFormatError", "encode_sample", "write_shards", "read_shards", "decode_sample",
           "load_index", "BODY_ARRAYS", "SHARDS", "ROLES", "shard_folder", "find_dataset"]

SHARDS = Path("data/shards")
ROLES = ("train", "test")


def shard_folder(role: str, name: str, root: Path = SHARDS) -> Path:
    """Where dataset ``name`` of ``role`` is prepared."""
    if role not in ROLES:
        raise ValueError(f"dataset {name!r}: role {role!r}, expected one of {ROLES}")
    return root / role / name


def find_dataset(name: str, root: Path = SHARDS) -> Path:
    """A prepared dataset's folder, whichever its role."""
    for role in ROLES:
        if (root / role / name / "index.json").is_file():
            return root / role / name
    raise FileNotFoundError(f"dataset {name!r} is not prepared under {root}/<train|test>/ "
                            f"(dvc repro prepare@{name})")
