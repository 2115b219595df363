"""Writing WebDataset shards in the schema of DESIGN §5, deterministically.

Samples are encoded here (PNG, ``.npy``, JSON, and ``.npz`` through a zip writer with
fixed timestamps, because ``numpy.savez`` stamps the current time) and written in order
with ``mtime=0``. The same samples therefore give byte-identical shards. Each dataset
folder also gets ``index.json``: shard list, sample and people counts, what was left out
by reason (rejected draws, failed or skipped samples), and a checksum of the inputs.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds
from PIL import Image

__all__ = ["encode_sample", "write_shards"]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    """Uncompressed ``.npz`` with fixed member timestamps (reproducible bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, _npy(arrays[name]))
    return buffer.getvalue()


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def encode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """A reader's or generator's sample dict (arrays) -> schema fields (bytes).

    The image is either ``image`` (an RGB array, written as PNG) or ``image_bytes`` with
    ``image_format`` ``"jpg"``/``"png"`` (a dataset's original file, stored unchanged)."""
    if "image_bytes" in sample:
        image_field = {sample["image_format"]: sample["image_bytes"]}
    else:
        image_field = {"png": _png(sample["image"])}
    fields = {
        "__key__": sample["__key__"],
        **image_field,
        "meta.json": json.dumps(sample["meta"], sort_keys=True).encode(),
        "boxes.npy": _npy(sample["boxes"].astype(np.float32)),
        "kp2d.npy": _npy(sample["kp2d"].astype(np.float32)),
    }
    if sample.get("masks") is not None:
        fields["masks.png"] = _png(sample["masks"].astype(np.uint8))
    if sample.get("ignore") is not None:
        fields["ignore.png"] = _png(sample["ignore"].astype(np.uint8))
    if sample.get("kp3d_univ") is not None:
        fields["kp3d_univ.npy"] = _npy(sample["kp3d_univ"].astype(np.float32))
    if sample.get("kp3d") is not None:
        fields["kp3d.npy"] = _npy(sample["kp3d"].astype(np.float32))
    if sample.get("body") is not None:
        fields["body.npz"] = _npz(sample["body"])
    return fields


def write_shards(encoded_samples: Iterable[dict[str, Any]], out_dir: str | Path, dataset: str,
                 max_count: int, report: Callable[[], dict[str, Any]],
                 inputs: dict[str, Any]) -> dict[str, Any]:
    """Write already-encoded samples (in order) to ``<out_dir>/<dataset>-NNNNNN.tar`` and
    ``index.json``. ``report()``, called once the samples are consumed, gives the counts
    of what was left out, by reason (merged into the index); ``inputs`` (the generation
    parameters or the annotation files' digests) are checksummed into the index.
    Returns the index."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    num_samples = num_people = 0
    pattern = str(out_dir / f"{dataset}-%06d.tar")
    with wds.ShardWriter(pattern, maxcount=max_count, maxsize=2**62, mtime=0, encoder=False,
                         verbose=0) as sink:
        for fields in encoded_samples:
            sink.write(fields)
            counts[Path(sink.fname).name] += 1
            num_people += json.loads(fields["meta.json"])["num_people"]
            num_samples += 1
    index = {
        "wids_version": 1,
        "dataset": dataset,
        "num_samples": num_samples,
        "num_people": num_people,
        "shardlist": [{"url": name, "nsamples": n} for name, n in sorted(counts.items())],
        **report(),
        "inputs_sha256": hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest(),
    }
    (out_dir / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index
