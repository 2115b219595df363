"""Probe (not part of the pipeline): does classifying the cropped person's pose among K
anchor poses learn faster than regressing the joints, within a CPU budget?

The plain network of ``../pose_capacity/probe.py`` (a ResNet-18 from scratch, GroupNorm,
64x64 official crops, batch 8, RAdam at 1e-3), its targets in each person's body frame
(only the articulation). The anchors are K-means centres of the body-frame root-relative
joints of ``--fit`` training crops. The network is trained with cross-entropy to each
crop's nearest anchor; it is scored (PA-MPJPE on the Table 1 joints, 200 crops drawn with
another seed) by its most likely anchor and by the softmax-weighted mixture of anchors,
beside the held crops' mean skeleton and the nearest-anchor oracle (the ceiling).

    python docs/probes/pose_anchors/probe.py --anchors 32 --steps 3000

Run it in a workspace where `dvc repro` has written the training shards.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "pose_capacity"))
from probe import crops_and_joints, error, official_crops, resnet18_from_scratch  # noqa: E402

from pipelines.training import batches  # noqa: E402


def kmeans(points: torch.Tensor, k: int, iterations: int = 50) -> torch.Tensor:
    """``[k, D]`` centres of ``points`` ``[N, D]`` (Lloyd's algorithm, k-means++ start)."""
    generator = torch.Generator().manual_seed(0)
    centres = points[torch.randint(len(points), (1,), generator=generator)]
    while len(centres) < k:
        nearest = torch.cdist(points, centres).min(dim=1).values ** 2
        pick = torch.multinomial(nearest / nearest.sum(), 1, generator=generator)
        centres = torch.cat([centres, points[pick]])
    for _ in range(iterations):
        label = torch.cdist(points, centres).argmin(dim=1)
        for j in range(k):
            if (label == j).any():
                centres[j] = points[label == j].mean(dim=0)
    return centres


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchors", type=int, default=32)
    parser.add_argument("--fit", type=int, default=4000, help="training crops for K-means")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.manual_seed(0)
    common, phase = official_crops()
    size = 64
    held = batches(common, phase, 12345)
    test = [crops_and_joints(held, size, "body") for _ in range(25)]
    held_joints = torch.cat([j for _, j in test])
    mean = held_joints.mean(dim=0)
    mean_error = error(mean.expand_as(held_joints), held_joints).mean()
    print(f"mean pose of the held crops: PA-MPJPE {mean_error:.1f} mm")

    stream = batches(common, phase, 0)
    fit = torch.cat([crops_and_joints(stream, size, "body")[1]
                     for _ in range(args.fit // phase.batch_size)])
    anchors = kmeans(fit.flatten(1), args.anchors).view(-1, 17, 3)
    oracle = torch.stack([error(a.expand_as(held_joints), held_joints) for a in anchors])
    print(f"{args.anchors} anchors from {len(fit)} crops; nearest-anchor oracle (by PA-MPJPE): "
          f"{oracle.min(dim=0).values.mean():.1f} mm", flush=True)

    network = resnet18_from_scratch(args.anchors)
    optimizer = torch.optim.RAdam(network.parameters(), lr=args.lr, weight_decay=1e-4)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        images, joints = crops_and_joints(stream, size, "body")
        label = torch.cdist(joints.flatten(1), anchors.flatten(1)).argmin(dim=1)
        loss = torch.nn.functional.cross_entropy(network(images), label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 500 == 0:
            network.eval()
            with torch.no_grad():
                logits = torch.cat([network(i) for i, _ in test])
            network.train()
            best = error(anchors[logits.argmax(dim=1)], held_joints).mean()
            mixed = torch.einsum("bk,kjc->bjc", logits.softmax(dim=1), anchors)
            mixed_error = error(mixed, held_joints).mean()
            print(f"step {step} ({time.perf_counter() - start:.0f} s): CE {loss:.3f}; held "
                  f"PA-MPJPE most likely anchor {best:.1f} mm, mixture {mixed_error:.1f} mm",
                  flush=True)


if __name__ == "__main__":
    main()
