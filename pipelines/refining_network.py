"""Test-time refinement (:func:`pipelines.refine.refine`) plugged in after a network:
one image's detections refined, a network followed by refinement, and that network
built from a model file."""

from __future__ import annotations

import torch

from model.body import BodyModel
from model.discriminator import build_discriminator
from pipelines.refine import RefineConfig, Refined, refine

__all__ = ["refine_detections", "RefiningNetwork", "with_refinement"]


def refine_detections(detections: dict[str, torch.Tensor], K: torch.Tensor,
                      image_size: tuple[int, int], body: BodyModel, config: RefineConfig,
                      discriminator: torch.nn.Module | None = None
                      ) -> tuple[dict[str, torch.Tensor], Refined]:
    """One image's network detections (``boxes, scores, rotmats, shape, transl`` in the
    frame of ``K`` and ``image_size``) with the people scoring >= ``config.min_score``
    refined; lower-scoring detections (mostly duplicates) are left as they are."""
    confident = detections["scores"] >= config.min_score
    result = refine(detections["rotmats"][confident], detections["shape"][confident],
                    detections["transl"][confident], detections["boxes"][confident],
                    image_size, K, body, config, discriminator)
    out = dict(detections)
    if result.steps:
        for key, value in (("rotmats", result.rotmats), ("shape", result.shape),
                           ("transl", result.transl)):
            out[key] = detections[key].clone()
            out[key][confident] = value
    return out, result


class RefiningNetwork(torch.nn.Module):
    """A trained network followed by :func:`refine_detections` on each image; called as
    the network is in evaluation (``images [B, 3, H, W]``, ``intrinsics``), it adds
    ``refine_steps`` to each image's detections."""

    def __init__(self, network: torch.nn.Module, body: BodyModel, config: RefineConfig,
                 discriminator: torch.nn.Module | None) -> None:
        super().__init__()
        self.network, self.body, self.config = network, body, config
        self.discriminator = discriminator

    def forward(self, images: torch.Tensor, intrinsics: list[torch.Tensor]) -> list[dict]:
        detections = self.network(images, intrinsics=intrinsics)
        size = tuple(images.shape[-2:])
        out = []
        for image_detections, K in zip(detections, intrinsics, strict=True):
            refined, result = refine_detections(image_detections, K, size, self.body,
                                                self.config, self.discriminator)
            refined["refine_steps"] = torch.tensor(result.steps)
            out.append(refined)
        return out


def with_refinement(network: torch.nn.Module, state: dict, body: BodyModel,
                    config: RefineConfig | None = None) -> RefiningNetwork:
    """``network`` (loaded from a model file's ``state``) followed by refinement with
    ``config``, or with the configuration the model file carries (``refine``)."""
    if config is None:
        if "refine" not in state:
            raise ValueError("this model file carries no refine configuration; give one")
        config = RefineConfig.from_section(
            state["refine"], "the model file (from an older version? re-run `dvc repro "
            "refine_model`, or give the settings)")
    discriminator = build_discriminator(body.num_joints, body.shape_dim, 0)
    discriminator.load_state_dict(state["discriminator"])
    return RefiningNetwork(network, body, config, discriminator.eval()).eval()
