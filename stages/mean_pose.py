"""Stage ``mean_pose``: the trivial reference "model" of Tables 1-3.

    python -m stages.mean_pose --out models/mean_pose

The mean pose and shape of the training people (every dataset of role ``train`` in
``datasets``, every person with body parameters): each rotation, global orientation included, is the
rotation nearest to the mean of the training rotation matrices (the chordal mean),
and the shape is the mean shape. The evaluation places this one body at each
annotated person's true pelvis, so its row shows what the metrics give with no image
evidence at all: the network must beat it to have learnt anything from the image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import roma
import torch
from tqdm import tqdm

from model.io import FORMAT, VERSION, write_atomically
from pipelines.shards import SHARDS, load_index, read_shards
from stages.common import read_params


def mean_body(datasets: list[str], body_model: str, root: Path = SHARDS / "train") -> dict:
    """A model file (:mod:`model.io`) of kind ``mean_pose``: ``rotmats [J, 3, 3]``,
    ``shape [S]`` and the number of ``people`` averaged."""
    rotmats, shapes = [], []
    for dataset in datasets:
        total = load_index(root / dataset)["num_samples"]
        for sample in tqdm(read_shards(root / dataset), total=total, desc=dataset, unit="img",
                           mininterval=5.0):
            target = sample["target"]
            if "rotmats" in target and sample["meta"].get("body_model") == body_model:
                known = target["has_body"].bool()
                rotmats.append(target["rotmats"][known].double())
                shapes.append(target["shape"][known].double())
    if not rotmats or sum(len(r) for r in rotmats) == 0:
        raise ValueError(f"no person with {body_model} body parameters in {datasets}: the "
                         "mean-pose reference needs training data with body targets")
    rotmats, shapes = torch.cat(rotmats), torch.cat(shapes)
    mean = roma.special_procrustes(rotmats.mean(dim=0))  # [J, 3, 3], nearest rotations
    return {"format": FORMAT, "version": VERSION, "kind": "mean_pose",
            "rotmats": mean.float(), "shape": shapes.mean(dim=0).float(), "people": len(rotmats)}


def main() -> None:
    parser = argparse.ArgumentParser(description="The mean training pose and shape.")
    parser.add_argument("--out", default="models/mean_pose")
    args = parser.parse_args()
    params = read_params()
    reference = mean_body([name for name, role in params["datasets"].items() if role == "train"],
                          params["body_model"]["kind"])
    out = Path(args.out)
    write_atomically(out / "model.pt", reference)
    print(f"mean pose and shape of {reference['people']} training people -> {out / 'model.pt'}")


if __name__ == "__main__":
    main()
