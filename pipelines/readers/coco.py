"""COCO person keypoints (2017 layout).

Layout under the root::

    annotations/person_keypoints_<split>.json
    <split>/<file_name>

A sample is an image with at least one non-crowd person, in the order of the file's
``images`` list. Every non-crowd person is a person of the sample, with its box, its
17 keypoints (a keypoint labelled in COCO, ``v`` 1 or 2, is usable; ``v`` 0 is not) and
its segmentation, which becomes the instance mask. A person with no labelled keypoint
stays: its box and mask still supervise detection and depth order. Crowd annotations
are never people; their regions become the sample's ignore mask.

Pixels: COCO keypoints are pixel indices, so 0.5 is added (detectron2 reads them the
same way); boxes and polygons are continuous coordinates and stay as they are.
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

__all__ = ["CocoReader"]


class CocoReader(Reader):
    kind = "coco"
    pixel_offset = 0.5

    def __init__(self, root: Path, dataset: str, options: ReaderOptions, body_kind: str) -> None:
        super().__init__(root, dataset, options, body_kind)
        relative = f"annotations/person_keypoints_{options.split}.json"
        self.annotation_file = self.require(root / relative, "COCO keypoint annotations")
        self.relative = relative
        data = load_json(self.annotation_file, "COCO keypoint annotations")
        require_keys(data, ("images", "annotations", "categories"), self.annotation_file,
                     "a COCO annotation file")
        persons = [c["id"] for c in data["categories"] if c.get("name") == "person"]
        if not persons:
            raise SourceError(f"{self.annotation_file}: no 'person' category")
        self.by_image: dict[int, list[dict]] = defaultdict(list)
        for annotation in data["annotations"]:
            if annotation.get("category_id") == persons[0]:
                self.by_image[annotation["image_id"]].append(annotation)
        self.images = [image for image in data["images"]
                       if any(not a.get("iscrowd") for a in self.by_image[image["id"]])]
        self.without_people = len(data["images"]) - len(self.images)

    def __len__(self) -> int:
        return self.limited(len(self.images))

    def input_files(self) -> list[Path]:
        return [self.annotation_file]

    def records(self, tally: Tally) -> Iterator[Record]:
        tally.add("filtered", "image_without_person", self.relative, self.without_people)
        for index, image in enumerate(self.images[:len(self)]):
            annotations = self.by_image[image["id"]]
            people = [a for a in annotations if not a.get("iscrowd")]
            usable = [a for a in people if _usable(a, tally, f"image_id {image['id']}")]
            if not usable:
                tally.add("skipped_samples", "no_usable_person", f"image_id {image['id']}")
                continue
            keypoints = np.array([a["keypoints"] for a in usable], dtype=np.float64)
            kp2d = keypoints.reshape(-1, 17, 3)
            labelled = kp2d[..., 2] > 0
            kp2d[..., :2] = np.where(labelled[..., None], kp2d[..., :2] + self.pixel_offset, 0)
            kp2d[..., 2] = labelled
            x, y, w, h = np.array([a["bbox"] for a in usable], dtype=np.float64).T
            crowds = [a["segmentation"] for a in annotations if a.get("iscrowd")]
            path = f"{self.options.split}/{image['file_name']}"
            yield Record(
                key=self.key(index), root=self.root, image=path,
                meta=self.meta(f"{self.relative}#image_id={image['id']}", path),
                kp2d=kp2d, boxes=np.stack([x, y, x + w, y + h], axis=1),
                segmentations=[a.get("segmentation", []) for a in usable],
                ignore=crowds or None, expected_size=(image["height"], image["width"]))


def _usable(annotation: dict, tally: Tally, where: str) -> bool:
    """A person needs a box of positive size and 17 keypoints; else counted and left out."""
    box = annotation.get("bbox")
    if not box or len(box) != 4 or box[2] <= 0 or box[3] <= 0:
        tally.add("skipped_people", "no_box", f"{where} annotation {annotation.get('id')}")
        return False
    if len(annotation.get("keypoints", [])) != 51:
        tally.add("skipped_people", "malformed_keypoints",
                  f"{where} annotation {annotation.get('id')}")
        return False
    return True
