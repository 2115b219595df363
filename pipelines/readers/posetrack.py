"""PoseTrack 2018, from its official per-sequence annotation files.

Layout under the root::

    annotations/<split>/<sequence>.json      (images, annotations, categories)
    images/<split>/<sequence>/<frame>.jpg   (each image's file_name, relative to the root)

A sample is a labelled frame (``is_labeled``), sequence files in name order and frames
in file order. PoseTrack's 17 keypoint slots are COCO's, except that slots 1 and 2 hold
head_bottom and head_top and the ear slots are never annotated: only the nose and the
limbs become COCO-17 keypoints; the eyes and ears get visibility 0 (the official
preprocessing put head_bottom and head_top into the eye slots). A labelled keypoint
(``v`` 1) is usable. A person whose labelled keypoints or box lie absurdly far outside
the image (beyond -100 or 10,000 px, as the official preprocessing checks) is skipped
and counted. Each frame's ignore regions (polygons) become the ignore mask; the
``mask_file`` images hold the same regions, rasterised, and are not needed.

Pixels: keypoints are pixel indices (0.5 added); boxes and regions stay as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.readers.base import (
    Reader,
    ReaderOptions,
    Record,
    SourceError,
    Tally,
    load_json,
    require_keys,
)
from pipelines.readers.joints import convert

__all__ = ["PoseTrackReader"]

_ABSURD = (-100.0, 1e4)  # pixel range outside which an annotation is treated as broken


class PoseTrackReader(Reader):
    kind = "posetrack18"
    pixel_offset = 0.5

    def __init__(self, root: Path, dataset: str, options: ReaderOptions, body_kind: str) -> None:
        super().__init__(root, dataset, options, body_kind)
        folder = root / "annotations" / options.split
        self.files = sorted(folder.glob("*.json"))
        if not self.files:
            raise SourceError(f"{folder}: no PoseTrack 2018 annotation files (*.json) found")
        self.frames: list[tuple[str, dict, list[dict]]] = []  # (file, image, annotations)
        self.unlabelled = 0
        for path in self.files:
            self.frames.extend(self._labelled_frames(path))

    def _labelled_frames(self, path) -> list[tuple[str, dict, list[dict]]]:
        data = load_json(path, "a PoseTrack 2018 annotation file")
        require_keys(data, ("images", "annotations"), path, "a PoseTrack 2018 file")
        by_image: dict[int, list[dict]] = defaultdict(list)
        for annotation in data["annotations"]:
            by_image[annotation["image_id"]].append(annotation)
        relative = str(path.relative_to(self.root))
        labelled = [image for image in data["images"] if image.get("is_labeled")]
        self.unlabelled += len(data["images"]) - len(labelled)
        return [(relative, image, by_image[image["id"]]) for image in labelled]

    def __len__(self) -> int:
        return self.limited(len(self.frames))

    def input_files(self) -> list[Path]:
        return self.files

    def records(self, tally: Tally) -> Iterator[Record]:
        tally.add("filtered", "unlabelled_frame", str(self.files[0].parent), self.unlabelled)
        for index, (relative, image, people_annotations) in enumerate(self.frames[:len(self)]):
            where = f"{relative}#image_id={image['id']}"
            people = [p for p in (self._person(a, tally, where) for a in people_annotations) if p]
            if not people:
                tally.add("filtered", "frame_without_people", where)
                continue
            kp2d = np.stack([keypoints for keypoints, _ in people])
            boxes = np.stack([box for _, box in people])
            yield Record(key=self.key(index), root=self.root, image=image["file_name"],
                         meta=self.meta(where, image["file_name"], sequence=str(image["vid_id"]),
                                        frame=int(image["frame_id"])),
                         kp2d=kp2d, boxes=boxes, ignore=_ignore_regions(image) or None,
                         expected_size=_size(image))

    def _person(self, annotation: dict, tally: Tally,
                where: str) -> tuple[np.ndarray, np.ndarray] | None:
        """COCO-17 keypoints ``[17, 3]`` and box ``[4]`` of one annotation, or ``None``
        (counted) when it is unusable."""
        example = f"{where} track {annotation.get('track_id')}"
        keypoints = np.asarray(annotation.get("keypoints", []), dtype=np.float64)
        if keypoints.size != 51 or "bbox" not in annotation:
            tally.add("skipped_people", "no_keypoints_or_box", example)
            return None
        keypoints = keypoints.reshape(17, 3)
        labelled = keypoints[:, 2] > 0
        x, y, w, h = np.asarray(annotation["bbox"], dtype=np.float64)
        box = np.array([x, y, x + w, y + h])
        values = np.concatenate([keypoints[labelled, :2].ravel(), box])
        if ((values < _ABSURD[0]) | (values > _ABSURD[1])).any() or w <= 0 or h <= 0:
            tally.add("skipped_people", "coordinates_out_of_range", example)
            return None
        keypoints[:, :2] = np.where(labelled[:, None], keypoints[:, :2] + self.pixel_offset, 0)
        keypoints[:, 2] = labelled
        return convert(keypoints, "posetrack17", "coco17"), box


def _size(image: dict) -> tuple[int, int] | None:
    if "height" in image and "width" in image:
        return int(image["height"]), int(image["width"])
    return None


def _ignore_regions(image: dict) -> list[list[list[float]]]:
    """Each ignore region as a COCO polygon segmentation ``[[x0, y0, x1, y1, ...]]``."""
    xs, ys = image.get("ignore_regions_x") or [], image.get("ignore_regions_y") or []
    regions = []
    for region_x, region_y in zip(xs, ys, strict=True):
        if len(region_x) >= 3 and len(region_x) == len(region_y):
            regions.append([np.column_stack([region_x, region_y]).ravel().astype(float).tolist()])
    return regions
