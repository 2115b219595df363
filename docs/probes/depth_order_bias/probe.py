"""Probe (not part of the pipeline): which way does Eq. 4 push the people it sees?

On training batches of the fine-tune phase, with a trained model in training mode (the
proposals, matches and per-person choice the criterion makes), every pixel of the set S
(annotated person ``a`` visible, another predicted person ``r`` rendered in front of
``a``'s predicted surface) is sorted by what the *annotation* says there:

- order error: ``r``'s annotated body also covers the pixel (behind ``a``), so the
  predicted order is wrong where both really are: the push (``a`` forward, ``r`` back)
  is the right one;
- spill: ``r``'s annotated body does not cover the pixel; ``r``'s predicted silhouette
  spills onto ``a``. The push is then right for the pair only if ``r``'s annotated root
  is behind ``a``'s, and it drives the pair towards the wrong order otherwise.

Prints the share of S's loss (softplus terms) in each class, and the share that pushes
the pair's roots towards the annotated order.

    python docs/probes/depth_order_bias/probe.py [model.pt] [batches]   # after dvc repro
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from model.body import load_body_model
from model.camera import predicted_translations
from model.io import read_model
from model.losses import select_per_person
from model.rcnn import ModelConfig, build_model
from ops.depth_order import ordering_mistakes
from ops.raster import depth_maps
from pipelines.training import PhaseParams, TrainParams, batches
from stages.common import read_params, typed


def classify(depths, gt_depths, masks, gt_roots) -> dict[str, float]:
    """Loss mass of S's pixels per class for one image (people indexed by annotation)."""
    mistakes = ordering_mistakes(depths, masks)
    rows, cols = mistakes.nonzero(as_tuple=True)
    a = masks[rows, cols].long() - 1
    r = depths[:, rows, cols].argmin(dim=0)
    mass = F.softplus(depths[a, rows, cols] - depths[r, rows, cols])
    spill = ~torch.isfinite(gt_depths[r, rows, cols])
    r_truly_behind = gt_roots[r] > gt_roots[a]  # the push (a forward, r back) is right
    return {"order error": float(mass[~spill].sum()),
            "spill, push right": float(mass[spill & r_truly_behind].sum()),
            "spill, push wrong": float(mass[spill & ~r_truly_behind].sum()),
            "pairs' roots pushed right": float(mass[r_truly_behind].sum()),
            "total": float(mass.sum())}


def depth_pair(body, proposals, chosen, target, size) -> tuple[torch.Tensor, torch.Tensor]:
    """Per annotated person, the depth map of its chosen proposal's mesh (``inf`` for a
    person no proposal covers) and of its annotated body: two ``[P, H, W]``."""
    people = torch.where(chosen >= 0)[0]
    predicted = torch.full((len(chosen), *size), float("inf"))
    predicted[people] = depth_maps(proposals[chosen[people]], body.faces, target["K"], size)
    annotated = body(target["rotmats"], target["shape"]).vertices + target["transl"][:, None]
    return predicted, depth_maps(annotated, body.faces, target["K"], size)


def image_pairs(path: str, count: int):
    """Per fine-tune training image with two or more chosen people: its ``(predicted,
    annotated, target)`` (:func:`depth_pair`'s depth maps and the image's target), from
    ``count`` batches of the ``train.finetune`` stream with the model at ``path``."""
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    phase = typed(PhaseParams, params, "train.finetune")
    body = load_body_model(params["body_model"]["kind"])
    network = build_model(typed(ModelConfig, params, "model"), body, 0).train()
    network.load_state_dict(read_model(path)["network"])
    torch.manual_seed(0)
    data = batches(common, phase, 0)
    with torch.no_grad():
        for _ in range(count):
            images, targets = next(data)[:2]
            size = tuple(images.shape[-2:])
            _, branch = network(images, targets)
            output = body(branch.rotmats, branch.shape)
            transl = predicted_translations(branch.cam, branch.boxes, [t["K"] for t in targets])
            for i, vertices in enumerate(output.vertices.split([len(b) for b in branch.boxes])):
                target = targets[i]
                chosen = select_per_person(branch.matched[i], branch.scores[i],
                                           len(target["boxes"]))
                if (chosen >= 0).sum() < 2:
                    continue
                predicted, annotated = depth_pair(body, vertices + transl[i][:, None],
                                                  chosen, target, size)
                yield predicted, annotated, target


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "models/baseline/model.pt"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    totals: dict[str, float] = {}
    for predicted, annotated, target in image_pairs(path, count):
        for name, value in classify(predicted, annotated, target["masks"],
                                    target["transl"][:, 2]).items():
            totals[name] = totals.get(name, 0.0) + value
    total = totals.pop("total")
    print(f"{path}, {count} batches: Eq. 4's summed softplus {total:.1f}")
    for name, value in totals.items():
        print(f"  {name:28s} {100 * value / total:5.1f} %")


if __name__ == "__main__":
    main()
