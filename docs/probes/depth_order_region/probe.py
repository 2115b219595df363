"""Probe (not part of the pipeline): how much of Eq. 4's spill lies outside the
wrongly-visible person's annotated box?

``docs/probes/depth_order_bias/`` found that most of the depth-order loss sits on
*spill*: pixels where a predicted person ``r`` is rendered in front of the annotated
person ``a`` although ``r``'s annotated body does not cover the pixel. This probe splits
that spill by whether the pixel lies inside ``r``'s annotated whole-person box (a
datum every training set has, unlike ``r``'s hidden silhouette). Spill outside the box
can be told apart from an ordering error without any mask of hidden parts; spill
inside it cannot.

Same batches, model mode and choice of proposals as ``depth_order_bias/probe.py``
(whose helpers it reuses). Prints each class's share of S's loss and, per class, the
share that pushes the pair's roots towards the annotated order.

    PYTHONPATH=. python docs/probes/depth_order_region/probe.py [model.pt] [batches]
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from ops.depth_order import ordering_mistakes

_spec = importlib.util.spec_from_file_location(
    "depth_order_bias", Path(__file__).parent.parent / "depth_order_bias" / "probe.py")
_bias = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bias)


def inside_boxes(boxes: torch.Tensor, person: torch.Tensor, rows: torch.Tensor,
                 cols: torch.Tensor) -> torch.Tensor:
    """Whether pixel (rows[k], cols[k]) (its centre) lies in ``boxes[person[k]]``."""
    box = boxes[person]
    x, y = cols.to(box.dtype) + 0.5, rows.to(box.dtype) + 0.5
    return (x >= box[:, 0]) & (x <= box[:, 2]) & (y >= box[:, 1]) & (y <= box[:, 3])


def classify(depths, gt_depths, masks, gt_roots, boxes) -> dict[str, float]:
    """Loss mass of S's pixels per class for one image, and how much of each class
    pushes the pair's roots the right way."""
    rows, cols = ordering_mistakes(depths, masks).nonzero(as_tuple=True)
    a = masks[rows, cols].long() - 1
    r = depths[:, rows, cols].argmin(dim=0)
    mass = F.softplus(depths[a, rows, cols] - depths[r, rows, cols])
    spill = ~torch.isfinite(gt_depths[r, rows, cols])
    in_box = inside_boxes(boxes, r, rows, cols)
    right = gt_roots[r] > gt_roots[a]
    classes = {"order error": ~spill, "spill inside r's box": spill & in_box,
               "spill outside r's box": spill & ~in_box}
    out = {"total": float(mass.sum())}
    for name, where in classes.items():
        out[name] = float(mass[where].sum())
        out[name + ", pushed right"] = float(mass[where & right].sum())
    return out


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "models/baseline/model.pt"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    torch.set_num_threads(2)
    totals: dict[str, float] = {}
    for predicted, annotated, target in _bias.image_pairs(path, count):
        values = classify(predicted, annotated, target["masks"], target["transl"][:, 2],
                          target["boxes"])
        for name, value in values.items():
            totals[name] = totals.get(name, 0.0) + value
    total = totals.pop("total")
    print(f"{path}, {count} batches: Eq. 4's summed softplus {total:.1f}")
    print_classes(totals, total)


def print_classes(totals: dict[str, float], total: float) -> None:
    """Each class's share of the loss ``total``, and the share of it that pushes the
    roots right (the entries ``<class>`` and ``<class>, pushed right`` of ``totals``)."""
    for name, value in totals.items():
        if name.endswith("pushed right"):
            share = 100 * value / max(totals[name.removesuffix(", pushed right")], 1e-12)
            print(f"    of which pushes the roots right {share:5.1f} %")
        else:
            print(f"  {name:28s} {100 * value / total:5.1f} % of the loss")


if __name__ == "__main__":
    main()
