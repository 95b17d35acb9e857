"""The regressor's configuration: everything needed to rebuild a model from a checkpoint alone."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from handmesh.config import option

# In timm's registry but not buildable here: MobileCLIP2's towers have five stages (the encoder's
# pyramid and the keypoint head are written for FastViT's four, ending at stride 32) and 123 M / 319 M
# parameters, far from real time.
UNSUPPORTED_VARIANTS: tuple[str, ...] = ("fastvit_mci3", "fastvit_mci4")


@functools.cache
def fastvit_variants() -> tuple[str, ...]:
    """The encoder variants: timm's FastViT registry (``fastvit_*``, MobileCLIP towers included) less
    UNSUPPORTED_VARIANTS. timm loads on the first call, not when this module is imported."""
    import timm

    return tuple(name for name in timm.list_models("fastvit_*") if name not in UNSUPPORTED_VARIANTS)


FEATURE_CHOICES: tuple[str, ...] = ("final_conv", "last_stage")
# the MANO heads (handmesh.models.head explains each)
HEADS: tuple[str, ...] = ("pooled", "keypoint")
# 1024 px is 21x FastViT's 224 px work; larger inputs only come from hostile or broken model files
MAX_IMG_SIZE = 1024

# Focal length (pixels) of the nominal crop camera at 224 px; FreiHAND's 224 px images have f ~ 500 px.
NOMINAL_FOCAL_224 = 500.0


@dataclass
class ModelConfig:
    """Architecture and camera settings the regressor is built from (input only; saved in every model file)."""

    variant: str = field(
        default="fastvit_t8",
        metadata=option("FastViT encoder: one of timm's fastvit_* models", metavar="NAME"),
    )
    img_size: int = field(default=224, metadata=option("input crop side, pixels (a multiple of 32)"))
    backbone_weights: str | None = field(
        default=None,
        metadata=option(
            "local ImageNet weights for the encoder (timm or Apple format); none = random init, never the hub",
            metavar="FILE",
        ),
    )
    features: str = field(
        default="final_conv",
        metadata=option(
            "which encoder output the head pools: the 2x-wide expansion conv or the last stage",
            FEATURE_CHOICES,
        ),
    )
    head: str = field(
        default="keypoint",
        metadata=option(
            "MANO head: heatmap keypoints + joint tokens, or globally pooled and iterative "
            "(handmesh.models.head)",
            HEADS,
        ),
    )
    head_stride: int = field(
        default=8, metadata=option("keypoint head: heatmap resolution, input / stride", (4, 8))
    )
    head_width: int = field(default=128, metadata=option("keypoint head: the neck's channels"))
    head_hidden: int = field(default=1024, metadata=option("hidden width of the head's MLP"))
    head_layers: int = field(default=2, metadata=option("layers of the head's MLP"))
    head_iterations: int = field(default=3, metadata=option("pooled head: error-feedback iterations"))
    head_dropout: float = field(default=0.1, metadata=option("dropout in the head's MLP"))
    hand_model: str | None = field(
        default=None,
        metadata=option(
            "hand-model files; none = default resolution (MANO if configured, else the open stand-in)",
            metavar="PATH",
        ),
    )
    focal_length: float | None = field(
        default=None,
        metadata=option(
            "focal length in pixels of the nominal crop camera at img_size; none = 500 x img_size / 224"
        ),
    )

    def validate(self) -> ModelConfig:
        """Refuse values no model should be built with (one-line HandmeshError); returns self.

        Model files come from anywhere: an img_size of 8192 or head_iterations of 10**7 would make loading
        or evaluation allocate gigabytes or never finish, so every field is bounded here, in one place.
        """
        from handmesh.errors import HandmeshError

        def integer(name: str, low: int, high: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise HandmeshError(f"model config: {name}={value!r} must be an integer in {low}..{high}")

        def choice(name: str, options: tuple) -> None:
            if getattr(self, name) not in options:
                raise HandmeshError(f"model config: {name}={getattr(self, name)!r} must be one of {options}")

        choice("variant", fastvit_variants())
        choice("features", FEATURE_CHOICES)
        choice("head", HEADS)
        integer("img_size", 64, MAX_IMG_SIZE)
        if self.img_size % 32:
            raise HandmeshError(
                f"model config: img_size must be a multiple of 32 and >= 64, got {self.img_size}"
            )
        choice("head_stride", (4, 8))
        integer("head_width", 1, 2048)
        integer("head_hidden", 1, 8192)
        integer("head_layers", 1, 16)
        integer("head_iterations", 1, 16)
        dropout = self.head_dropout
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
            raise HandmeshError(f"model config: head_dropout={dropout!r} must be a number in [0, 1)")
        focal = self.focal_length
        if focal is not None and (
            isinstance(focal, bool) or not isinstance(focal, int | float) or not 0.0 < focal <= 1e5
        ):
            raise HandmeshError(
                f"model config: focal_length={focal!r} must be a number in (0, 100000] or null"
            )
        for name in ("hand_model", "backbone_weights"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise HandmeshError(f"model config: {name} must be a path or null")
        return self

    def resolved_focal(self) -> float:
        """The nominal crop camera's focal length in pixels for this img_size."""
        if self.focal_length is not None:
            return float(self.focal_length)
        return NOMINAL_FOCAL_224 * self.img_size / 224.0
