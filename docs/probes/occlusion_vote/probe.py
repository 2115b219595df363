"""Probe (not part of the pipeline): would a mask-only occlusion vote per pair keep
Eq. 4's pushes that are right and drop the spill?

For every pair of chosen people ``(a, b)`` the vote counts the pixels that both
predicted meshes cover and that the annotation gives to ``a`` (``votes[a, b]``) or to
``b``. Where the annotation gives more of the common area to ``a``, ``a`` occludes ``b``
in the image, so ``a`` is in front. A pixel of S (annotated ``a``, rendered front ``r``)
agrees with its pair's vote when ``votes[a, r] > votes[r, a]``. Only the instance masks
and the predicted meshes enter the vote: no depth annotation, so it would apply to COCO
as Eq. 4 does.

On the batches of ``depth_order_bias/probe.py``: the share of Eq. 4's loss on pixels
that agree with their vote, and in each part the share that pushes the pair's roots
towards the annotated order (as ``depth_order_bias`` measures it).

    git apply docs/probes/occlusion_vote/probe.patch   # adds ops.depth_order.occlusion_votes
    PYTHONPATH=. python docs/probes/occlusion_vote/probe.py [model.pt] [batches]
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from ops.depth_order import occlusion_votes, ordering_mistakes


def _probe(name: str):
    """Another probe's module (its folder is not a package)."""
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).parent.parent / name / "probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# depth_order_region loads depth_order_bias itself: use its copy, not a second one.
_region = _probe("depth_order_region")
_bias = _region._bias


def classify(depths, masks, gt_roots) -> dict[str, float]:
    """Loss mass of S's pixels that agree and disagree with their pair's vote, and how
    much of each pushes the pair's roots the right way."""
    rows, cols = ordering_mistakes(depths, masks).nonzero(as_tuple=True)
    a = masks[rows, cols].long() - 1
    r = depths[:, rows, cols].argmin(dim=0)
    mass = F.softplus(depths[a, rows, cols] - depths[r, rows, cols])
    votes = occlusion_votes(depths, masks)
    agree = votes[a, r] > votes[r, a]
    right = gt_roots[r] > gt_roots[a]
    out = {"total": float(mass.sum())}
    for name, where in {"agrees with the vote": agree, "disagrees": ~agree}.items():
        out[name] = float(mass[where].sum())
        out[name + ", pushed right"] = float(mass[where & right].sum())
    out["all, pushed right"] = float(mass[right].sum())
    return out


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "models/baseline/model.pt"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    torch.set_num_threads(2)
    totals: dict[str, float] = {}
    for predicted, _, target in _bias.image_pairs(path, count):
        for name, value in classify(predicted, target["masks"], target["transl"][:, 2]).items():
            totals[name] = totals.get(name, 0.0) + value
    total = totals.pop("total")
    print(f"{path}, {count} batches: Eq. 4's summed softplus {total:.1f}")
    right = 100 * totals.pop("all, pushed right") / total
    print(f"  all of S: pushes the roots right {right:5.1f} %")
    _region.print_classes(totals, total)


if __name__ == "__main__":
    main()
