"""The regressor's configuration: everything needed to rebuild a model from a checkpoint alone."""

from __future__ import annotations

from dataclasses import dataclass

# The timm FastViT family; the MCi variants (MobileCLIP image towers) build and fuse the same way.
FASTVIT_VARIANTS: tuple[str, ...] = (
    "fastvit_t8",
    "fastvit_t12",
    "fastvit_s12",
    "fastvit_sa12",
    "fastvit_sa24",
    "fastvit_sa36",
    "fastvit_ma36",
    "fastvit_mci0",
    "fastvit_mci1",
    "fastvit_mci2",
)

FEATURE_CHOICES: tuple[str, ...] = ("final_conv", "last_stage")

# Focal length (pixels) of the nominal crop camera at 224 px; FreiHAND's 224 px images have f ~ 500 px.
NOMINAL_FOCAL_224 = 500.0


@dataclass
class ModelConfig:
    """Architecture and camera settings the regressor is built from (input only; saved in every model file)."""

    variant: str = "fastvit_t8"
    img_size: int = 224
    # local ImageNet weights for the encoder (timm or Apple format); None = random init, never the hub
    backbone_weights: str | None = None
    # which encoder output the head pools: "final_conv" (the 2x-wide expansion conv) or "last_stage"
    features: str = "final_conv"
    # "keypoint" (heatmap keypoints + joint tokens, the default) or "pooled" (globally pooled, iterative);
    # handmesh.models.head explains both
    head: str = "keypoint"
    # keypoint head: heatmap resolution (input / 8 or / 4) and the neck's channels
    head_stride: int = 8
    head_width: int = 128
    head_hidden: int = 1024
    head_layers: int = 2
    head_iterations: int = 3
    head_dropout: float = 0.1
    # hand-model files: None = default resolution (MANO if configured, else the open stand-in)
    hand_model: str | None = None
    # focal length in pixels of the nominal crop camera at img_size; None = 500 * img_size / 224
    focal_length: float | None = None

    def resolved_focal(self) -> float:
        """The nominal crop camera's focal length in pixels for this img_size."""
        if self.focal_length is not None:
            return float(self.focal_length)
        return NOMINAL_FOCAL_224 * self.img_size / 224.0
