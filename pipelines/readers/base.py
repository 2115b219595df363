"""What every real-dataset reader shares: options, records, the tally of what was left
out, and the last step that turns a record into a shard sample.

A reader turns one dataset, in the layout it ships in, into samples of the shard schema
(DESIGN §5) in two steps:

1. ``Reader.records(tally)`` walks the annotation files in file order and yields one
   :class:`Record` per image: the image path and its people, already converted to the
   schema's joint sets (:mod:`pipelines.readers.joints`) and to our pixel convention
   (pixel centres at integer + 0.5; each reader states the offset it adds). This is
   cheap and runs lazily in the stage's main process.
2. :func:`load_record` reads the image and finishes the sample; it is the slow part and
   runs in worker processes. It checks that the image decodes, boxes people from their
   keypoints where the dataset has no boxes (the official preprocessing: the labelled
   points' extent, expanded by 10 % of it on each side), clamps boxes to the image,
   marks keypoints outside the image as not visible, rasterises instance masks and
   ignore regions, and keeps the image bytes as they are (a JPEG is not re-encoded).

Problems come in two kinds. A :class:`SourceError` (a missing root, a missing or
malformed annotation file) stops the stage with a message naming the file. Everything
else is left out and counted in a :class:`Tally` by reason: a sample whose image is
missing or unreadable, a person with no usable annotation, and (as a normal filter,
not a failure) the records a protocol does not use.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from model.camera import default_intrinsics
from pipelines.shards import BODY_ARRAYS, encode_sample

__all__ = ["SourceError", "Skip", "ReaderOptions", "parse_options", "Record", "Tally",
           "Reader", "load_record", "read_image", "box_from_points", "rasterise", "load_json",
           "load_mat", "require_keys",
           "BOX_EXPANSION", "MIN_BOX_POINTS"]

BOX_EXPANSION = 0.1  # a box from keypoints grows by this share of its extent on each side
MIN_BOX_POINTS = 2  # labelled points a person needs for a box from keypoints


class SourceError(ValueError):
    """The dataset is not where, or not what, the reader expects (the message names the
    file and what was expected). The stage stops."""


class Skip(Exception):  # noqa: N818 - a control-flow signal, not an error
    """One sample is left out (counted by ``reason``; ``detail`` names the file)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


# ----------------------------------------------------------------------------
# Options

@dataclass(frozen=True)
class ReaderOptions:
    """The keys of a ``prepare.<name>`` entry every real dataset has (besides ``kind``)."""

    split: str  # the dataset's split (or the name this subset gets in sample keys)
    limit: int | None = None  # the first N samples in file order; None: all

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.split):
            raise ValueError(f"split {self.split!r}: use letters, digits and '_' only (it "
                             "becomes part of every sample key)")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be a positive number or null, got {self.limit}")


