"""WebDataset shards in the schema of DESIGN §5: deterministic writing, validated reading.

Writing: samples are encoded here (PNG, ``.npy``, JSON, and ``.npz`` through a
zip writer with fixed timestamps, because ``numpy.savez`` stamps the current time)
and written in order with ``mtime=0``. The same samples therefore give byte-identical
shards. Each dataset folder also gets ``index.json``: shard list, sample and people
counts, what was left out by reason (rejected draws, failed or skipped samples), and a
checksum of the inputs.

Reading: :func:`read_shards` is a ``webdataset.WebDataset`` pipeline. Shards are split
across DDP ranks (``split_by_node``) and DataLoader workers, and shuffled with a seed
when asked. Every sample is decoded and validated into a torchvision-detection style
dict. A malformed sample raises :class:`ShardFormatError`, naming the sample key (or,
for a corrupt tar, the shard and the last good key).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from PIL import Image

__all__ = ["ShardFormatError", "encode_sample", "write_shards", "read_shards", "decode_sample",
           "load_index"]

_REQUIRED = ("meta.json", "boxes.npy", "kp2d.npy")
_BODY_ARRAYS = ("rotmats", "shape", "transl", "has_body")


class ShardFormatError(ValueError):
    """A shard or sample does not follow the schema (the message names it)."""


# ----------------------------------------------------------------------------
# Encoding

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
    if sample.get("kp3d") is not None:
        fields["kp3d.npy"] = _npy(sample["kp3d"].astype(np.float32))
    if sample.get("body") is not None:
        fields["body.npz"] = _npz(sample["body"])
    return fields


def write_shards(encoded_samples, out_dir: str | Path, dataset: str, max_count: int,
                 report: Callable[[], dict[str, Any]], inputs: dict[str, Any]) -> dict[str, Any]:
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


# ----------------------------------------------------------------------------
# Reading

def load_index(root: str | Path) -> dict[str, Any]:
    path = Path(root) / "index.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the prepare stage for this dataset "
                                "(dvc repro prepare@<dataset>)")
    return json.loads(path.read_text())


def _array(sample: dict, field: str, shape: tuple, key: str) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(sample[field]), allow_pickle=False)
    except Exception as error:  # noqa: BLE001 - any decoding failure is a format error
        raise ShardFormatError(f"{key}: field '{field}' is not a readable .npy "
                               f"({error})") from error
    if array.shape != shape:
        raise ShardFormatError(f"{key}: field '{field}' has shape {list(array.shape)}, "
                               f"expected {list(shape)}")
    return array


def _image(sample: dict, field: str, key: str, rgb: bool = False) -> np.ndarray:
    """Decode an image field; ``rgb`` converts photos (grayscale and CMYK JPEGs
    included) to RGB, while masks keep their single channel."""
    try:
        with Image.open(io.BytesIO(sample[field])) as image:
            return np.asarray(image.convert("RGB") if rgb and image.mode != "RGB" else image)
    except Exception as error:  # noqa: BLE001
        raise ShardFormatError(f"{key}: field '{field}' is not a readable image "
                               f"({error})") from error


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Validate one raw sample and decode it.

    Returns:
        ``{"key", "image" uint8 [3, H, W], "meta", "target"}`` where ``target`` holds
        ``boxes [P, 4]``, ``labels [P]`` (1 = person), ``keypoints [P, 17, 3]``, ``K [3, 3]``
        and, when present, ``masks [H, W]`` (instance ids), ``kp3d [P, 17, 4]``,
        ``rotmats [P, J, 3, 3]``, ``shape [P, S]``, ``transl [P, 3]``, ``has_body [P]``,
        and ``ignore [H, W]`` bool (regions with unannotated people: COCO crowds,
        PoseTrack ignore regions).
    """
    key = sample.get("__key__", "<no key>")
    missing = [f for f in _REQUIRED if f not in sample]
    image_field = "png" if "png" in sample else "jpg" if "jpg" in sample else None
    if image_field is None:
        missing.append("png|jpg")
    if missing:
        raise ShardFormatError(f"{key}: missing field(s) {missing}")
    try:
        meta = json.loads(sample["meta.json"])
        num_people = int(meta["num_people"])
        height, width = int(meta["height"]), int(meta["width"])
    except Exception as error:  # noqa: BLE001
        raise ShardFormatError(f"{key}: meta.json is unreadable or lacks num_people/width/height "
                               f"({error})") from error
    image = _image(sample, image_field, key, rgb=True)
    if image.shape != (height, width, 3):
        raise ShardFormatError(f"{key}: image is {list(image.shape)}, meta says {height}x{width}x3")
    target = {
        "boxes": torch.from_numpy(_array(sample, "boxes.npy", (num_people, 4), key)),
        "labels": torch.ones(num_people, dtype=torch.int64),
        "keypoints": torch.from_numpy(_array(sample, "kp2d.npy", (num_people, 17, 3), key)),
        "K": torch.tensor(meta["K"], dtype=torch.float32),
    }
    optional = (("has_masks", "masks.png"), ("has_kp3d", "kp3d.npy"), ("has_body", "body.npz"),
                ("has_ignore", "ignore.png"))
    for flag, field in optional:
        if meta.get(flag) and field not in sample:
            raise ShardFormatError(f"{key}: meta.json sets {flag} but field '{field}' is missing")
    if "masks.png" in sample:
        masks = _image(sample, "masks.png", key)
        if masks.shape != (height, width) or int(masks.max(initial=0)) > num_people:
            raise ShardFormatError(f"{key}: masks.png must be a {height}x{width} id map with ids "
                                   f"<= {num_people}, got {list(masks.shape)}")
        target["masks"] = torch.from_numpy(masks.astype(np.int64))
    if "ignore.png" in sample:
        ignore = _image(sample, "ignore.png", key)
        if ignore.shape != (height, width):
            raise ShardFormatError(f"{key}: ignore.png must be a {height}x{width} mask, got "
                                   f"{list(ignore.shape)}")
        target["ignore"] = torch.from_numpy(ignore > 0)
    if "kp3d.npy" in sample:
        target["kp3d"] = torch.from_numpy(_array(sample, "kp3d.npy", (num_people, 17, 4), key))
    if "body.npz" in sample:
        target.update(_body(sample["body.npz"], num_people, key))
    return {"key": key, "image": torch.from_numpy(image.copy()).permute(2, 0, 1).contiguous(),
            "meta": meta, "target": target}


