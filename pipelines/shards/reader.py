"""Reading WebDataset shards in the schema of DESIGN §5, validated.

:func:`read_shards` is a ``webdataset.WebDataset`` pipeline. Shards are split across DDP
ranks (``split_by_node``) and DataLoader workers, and shuffled with a seed when asked.
Every sample is decoded and validated into a torchvision-detection style dict. A
malformed sample raises :class:`ShardFormatError`, naming the sample key (or, for a
corrupt tar, the shard and the last good key).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from PIL import Image

__all__ = ["ShardFormatError", "read_shards", "decode_sample", "load_index", "BODY_ARRAYS"]

_REQUIRED = ("meta.json", "boxes.npy", "kp2d.npy")
# The arrays of body.npz (DESIGN §5), also the body keys of a decoded target.
BODY_ARRAYS = ("rotmats", "shape", "transl", "has_body")


class ShardFormatError(ValueError):
    """A shard or sample does not follow the schema (the message names it)."""


def load_index(root: str | Path) -> dict[str, Any]:
    """A prepared dataset's ``index.json``."""
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
        ``kp3d_univ [P, 17, 4]`` (MuPoTS's height-normalised skeleton, for 3DPCK),
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
    if "kp3d_univ.npy" in sample:
        target["kp3d_univ"] = torch.from_numpy(
            _array(sample, "kp3d_univ.npy", (num_people, 17, 4), key))
    if "kp3d.npy" in sample:
        target["kp3d"] = torch.from_numpy(_array(sample, "kp3d.npy", (num_people, 17, 4), key))
    if "body.npz" in sample:
        target.update(_body(sample["body.npz"], num_people, key))
    return {"key": key, "image": torch.from_numpy(image.copy()).permute(2, 0, 1).contiguous(),
            "meta": meta, "target": target}


def _body(blob: bytes, num_people: int, key: str) -> dict[str, torch.Tensor]:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
            body = {name: arrays[name] for name in BODY_ARRAYS}
    except Exception as error:  # noqa: BLE001
        raise ShardFormatError(f"{key}: body.npz must hold {BODY_ARRAYS} ({error})") from error
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
