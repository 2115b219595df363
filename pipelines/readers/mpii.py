"""MPII Human Pose, in the widely used converted JSON (HRNet / mmpose ``annot/*.json``;
the official release is a MATLAB struct).

Layout under the root::

    annot/<split>.json    [{image, center, scale, joints [16][2], joints_vis [16]}, ...]
    images/<image>

Each record is one person; a sample is one image with all its annotated people, images
in the order they first appear. A joint is labelled when ``joints_vis`` is set (a
missing joint is ``[-1, -1]`` with 0). Boxes come from the labelled joints (MPII has
none; ``center``/``scale`` are a rough head-to-toe square). MPII annotates some of the
people in an image, not always all of them.

Pixels: the joints keep MATLAB's 1-based values, so 0.5 is subtracted (a 1-based pixel
index ``i`` covers ``[i - 0.5, i + 0.5]`` in MATLAB, ``[i - 1, i]`` in ours).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.readers.base import (
    MIN_BOX_POINTS,
    Reader,
    ReaderOptions,
    Record,
    SourceError,
    Tally,
    load_json,
)
from pipelines.readers.joints import convert

__all__ = ["MpiiReader"]


class MpiiReader(Reader):
    kind = "mpii"
    pixel_offset = -0.5

    def __init__(self, root: Path, dataset: str, options: ReaderOptions, body_kind: str) -> None:
        super().__init__(root, dataset, options, body_kind)
        self.relative = f"annot/{options.split}.json"
        self.annotation_file = self.require(root / self.relative, "the MPII annotation JSON")
        people = load_json(self.annotation_file, "a list of MPII person records")
        if not isinstance(people, list) or not all(
                isinstance(p, dict) and {"image", "joints", "joints_vis"} <= set(p)
                for p in people):
            raise SourceError(f"{self.annotation_file}: expected a list of person records with "
                              "image, joints and joints_vis")
        self.images: dict[str, list[tuple[int, dict]]] = {}  # first-appearance order
        for number, person in enumerate(people):
            self.images.setdefault(person["image"], []).append((number, person))

    def __len__(self) -> int:
        return self.limited(len(self.images))

    def input_files(self) -> list[Path]:
        return [self.annotation_file]

    def records(self, tally: Tally) -> Iterator[Record]:
        for index, (image, people) in enumerate(list(self.images.items())[:len(self)]):
            joints = [self._joints(number, person, tally) for number, person in people]
            joints = [j for j in joints if j is not None]
            if not joints:
                tally.add("skipped_samples", "no_usable_person", f"{self.relative} {image}")
                continue
            path = f"images/{image}"
            numbers = ",".join(str(number) for number, _ in people)
            yield Record(key=self.key(index), root=self.root, image=path,
                         meta=self.meta(f"{self.relative}#records={numbers}", path),
                         kp2d=convert(np.stack(joints), "mpii16", "coco17"),
                         box_points=[j[j[:, 2] > 0, :2] for j in joints])

    def _joints(self, number: int, person: dict, tally: Tally) -> np.ndarray | None:
        """``[16, 3]`` (x, y, labelled) in our pixels, or ``None`` (counted)."""
        xy = np.asarray(person["joints"], dtype=np.float64).reshape(16, 2)
        labelled = (np.asarray(person["joints_vis"]) > 0) & ~(xy == -1).all(axis=1)
        if labelled.sum() < MIN_BOX_POINTS:
            tally.add("skipped_people", "too_few_keypoints", f"{self.relative} record {number}")
            return None
        xy = np.where(labelled[:, None], xy + self.pixel_offset, 0)
        return np.column_stack([xy, labelled])
