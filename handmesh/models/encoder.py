"""The image encoder: a timm FastViT trunk (never downloaded) and optional local ImageNet weights."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn

from handmesh.errors import HandmeshError, MissingFileError
from handmesh.models.config import FEATURE_CHOICES, fastvit_variants

WEIGHTS_DIR = Path("data/weights")

# Feature choice, on evidence: the head pools the final expansion conv ("final_conv"), not the last
# stage. (1) Cost: that block is a grouped 3x3 conv + SE doubling the channels at stride 32 — fastvit_t8
# 1.056 vs 1.055 GFLOPs at 224, +0.09 M parameters. (2) Fit: on a small synthetic regression task
# (bench/feature_choice.py: ellipse centre/size/orientation, same seed, data and schedule) it reached a
# lower validation MSE in both runs (0.0399 vs 0.0408, 0.0303 vs 0.0421; bench/results/feature_choice.json).
# (3) It is part of timm's/Apple's ImageNet trunk, so local pretrained weights initialize it too.
# "last_stage" stays available as an option.


def _check_variant(variant: str) -> None:
    if variant not in fastvit_variants():
        raise HandmeshError(
            f"unknown encoder variant {variant!r}; choose one of {', '.join(fastvit_variants())}"
        )


class FastViTEncoder(nn.Module):
    """FastViT trunk that maps normalized images (B,3,S,S) to feature maps (B,C,S/32,S/32).

    `pixel_mean` / `pixel_std` are the normalization the variant's weights expect, from timm's pretrained
    config: ImageNet statistics for the ImageNet FastViTs, mean 0 / std 1 for the MobileCLIP towers.
    """

    def __init__(self, variant: str = "fastvit_t8", features: str = "final_conv") -> None:
        super().__init__()
        import timm

        _check_variant(variant)
        if features not in FEATURE_CHOICES:
            raise HandmeshError(
                f"unknown feature choice {features!r}; choose one of {', '.join(FEATURE_CHOICES)}"
            )
        self.variant = variant
        self.features = features
        # num_classes=0, global_pool="" drop the classifier; pooling happens in the head
        self.trunk = timm.create_model(variant, pretrained=False, num_classes=0, global_pool="")
        self.pixel_mean = tuple(float(m) for m in self.trunk.pretrained_cfg["mean"])
        self.pixel_std = tuple(float(s) for s in self.trunk.pretrained_cfg["std"])
        if features == "last_stage":
            self.trunk.final_conv = nn.Identity()
            self.out_channels = int(self.trunk.feature_info[-1]["num_chs"])
        else:
            self.out_channels = int(self.trunk.num_features)
        # channels of `pyramid`'s maps: stages at strides 4, 8, 16, then the final map at stride 32
        self.pyramid_channels = [int(info["num_chs"]) for info in self.trunk.feature_info[:3]]
        self.pyramid_channels.append(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of normalized images."""
        return self.trunk.forward_features(x)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage maps at strides 4, 8, 16 and the final map at stride 32 (what `forward` returns), one pass."""
        x = self.trunk.stem(x)
        maps = []
        for stage in self.trunk.stages:
            x = stage(x)
            maps.append(x)
        return [*maps[:3], self.trunk.final_conv(x)]


def _unwrap_state_dict(obj: object) -> dict[str, torch.Tensor]:
    """The tensor dict inside common checkpoint wrappers ({"state_dict": ...}, {"model": ...})."""
    for _ in range(3):
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            for key in ("state_dict", "model", "model_state", "net"):
                if key in obj:
                    obj = obj[key]
                    break
            else:
                break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise HandmeshError("backbone weights: no state dict of tensors found in the file")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_backbone_weights(encoder: FastViTEncoder, path: str | os.PathLike) -> dict[str, list[str]]:
    """Load local ImageNet weights (timm or Apple format) into the encoder; returns missing/unexpected keys."""
    from timm.models.fastvit import checkpoint_filter_fn

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"backbone weights {path} not found: put a timm or Apple {encoder.variant} checkpoint "
            f"(e.g. {WEIGHTS_DIR / (encoder.variant + '.pth')}) there, or leave backbone_weights unset"
        )
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        raise HandmeshError(
            f"backbone weights {path}: not a readable torch checkpoint ({type(exc).__name__})"
        ) from exc
    state = _unwrap_state_dict(raw)
    # strip wrappers that training frameworks add ("module." from DDP, "trunk."/"encoder." from us)
    for prefix in ("module.", "encoder.trunk.", "trunk."):
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    # timm's own filter maps Apple's original key names (and MobileCLIP towers) to timm's
    state = checkpoint_filter_fn(state, encoder.trunk)
    state = {k: v for k, v in state.items() if not k.startswith(("head.", "head_dist."))}
    if encoder.features == "last_stage":
        state = {k: v for k, v in state.items() if not k.startswith("final_conv.")}
    own = encoder.trunk.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise HandmeshError(
            f"backbone weights {path} do not fit {encoder.variant}: {len(mismatched)} tensor(s) differ in "
            f"shape (e.g. {mismatched[0]}); is it a checkpoint of another variant?"
        )
    result = encoder.trunk.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if len(missing) == len(own):
        raise HandmeshError(
            f"backbone weights {path}: no key matches {encoder.variant} (a reparameterized/fused "
            "checkpoint or another architecture?); use the unfused training checkpoint"
        )
    if missing or unexpected:
        print(
            f"handmesh: backbone weights {path.name}: {len(missing)} missing key(s) "
            f"{missing[:3]}, {len(unexpected)} unexpected key(s) {unexpected[:3]}",
            file=sys.stderr,
        )
    return {"missing": missing, "unexpected": unexpected}