def parse_options(cls: type, section: dict[str, Any], where: str) -> ReaderOptions:
    """Build options dataclass ``cls`` from a ``prepare.<name>`` entry (without
    ``kind``): unknown keys are errors, keys with a documented default may be left out."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(section) - set(known))
    required = {name for name, f in known.items()
                if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(required - set(section))
    if unknown or missing:
        raise ValueError(f"{where}: unknown keys {unknown}, missing keys {missing}; this kind "
                         f"takes {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from error


# ----------------------------------------------------------------------------
# Records and the tally

@dataclass
class Record:
    """One image and its people, in the schema's joint sets and our pixel convention.

    Attributes:
        key: the sample key ``<dataset>-<split>-<index>``.
        root: the dataset root.
        image: the image path relative to the root.
        meta: the reader's meta fields: dataset, split, ``source`` (the annotation file
            relative to the root, and where in it), ``image`` and dataset-specific
            fields (sequence, camera, frame ...); :func:`load_record` adds the rest.
        kp2d: ``[P, 17, 3]`` COCO-17 (x, y, visibility).
        boxes: ``[P, 4]`` xyxy when the dataset has boxes; else ``None`` and
            ``box_points`` gives each person's labelled points ``[N_p, 2]`` to box.
        K: ``[3, 3]`` intrinsics, or ``None`` for the official default camera.
        intrinsics: where ``K`` comes from ("calibrated", "solved ...", "default").
        kp3d: ``[P, 17, 4]`` h36m17, camera frame, metres, + valid flag.
        kp3d_univ: the same joints of a normalised skeleton, where the benchmark's
            3DPCK uses one (MuPoTS's ``univ_annot3``).
        body: ``rotmats, shape, transl, has_body`` arrays and the body model name.
        segmentations: per person a COCO segmentation (polygons or RLE), for masks.
        ignore: COCO segmentations of regions with unannotated people.
        expected_size: ``(height, width)`` the annotation states, checked on load.
    """

    key: str
    root: Path
    image: str
    meta: dict[str, Any]
    kp2d: np.ndarray
    boxes: np.ndarray | None = None
    box_points: list[np.ndarray] | None = None
    K: np.ndarray | None = None
    intrinsics: str = "default"
    kp3d: np.ndarray | None = None
    kp3d_univ: np.ndarray | None = None
    body: dict[str, Any] | None = None
    segmentations: list[Any] | None = None
    ignore: list[Any] | None = None
    expected_size: tuple[int, int] | None = None


class Tally:
    """What a reader left out, by kind and reason, with the first few examples of each.

    Kinds: ``skipped_samples`` and ``skipped_people`` are failures (they count towards
    ``shard.max_failed_fraction``); ``filtered`` are records a protocol does not use."""

    KINDS = ("skipped_samples", "skipped_people", "filtered")
    EXAMPLES = 3

    def __init__(self) -> None:
        self.counts: dict[str, Counter] = {kind: Counter() for kind in self.KINDS}
        self.examples: dict[tuple[str, str], list[str]] = defaultdict(list)
        self._lock = threading.Lock()  # records() may run in a worker pool's feeder thread

    def add(self, kind: str, reason: str, example: str, count: int = 1) -> None:
        if kind not in self.counts:
            raise KeyError(f"unknown tally kind {kind!r}")
        if count == 0:
            return
        with self._lock:
            self.counts[kind][reason] += count
            if len(self.examples[kind, reason]) < self.EXAMPLES:
                self.examples[kind, reason].append(example)

    def merge(self, events: list[tuple[str, str, str]]) -> None:
        for kind, reason, example in events:
            self.add(kind, reason, example)

    def total(self, kind: str) -> int:
        return sum(self.counts[kind].values())

    def report(self) -> dict[str, dict[str, int]]:
        return {kind: dict(sorted(self.counts[kind].items())) for kind in self.KINDS}

    def lines(self) -> list[str]:
        """Human-readable lines: each reason, its count and examples."""
        return [f"{kind} {reason}: {count} (e.g. {'; '.join(self.examples[kind, reason])})"
                for kind in self.KINDS for reason, count in sorted(self.counts[kind].items())]


# ----------------------------------------------------------------------------
# The reader interface

class Reader:
    """Base of the dataset readers. A subclass sets ``kind``, ``options_type`` and
    ``pixel_offset`` (added to the dataset's pixel coordinates to reach ours), checks
    its files and loads its annotations in ``__init__`` (so a bad source fails before
    any work), and implements ``__len__`` and ``records``."""

    kind: str
    options_type: type[ReaderOptions] = ReaderOptions
    pixel_offset: float = 0.0

    def __init__(self, root: Path, dataset: str, options: ReaderOptions,
                 body_kind: str) -> None:
        if not root.is_dir():
            raise SourceError(f"{root}: the {self.kind} root folder does not exist (set "
                              f"sources.{self.kind}.root in params.yaml)")
        self.root, self.dataset, self.options, self.body_kind = root, dataset, options, body_kind

    def __len__(self) -> int:
        raise NotImplementedError

    def records(self, tally: Tally) -> Iterator[Record]:
        raise NotImplementedError

    def input_files(self) -> list[Path]:
        """The annotation files, whose contents are checksummed into ``index.json``."""
        raise NotImplementedError

    def key(self, index: int) -> str:
        return f"{self.dataset}-{self.options.split}-{index:06d}"

    def meta(self, source: str, image: str, **extra: Any) -> dict[str, Any]:
        """The reader's part of a sample's ``meta.json``."""
        return {"dataset": self.dataset, "split": self.options.split, "source": source,
                "image": image, **extra}

    def limited(self, count: int) -> int:
        return count if self.options.limit is None else min(count, self.options.limit)

    def require(self, path: Path, what: str) -> Path:
        """``path`` if it is a file, else a :class:`SourceError` naming it."""
        if not path.is_file():
            raise SourceError(f"{path}: {what} not found (expected under the {self.kind} root "
                              f"{self.root})")
        return path


def load_json(path: Path, what: str) -> Any:
    """A JSON annotation file, or a :class:`SourceError` naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SourceError(f"{path}: not a readable JSON file ({what} expected): "
                          f"{error}") from error


def load_mat(path: Path, variable: str, what: str) -> np.ndarray:
    """Variable ``variable`` of a MATLAB file (unsqueezed: an array keeps all its
    dimensions, a cell of a cell array is a ``[1, 1]`` array of a struct with attribute
    fields), or a :class:`SourceError` naming the file and the variables it does hold."""
    import scipy.io

    try:
        contents = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=False)
    except Exception as error:  # noqa: BLE001 - scipy raises several kinds
        raise SourceError(f"{path}: not a readable MATLAB file ({what} expected): "
                          f"{error}") from error
    if variable not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise SourceError(f"{path}: expected a variable '{variable}' ({what}), found {found}")
    return contents[variable]


def require_keys(data: Any, keys: tuple[str, ...], path: Path, what: str) -> None:
    """A :class:`SourceError` unless ``data`` is a mapping holding ``keys``."""
    if not isinstance(data, dict) or not set(keys) <= set(data):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise SourceError(f"{path}: expected {what} with keys {list(keys)}, found {found}")


# ----------------------------------------------------------------------------
# From record to sample

@dataclass(frozen=True)
class ImageFile:
    data: bytes
    extension: str  # "jpg" or "png": the shard field
    width: int
    height: int


def read_image(path: Path) -> ImageFile:
    """The image's bytes, checked to decode. JPEG and PNG are kept as they are; any
    other format is re-encoded as PNG. Raises :class:`Skip` when the file is missing
    or does not decode (a truncated file included)."""
    if not path.is_file():
        raise Skip("missing_image", str(path))
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height, fmt = image.width, image.height, image.format
            if fmt == "JPEG":  # decoding at 1/8 scale reads every byte, 20x faster
                image.draft(image.mode, (max(width // 8, 1), max(height // 8, 1)))
            image.load()
            if fmt not in ("JPEG", "PNG"):
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, format="PNG")
                return ImageFile(buffer.getvalue(), "png", width, height)
    except Exception as error:  # noqa: BLE001 - any decoding failure means unreadable
        raise Skip("unreadable_image", f"{path}: {error}") from error
    return ImageFile(data, "jpg" if fmt == "JPEG" else "png", width, height)


def box_from_points(points: np.ndarray) -> np.ndarray:
    """``[4]`` xyxy around ``points [N, 2]``, grown by :data:`BOX_EXPANSION` of the
    extent on each side (the official preprocessing)."""
    low, high = points.min(axis=0), points.max(axis=0)
    margin = (high - low) * BOX_EXPANSION
    return np.concatenate([low - margin, high + margin])


def rasterise(segmentations: list[Any], height: int, width: int) -> np.ndarray:
    """``[len, H, W]`` bool masks of COCO segmentations (polygon lists, RLE dicts with
    list or compressed counts), through pycocotools. An empty segmentation is all False."""
    from pycocotools import mask as coco_mask

    masks = np.zeros((len(segmentations), height, width), dtype=bool)
    for index, segmentation in enumerate(segmentations):
        if isinstance(segmentation, list):
            polygons = [p for p in segmentation if len(p) >= 6]  # at least 3 corners
            if not polygons:
                continue
            rle = coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
        elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
            rle = coco_mask.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        masks[index] = coco_mask.decode(rle).astype(bool)
    return masks


def _instance_map(masks: np.ndarray) -> np.ndarray:
    """``[H, W]`` uint8: person i + 1 where its mask is set; a later person wins where
    masks overlap (COCO masks hardly do)."""
    if len(masks) > 255:
        raise ValueError(f"{len(masks)} people do not fit an 8-bit instance map")
    ids = np.zeros(masks.shape[1:], dtype=np.uint8)
    for person, mask in enumerate(masks):
        ids[mask] = person + 1
    return ids


def load_record(record: Record) -> tuple[dict | None, list[tuple[str, str, str]]]:
    """Read a record's image and finish its sample.

    Returns:
        the encoded shard sample (``None`` if left out) and the events to tally.
    """
    path = record.root / record.image
    try:
        image = read_image(path)
        if record.expected_size and record.expected_size != (image.height, image.width):
            raise Skip("image_size_mismatch",
                       f"{path} is {image.width}x{image.height}, the annotation says "
                       f"{record.expected_size[1]}x{record.expected_size[0]}")
    except Skip as skip:
        return None, [("skipped_samples", skip.reason, f"{record.key}: {skip.detail}")]
    events: list[tuple[str, str, str]] = []
    boxes = record.boxes if record.boxes is not None else np.stack(
        [box_from_points(points) for points in record.box_points])
    boxes = np.clip(boxes, 0, [image.width, image.height, image.width, image.height])
    keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
    for person in np.flatnonzero(~keep):
        events.append(("skipped_people", "outside_image", f"{record.key} person {person}"))
    if not keep.any():
        events.append(("skipped_samples", "no_person_in_image", record.key))
        return None, events
    sample = _sample(record, image, boxes, keep)
    return encode_sample(sample), events


def _sample(record: Record, image: ImageFile, boxes: np.ndarray, keep: np.ndarray) -> dict:
    """The schema sample of ``record`` (people ``keep`` only) with its image."""
    kp2d = record.kp2d[keep].astype(np.float32)
    inside = ((kp2d[..., 0] >= 0) & (kp2d[..., 0] < image.width)
              & (kp2d[..., 1] >= 0) & (kp2d[..., 1] < image.height))
    kp2d[..., 2] *= inside
    K = record.K if record.K is not None else default_intrinsics(image.width, image.height).numpy()
    masks = ignore = None
    if record.segmentations is not None:
        people = [s for s, k in zip(record.segmentations, keep, strict=True) if k]
        masks = _instance_map(rasterise(people, image.height, image.width))
    if record.ignore:
        ignore = rasterise(record.ignore, image.height, image.width).any(axis=0).astype(np.uint8)
    body = None
    if record.body is not None:
        body = {name: np.asarray(record.body[name])[keep] for name in BODY_ARRAYS}
    meta = {
        **record.meta, "width": image.width, "height": image.height, "K": np.asarray(K).tolist(),
        "intrinsics": record.intrinsics, "num_people": int(keep.sum()),
        "has_masks": masks is not None, "has_kp3d": record.kp3d is not None,
        "has_body": body is not None, "has_ignore": ignore is not None,
        "body_model": record.body["model"] if record.body is not None else None,
        "box_source": "annotation" if record.boxes is not None else "keypoints+10%",
    }
    return {"__key__": record.key, "image_bytes": image.data, "image_format": image.extension,
            "meta": meta, "boxes": boxes[keep], "kp2d": kp2d,
            "kp3d": record.kp3d[keep] if record.kp3d is not None else None,
            "kp3d_univ": record.kp3d_univ[keep] if record.kp3d_univ is not None else None,
            "masks": masks, "ignore": ignore, "body": body}
