"""The SMPL branch: RoI features -> body rotations, shape and a per-box camera.

As in the official code: 4 x [3x3 conv -> norm -> ReLU] on 14x14 RoIAlign features (the
last conv with stride 2, so 14 -> 7; 256 channels officially, ``channels`` here), 7x7
average pooling to a feature vector, then
an HMR-style iterative regressor. It runs 3 iterations with shared weights:
``[feature, params] -> FC 1024 -> ReLU -> Dropout -> FC 1024 -> ReLU -> Dropout -> FC``,
added to the params. The params are J 6D rotations, S shape values and the camera
(s, x, y). They start from the mean pose and shape and from the camera (0.9, 0, 0).

The mean pose is the rest pose, facing the camera: the global rotation diag(1, -1, -1),
identity joint rotations. It is decoded exactly; the official code's column-0/2 6D
initialisation quirk is not reproduced. For a body model with bounded shape (Anny's
phenotypes in [0, 1]) the regressor works on logits, and a sigmoid maps them to the
shape.

With ``pose_anchors`` K > 0 (not in the paper; :mod:`model.pose_anchors`) a linear layer
also scores each RoI's feature against K anchor poses, and the regressor starts from the
softmax-weighted mixture of the anchors' 6D rotations (the global rotation, shape and
camera start as above). The anchors are a buffer, fitted by the first training phase
(:meth:`SMPLHead.set_anchors`) and saved with the weights.
"""

from __future__ import annotations

import torch
from torch import nn

from model.precision import reduced_precision
from ops.geometry import matrix_to_rot6d, rot6d_to_matrix

__all__ = ["SMPLHead", "SMPLPrediction"]

FACING_CAMERA = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
CAMERA_INIT = (0.9, 0.0, 0.0)


class SMPLPrediction(dict):
    """``rotmats [N, J, 3, 3]``, ``shape [N, S]``, ``cam [N, 3]`` (s, x, y) as a dict,
    and with pose anchors ``anchor_logits [N, K]``."""


def _conv_block(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         nn.GroupNorm(32, out_channels), nn.ReLU(inplace=True))


class SMPLHead(nn.Module):
    """Iterative regressor on RoI features.

    Args:
        in_channels: channels of the RoI features (FPN: 256).
        num_joints: J rotations of the body model.
        mean_shape: ``[S]`` shape of the average body.
        bounded_shape: shape values live in [0, 1] (regress logits, then a sigmoid).
        iterations: regressor iterations (official: 3).
        dropout: dropout probability in the regressor (official: 0.5).
        channels: width of the convolutions (official: 256).
        precision: "fp32" or "bf16" (:mod:`model.precision`) for the convolutions.
        pose_anchors: K anchor poses the regressor starts from (0: the mean pose, as the
            paper).
    """

    def __init__(self, in_channels: int, num_joints: int, mean_shape: torch.Tensor,
                 bounded_shape: bool, iterations: int = 3, dropout: float = 0.5,
                 channels: int = 256, precision: str = "fp32", pose_anchors: int = 0) -> None:
        super().__init__()
        self.num_joints, self.shape_dim = num_joints, mean_shape.numel()
        self.iterations, self.bounded_shape = iterations, bounded_shape
        self.precision = precision
        self.features = nn.Sequential(
            _conv_block(in_channels, channels, 1), _conv_block(channels, channels, 1),
            _conv_block(channels, channels, 1), _conv_block(channels, channels, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        num_params = num_joints * 6 + self.shape_dim + 3
        self.regressor = nn.Sequential(
            nn.Linear(channels + num_params, 1024), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(1024, 1024), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(1024, num_params))
        nn.init.xavier_uniform_(self.regressor[-1].weight, gain=0.1)  # official
        nn.init.zeros_(self.regressor[-1].bias)
        rotations = torch.eye(3).repeat(num_joints, 1, 1)
        rotations[0] = FACING_CAMERA
        mean_shape = mean_shape.detach().float().cpu()  # buffers start on the CPU, as weights do
        mean = mean_shape.clamp(1e-3, 1 - 1e-3) if bounded_shape else mean_shape
        shape_init = torch.logit(mean) if bounded_shape else mean
        init = torch.cat([matrix_to_rot6d(rotations).reshape(-1), shape_init,
                          torch.tensor(CAMERA_INIT)])
        self.register_buffer("init_params", init)
        if pose_anchors:
            self.anchor_classifier = nn.Linear(channels, pose_anchors)
            self.register_buffer("anchors", torch.zeros(pose_anchors, (num_joints - 1) * 6))
            self.register_buffer("anchors_fitted", torch.tensor(False))

    def set_anchors(self, anchors: torch.Tensor) -> None:
        """Store the anchor poses ``[K, J - 1, 3, 3]``
        (:func:`model.pose_anchors.fit_pose_anchors`)."""
        expected = (len(self.anchors), self.num_joints - 1, 3, 3)
        if tuple(anchors.shape) != expected:
            raise ValueError(f"SMPLHead: anchors must be {list(expected)}, "
                             f"got {list(anchors.shape)}")
        self.anchors.copy_(matrix_to_rot6d(anchors).reshape(len(anchors), -1))
        self.anchors_fitted.fill_(True)

    def anchor_rotations(self) -> torch.Tensor:
        """``[K, J - 1, 3, 3]`` the anchor poses."""
        return rot6d_to_matrix(self.anchors.view(len(self.anchors), -1, 6))

    def _start(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The regressor's starting params ``[N, P]`` and the anchor logits ``[N, K]``."""
        params = self.init_params.expand(feature.shape[0], -1)
        if not hasattr(self, "anchors"):
            return params, None
        if not self.anchors_fitted:
            raise RuntimeError("SMPLHead: pose anchors were never fitted (set_anchors)")
        logits = self.anchor_classifier(feature)
        articulation = logits.softmax(dim=1) @ self.anchors  # [N, (J - 1) * 6]
        return torch.cat([params[:, :6], articulation, params[:, self.num_joints * 6:]],
                         dim=1), logits

    def forward(self, roi_features: torch.Tensor) -> SMPLPrediction:
        """``roi_features [N, C, 14, 14]`` -> :class:`SMPLPrediction` for N boxes."""
        with reduced_precision(self.precision, roi_features.device.type):
            feature = self.features(roi_features).float()  # [N, channels]
        params, logits = self._start(feature)
        for _ in range(self.iterations):
            params = params + self.regressor(torch.cat([feature, params], dim=1))
        rot6d, shape, cam = params.split([self.num_joints * 6, self.shape_dim, 3], dim=1)
        rotmats = rot6d_to_matrix(rot6d.reshape(-1, self.num_joints, 6))
        prediction = SMPLPrediction(rotmats=rotmats, cam=cam, shape=torch.sigmoid(shape)
                                    if self.bounded_shape else shape)
        if logits is not None:
            prediction["anchor_logits"] = logits
        return prediction
