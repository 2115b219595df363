"""Reconstruct the people in an image with a trained model: the Python API.

    from crmh import Predictor
    predictor = Predictor("models/full/model.pt")
    people = predictor.predict("photo.jpg").people       # or an RGB array
    people[0].vertices, people[0].joints["h36m17"], people[0].transl

The model file carries the network, the body model's name and the input size
(:mod:`model.io`), so nothing else is needed, except the SMPL file for a model trained
with SMPL (``smpl_model_path``; a missing or wrong file gets the body model's clear
error). Images are letterboxed into the network input exactly as in evaluation, so
the predictions equal the evaluation stage's on the same image and intrinsics.

Intrinsics: a focal length in pixels, or a horizontal field of view, with the principal
point at the image centre; without either, the training default scaled to the image
(1000 px at 832 x 512, the official camera, whose field of view the synthetic training
images share).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crmh.images import load_image
from model.body import BodyModel, load_body_model, posed_in_camera
from model.camera import default_intrinsics, intrinsics_matrix
from model.io import load_network, read_model
from pipelines.refine import RefineConfig
from pipelines.refining_network import with_refinement
from pipelines.transforms import to_network_input

__all__ = ["Person", "Prediction", "Predictor", "intrinsics_for"]


@dataclass
class Person:
    """One reconstructed person, camera frame (OpenCV axes, metres)."""

    box: np.ndarray  # [4] xyxy, pixels of the original image
    score: float
    rotmats: np.ndarray  # [J, 3, 3]: global orientation, then the body's joint rotations
    shape: np.ndarray  # [S]
    transl: np.ndarray  # [3]: the pelvis
    vertices: np.ndarray  # [V, 3]
    joints: dict[str, np.ndarray]  # joint set -> [K, 3] (coco17, h36m17, lsp14)


@dataclass
class Prediction:
    """The people of one image and the camera they were reconstructed with."""

    people: list[Person]
    K: np.ndarray  # [3, 3] intrinsics of the original image
    size: tuple[int, int]  # (height, width)
    refine_steps: int = 0  # test-time refinement steps taken (0: none, or not refined)


def intrinsics_for(width: int, height: int, focal: float | None = None,
                   fov: float | None = None) -> torch.Tensor:
    """``K [3, 3]`` of an image: a focal length in pixels, a horizontal field of view in
    degrees, or the training default (:func:`model.camera.default_intrinsics`)."""
    if focal is not None and fov is not None:
        raise ValueError("give a focal length or a field of view, not both")
    if fov is not None:
        if not 0 < fov < 180:
            raise ValueError(f"field of view must lie in (0, 180) degrees, got {fov}")
        focal = width / 2 / math.tan(math.radians(fov) / 2)
    if focal is not None:
        if focal <= 0:
            raise ValueError(f"focal length must be positive, got {focal}")
        return intrinsics_matrix(focal, width, height)
    return default_intrinsics(width, height).float()


class Predictor:
    """A trained model ready to reconstruct people.

    Args:
        model_path: a ``model.pt`` written by training.
        device: "auto" (CUDA when available), "cpu" or "cuda".
        score_threshold: detections below this score are not people.
        input_size: network input ``(height, width)``; default: the model's.
        smpl_model_path: the SMPL model file, for a model trained with SMPL.
        refine: test-time coherence refinement (:mod:`pipelines.refine`) after the network:
            ``None``: when the model file carries its settings (``full_refine``); ``True``:
            with those settings (an error without); ``False``: never; or a
            ``RefineConfig``.
    """

    def __init__(self, model_path: str | Path, device: str = "auto", score_threshold: float = 0.5,
                 input_size: tuple[int, int] | None = None,
                 smpl_model_path: str | Path | None = None,
                 refine: bool | RefineConfig | None = None) -> None:
        state = read_model(model_path)
        if state["kind"] != "network":
            raise ValueError(f"{model_path}: a {state['kind']} file, not a trained network")
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available()
                                   else ("cpu" if device == "auto" else device))
        kind = state["body_model"]
        options = {"model_path": smpl_model_path} if kind == "smpl" else {}
        self.body: BodyModel = load_body_model(kind, **options).to(self.device)
        network, _ = load_network(model_path, self.body.cpu())
        if refine is None:
            refine = "refine" in state
        if refine is not False:
            try:
                network = with_refinement(network, state, self.body,
                                          None if refine is True else refine)
            except ValueError as error:
                raise ValueError(f"{model_path}: {error}") from error
        self.network = network.to(self.device).eval()
        self.body = self.body.to(self.device)
        self.input_size = tuple(input_size or state["input_size"])
        self.score_threshold = score_threshold
        self.model_path = Path(model_path)
        self.model_sha256 = hashlib.sha256(self.model_path.read_bytes()).hexdigest()

    @property
    def faces(self) -> np.ndarray:
        return self.body.faces.cpu().numpy()

    def predict(self, image: str | Path | np.ndarray, focal: float | None = None,
                fov: float | None = None, K: torch.Tensor | None = None) -> Prediction:
        """The people of one image (a path or an ``[H, W, 3]`` uint8 RGB array)."""
        return self.predict_batch([image], focal, fov, None if K is None else [K])[0]

    @torch.no_grad()
    def predict_batch(self, images: list, focal: float | None = None, fov: float | None = None,
                      intrinsics: list[torch.Tensor] | None = None) -> list[Prediction]:
        """The people of several images, run through the network together."""
        pixels = [load_image(i) if isinstance(i, (str, Path)) else np.array(i) for i in images]
        inputs, originals = [], []
        for index, picture in enumerate(pixels):
            height, width = picture.shape[:2]
            K = (intrinsics[index] if intrinsics is not None
                 else intrinsics_for(width, height, focal, fov)).float()
            sample = {"key": str(index), "image": torch.from_numpy(picture).permute(2, 0, 1),
                      "target": {"boxes": torch.zeros(0, 4), "keypoints": torch.zeros(0, 17, 3),
                                 "K": K}}
            inputs.append(to_network_input(sample, *self.input_size))
            originals.append((K, (height, width)))
        batch = torch.stack([i["image"] for i in inputs]).to(self.device)
        detections = self.network(batch, intrinsics=[i["target"]["K"].to(self.device)
                                                     for i in inputs])
        return [self._people(d, K, size) for d, (K, size) in zip(detections, originals,
                                                                  strict=True)]

    def _people(self, detections: dict[str, torch.Tensor], K: torch.Tensor,
                size: tuple[int, int]) -> Prediction:
        keep = detections["scores"] >= self.score_threshold
        det = {k: v[keep] for k, v in detections.items() if k != "refine_steps"}
        posed = posed_in_camera(self.body, det["rotmats"], det["shape"], det["transl"])
        factor = min(self.input_size[0] / size[0], self.input_size[1] / size[1])
        people = [Person(box=(det["boxes"][i] / factor).cpu().numpy(),
                         score=float(det["scores"][i]), rotmats=det["rotmats"][i].cpu().numpy(),
                         shape=det["shape"][i].cpu().numpy(), transl=det["transl"][i].cpu().numpy(),
                         vertices=posed.vertices[i].cpu().numpy(),
                         joints={name: j[i].cpu().numpy() for name, j in posed.joints.items()})
                  for i in range(len(det["scores"]))]
        return Prediction(people, K.cpu().numpy(), size,
                          int(detections.get("refine_steps", 0)))
