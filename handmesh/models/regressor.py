"""The full regressor: [0,1] RGB crop -> FastViT features -> MANO parameters -> hand mesh and joints."""

from __future__ import annotations

import torch
from torch import nn

from handmesh.errors import HandmeshError
from handmesh.geometry import matrix_to_rot6d, project_points, rot6d_to_matrix
from handmesh.models.camera import cam_to_translation, nominal_K
from handmesh.models.config import HEADS, ModelConfig
from handmesh.models.encoder import FastViTEncoder
from handmesh.models.head import IterativeHead, KeypointHead

OUTPUT_NAMES: tuple[str, ...] = (
    "vertices",
    "joints",
    "global_orient",
    "hand_pose",
    "betas",
    "cam",
    "joints2d",
)
# Fraction of the crop the mean hand spans at the mean camera (detector boxes carry a margin).
MEAN_FILL = 0.8


def mean_global_orient() -> torch.Tensor:
    """Initial global orientation (3,3): palm towards the camera, fingers up (image -y), thumb right.

    MANO's (and the stand-in's) rest hand points its fingers along -x with the palm facing -y and the
    thumb towards +z; identity (or HMR's 180 degrees about x) would show that hand edge-on to an OpenCV
    camera. The columns are the camera-frame images of the model's x, y, z axes.
    """
    return torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@torch.no_grad()
def mean_camera(hand_model: nn.Module, orient: torch.Tensor) -> torch.Tensor:
    """Weak-perspective camera (s, tx, ty) that centres the mean hand and makes it fill MEAN_FILL of the crop."""
    verts = hand_model(global_orient=orient[None]).vertices[0].float()
    lo, hi = verts[:, :2].min(0).values, verts[:, :2].max(0).values
    extent = float((hi - lo).max())
    centre = (lo + hi) / 2
    s = 2.0 * MEAN_FILL / max(extent, 1e-3)
    return torch.tensor([s, -float(centre[0]), -float(centre[1])])


# Each config field has its own bound, but together they can still ask for gigabytes (a 16-layer,
# 8192-wide head is a billion parameters). FastViT-MA36 with the default head is about 46 million.
MAX_MODEL_PARAMETERS = 200_000_000


def check_model_size(config: ModelConfig, encoder: nn.Module) -> int:
    """Parameters and buffers of `encoder` plus the head `config` asks for, the head counted on torch's
    meta device (shapes only, nothing allocated); over MAX_MODEL_PARAMETERS is a one-line HandmeshError."""
    with torch.device("meta"):
        head = make_head(config, encoder, torch.zeros(16, 6), torch.zeros(3))
    count = sum(t.numel() for m in (encoder, head) for t in (*m.parameters(), *m.buffers()))
    if count > MAX_MODEL_PARAMETERS:
        raise HandmeshError(
            f"model config asks for {count / 1e6:.0f} million parameters ({count * 4 / 2**30:.1f} GB); "
            f"the limit is {MAX_MODEL_PARAMETERS // 1_000_000} million (head_hidden x head_layers is the "
            "usual culprit)"
        )
    return count


def make_head(
    config: ModelConfig, encoder: nn.Module, init_pose6d: torch.Tensor, init_cam: torch.Tensor
) -> nn.Module:
    """The MANO head a config asks for, on top of `encoder`, starting from the mean pose and camera."""
    if config.head == "pooled":
        return IterativeHead(
            encoder.out_channels,
            init_pose6d=init_pose6d,
            init_cam=init_cam,
            hidden=config.head_hidden,
            layers=config.head_layers,
            iterations=config.head_iterations,
            dropout=config.head_dropout,
        )
    if config.head == "keypoint":
        return KeypointHead(
            encoder.pyramid_channels,
            init_pose6d=init_pose6d,
            init_cam=init_cam,
            img_size=int(config.img_size),
            stride=config.head_stride,
            width=config.head_width,
            hidden=config.head_hidden,
            layers=config.head_layers,
            dropout=config.head_dropout,
        )
    raise HandmeshError(f"unknown head {config.head!r}; choose one of {', '.join(HEADS)}")


class HandRegressor(nn.Module):
    """Images (B,3,S,S) RGB in [0,1] -> dict of vertices, joints, MANO parameters, camera, joints2d."""

    def __init__(self, config: ModelConfig, hand_model: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.img_size = int(config.img_size)
        self.encoder = FastViTEncoder(config.variant, config.features)
        check_model_size(config, self.encoder)  # the encoder is one of the known variants; the head is not
        orient = mean_global_orient()
        init_pose = torch.eye(3).expand(16, 3, 3).clone()
        init_pose[0] = orient
        init_pose6d, init_cam = matrix_to_rot6d(init_pose), mean_camera(hand_model, orient)
        self.head = make_head(config, self.encoder, init_pose6d, init_cam)
        self.hand_model = hand_model
        # non-persistent: derived from the config, never stale in a checkpoint. The normalization is the
        # one the encoder's weights expect (timm's pretrained config for the variant).
        mean, std = self.encoder.pixel_mean, self.encoder.pixel_std
        self.register_buffer("pixel_mean", torch.tensor(mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("K_nominal", nominal_K(self.img_size, config.resolved_focal()), persistent=False)
        self.deploy = False

    @property
    def faces(self):
        """Triangle indices (F,3) int64 of the hand model (right hand)."""
        return self.hand_model.faces

    def pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Encoder maps (strides 4, 8, 16 and the final map) of [0,1] images."""
        x = (images - self.pixel_mean) / self.pixel_std
        return self.encoder.pyramid(x)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Regress the hand in the model's frame (no translation) plus its crop camera and 2D joints."""
        params = self.head(self.pyramid(images))
        rots = rot6d_to_matrix(params["pose6d"])
        global_orient, hand_pose = rots[:, 0], rots[:, 1:]
        hand = self.hand_model(global_orient=global_orient, hand_pose=hand_pose, betas=params["betas"])
        cam = params["cam"]
        transl = cam_to_translation(cam, self.K_nominal, self.img_size)
        joints2d = project_points(hand.joints + transl[:, None, :], self.K_nominal)
        return {
            "vertices": hand.vertices,
            "joints": hand.joints,
            "global_orient": global_orient,
            "hand_pose": hand_pose,
            "betas": params["betas"],
            "cam": cam,
            "joints2d": joints2d,
            # the keypoint head's own 2D keypoints (crop pixels), supervised in training
            **({"keypoints2d": params["keypoints2d"]} if "keypoints2d" in params else {}),
        }