def _body(blob: bytes, num_people: int, key: str) -> dict[str, torch.Tensor]:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
            body = {name: arrays[name] for name in _BODY_ARRAYS}
    except Exception as error:  # noqa: BLE001
        raise ShardFormatError(f"{key}: body.npz must hold {_BODY_ARRAYS} ({error})") from error
    for name, array in body.items():
        if array.shape[:1] != (num_people,):
            raise ShardFormatError(f"{key}: body.npz '{name}' has shape {list(array.shape)}, "
                                   f"expected {num_people} people first")
    return {name: torch.from_numpy(array) for name, array in body.items()}


def _with_context(samples):
    """Re-raise stream errors (a corrupt or truncated tar) with the last good key."""
    last = "<start of the dataset>"
    iterator = iter(samples)
    while True:
        try:
            sample = next(iterator)
        except StopIteration:
            return
        except ShardFormatError:
            raise
        except Exception as error:  # noqa: BLE001
            raise ShardFormatError(f"corrupt shard data after sample {last}: {error}") from error
        last = sample.get("__key__", last)
        yield sample


def read_shards(root: str | Path, shuffle: bool = False, seed: int = 0,
                buffer: int = 64) -> wds.WebDataset:
    """Iterable of decoded samples of one prepared dataset folder.

    Args:
        root: ``data/shards/<dataset>``.
        shuffle: shuffle shards and samples (training) with ``seed``; evaluation keeps
            the written order.
        buffer: sample shuffle buffer.
    Works under DDP (shards split by rank) and with DataLoader workers (split by worker).
    """
    index = load_index(root)
    urls = [str(Path(root) / shard["url"]) for shard in index["shardlist"]]
    if not urls:
        raise ShardFormatError(f"{root}: index.json lists no shards")
    dataset = wds.WebDataset(urls, shardshuffle=len(urls) if shuffle else False, detshuffle=True,
                             seed=seed, nodesplitter=wds.split_by_node, empty_check=False)
    dataset = dataset.compose(_with_context)
    if shuffle:
        dataset = dataset.shuffle(buffer, seed=seed)
    return dataset.map(decode_sample)
