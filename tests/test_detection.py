"""AP50 against pycocotools' COCOeval on random detections, and its bootstrap."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ops.bootstrap import replicate_weights
from ops.detection import (
    ap_replicates,
    average_precision,
    ignored_detections,
    match_detections,
    matched_people,
)


def random_scene(rng: np.random.Generator, images: int = 15):
    """Ground-truth boxes and noisy detections (some duplicates, some misses)."""
    scenes = []
    for _ in range(images):
        gt = []
        for _ in range(rng.integers(0, 5)):
            x, y = rng.uniform(0, 300, 2)
            w, h = rng.uniform(20, 80, 2)
            gt.append([x, y, x + w, y + h])
        detections, scores = [], []
        for box in gt:
            for _ in range(rng.integers(0, 3)):  # missed, found, or found twice
                noisy = np.array(box) + rng.normal(0, 8, 4)
                detections.append([*np.minimum(noisy[:2], noisy[2:] - 1), *noisy[2:]])
                scores.append(rng.uniform(0.05, 1))
        for _ in range(rng.integers(0, 3)):  # false alarms
            x, y = rng.uniform(0, 300, 2)
            detections.append([x, y, x + 40, y + 60])
            scores.append(rng.uniform(0.05, 0.6))
        scenes.append((np.array(gt).reshape(-1, 4), np.array(detections).reshape(-1, 4),
                       np.round(np.array(scores), 2)))  # rounded: ties happen
    return scenes


def coco_evaluation(scenes, crowds=None) -> COCOeval:
    """pycocotools' evaluation (``evaluate`` run) of the same boxes, annotation and
    detection ids numbered from 1 in scene order (``crowds``: per image, boxes of regions
    with unannotated people, given to pycocotools as crowd annotations)."""
    images, annotations, results = [], [], []
    for index, (gt, detections, scores) in enumerate(scenes, start=1):
        images.append({"id": index, "width": 400, "height": 400})
        regions = crowds[index - 1] if crowds else []
        for box, crowd in [(box, 0) for box in gt] + [(box, 1) for box in regions]:
            annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": 1,
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                "area": float((box[2] - box[0]) * (box[3] - box[1])),
                                "iscrowd": crowd})
        for box, score in zip(detections, scores, strict=True):
            results.append({"image_id": index, "category_id": 1, "score": float(score),
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations,
                         "categories": [{"id": 1, "name": "person"}]}
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.evaluate()
    return evaluation


def coco_ap50(scenes, crowds=None) -> float:
    """The reference: pycocotools' AP50 on the same boxes (``crowds`` as
    :func:`coco_evaluation`)."""
    evaluation = coco_evaluation(scenes, crowds)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[1])


def ours(scenes):
    images, counts = [], []
    for gt, detections, scores in scenes:
        tp = match_detections(torch.tensor(detections), torch.tensor(scores), torch.tensor(gt))
        images.append((scores, tp))
        counts.append(len(gt))
    return images, np.array(counts, dtype=float)


@pytest.mark.parametrize("seed", range(5))
def test_ignore_regions_act_as_pycocotools_crowds(seed):
    """Whole-pixel boxes (so the pixel count is the exact area) and one or two ignore
    rectangles per image: detections matched to nobody and at least half inside them
    drop out, as pycocotools treats crowd annotations; some detections are put there."""
    rng = np.random.default_rng(100 + seed)
    scenes, crowds, images, counts = [], [], [], []
    for gt, detections, scores in random_scene(rng):
        regions = []
        for _ in range(rng.integers(1, 3)):
            x, y = rng.integers(0, 300, 2)
            regions.append([x, y, x + rng.integers(30, 90), y + rng.integers(30, 90)])
        inside = [[r[0] + 5, r[1] + 5, r[0] + 35, r[1] + 45] for r in regions]
        detections = np.round(np.concatenate([detections.reshape(-1, 4), inside]))
        scores = np.concatenate([scores, np.round(rng.uniform(0.05, 1, len(inside)), 2)])
        gt = np.round(gt)
        scenes.append((gt, detections, scores))
        crowds.append(regions)
        mask = torch.zeros(400, 400, dtype=torch.bool)
        for x1, y1, x2, y2 in regions:
            mask[y1:y2, x1:x2] = True
        boxes = torch.tensor(detections)
        tp = match_detections(boxes, torch.tensor(scores), torch.tensor(gt))
        counted = tp | ~ignored_detections(boxes, mask)
        images.append((scores[counted], tp[counted]))
        counts.append(len(gt))
    ours_ap = average_precision(images, np.array(counts, dtype=float))
    assert ours_ap == pytest.approx(coco_ap50(scenes, crowds), abs=1e-9)
    assert ours_ap != pytest.approx(coco_ap50(scenes), abs=1e-6)  # the regions matter


@pytest.mark.parametrize("seed", range(5))
def test_ap50_equals_pycocotools(seed):
    scenes = random_scene(np.random.default_rng(seed))
    images, counts = ours(scenes)
    assert average_precision(images, counts) == pytest.approx(coco_ap50(scenes), abs=1e-9)


def test_perfect_and_empty_detectors():
    gt = np.array([[0, 0, 10, 20], [50, 50, 70, 90]], dtype=float)
    perfect = [(gt, gt, np.array([0.9, 0.8]))]
    images, counts = ours(perfect)
    assert average_precision(images, counts) == 1.0
    images, counts = ours([(gt, np.zeros((0, 4)), np.zeros(0))])
    assert average_precision(images, counts) == 0.0


def test_bootstrap_replicates_weight_images_consistently():
    scenes = random_scene(np.random.default_rng(7), images=12)
    images, counts = ours(scenes)
    weights = replicate_weights(12, 30, seed=0)
    draws = ap_replicates(images, counts, weights)
    for row, value in zip(weights[:5], draws[:5], strict=False):
        resampled = [scene for index, scene in enumerate(scenes) for _ in range(int(row[index]))]
        images_r, counts_r = ours(resampled)
        assert value == pytest.approx(average_precision(images_r, counts_r), abs=1e-9)
    ones = ap_replicates(images, counts, np.ones((1, 12)))
    assert ones[0] == pytest.approx(average_precision(images, counts))


@pytest.mark.parametrize("seed", range(3))
def test_each_detection_takes_the_person_pycocotools_gives_it(seed):
    """Which annotated person each detection is matched to, against COCOeval's
    ``dtMatches`` at IoU 0.5 (annotation ids; 0: none)."""
    scenes = random_scene(np.random.default_rng(200 + seed))
    evaluation = coco_evaluation(scenes)
    # the ids coco_evaluation gives: numbered from 1 over the scenes in order
    first_ann = np.cumsum([1] + [len(gt) for gt, _, _ in scenes])
    first_det = np.cumsum([1] + [len(detections) for _, detections, _ in scenes])
    matched_any = 0
    for index, (gt, detections, scores) in enumerate(scenes):
        person = matched_people(torch.tensor(detections), torch.tensor(scores), torch.tensor(gt))
        expected = np.full(len(detections), -1)
        record = evaluation.evalImgs[index]  # category 1, area "all", image index + 1
        if record is not None:
            for det_id, ann_id in zip(record["dtIds"], record["dtMatches"][0], strict=True):
                if ann_id > 0:
                    expected[det_id - first_det[index]] = int(ann_id) - first_ann[index]
        assert person.tolist() == expected.tolist()
        assert np.array_equal(person >= 0, match_detections(
            torch.tensor(detections), torch.tensor(scores), torch.tensor(gt)))
        matched_any += int((person >= 0).sum())
    assert matched_any > 10  # the draw does match people
