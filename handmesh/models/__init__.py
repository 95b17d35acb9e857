"""The regressor: FastViT encoder + iterative MANO-parameter head + hand-model layer.

    model = build_model("fastvit_t8", img_size=224)   # train form
    out = model(images)                                # images (B,3,S,S) RGB in [0,1]
    deploy = reparameterize(model)                     # fused copy for inference
    save_model(model, "m.pt"); model = load_model("m.pt")

A model file is one `torch.save` dict, loadable with `weights_only=True`:
``{"format": "handmesh", "version": 1, "model_config": dict, "state_dict": ..., "deploy": bool,
"hand_model_kind": str, "extra": dict}``. The hand-model layer's arrays are not stored (MANO's licence
forbids redistributing them, and they are rebuilt from the hand-model files at load time); the
recorded kind is checked on load.
"""

from __future__ import annotations

import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from handmesh.checkpoint import load_checkpoint, save_checkpoint
from handmesh.config import from_dict, to_dict
from handmesh.errors import HandmeshError, MissingFileError
from handmesh.models.config import FASTVIT_VARIANTS, ModelConfig
from handmesh.models.regressor import OUTPUT_NAMES, HandRegressor
from handmesh.models.reparam import reparameterize

__all__ = [
    "FASTVIT_VARIANTS",
    "HAND_MODEL_PREFIX",
    "OUTPUT_NAMES",
    "HandRegressor",
    "ModelConfig",
    "build_model",
    "build_model_from_config",
    "checkpoint_payload",
    "load_model",
    "model_from_payload",
    "model_payload",
    "reparameterize",
    "save_model",
]

FORMAT = "handmesh"
VERSION = 1
HAND_MODEL_PREFIX = "hand_model."


def _hand_model_for(config: ModelConfig) -> nn.Module:
    """The hand-model layer a config asks for; a recorded kind that cannot be honoured is an error."""
    from handmesh.hand_model import HandModel, load_hand_model

    if config.hand_model_kind == "standin" and config.hand_model is None:
        # build the stand-in even where MANO is configured: the weights were trained against it
        from handmesh.hand_model.standin import standin_arrays

        return HandModel(standin_arrays(), kind="standin", side="right", source="stand-in")
    hand = load_hand_model(config.hand_model, side="right")
    if config.hand_model_kind not in (None, hand.kind):
        raise MissingFileError(
            f"this model was trained with the {config.hand_model_kind} hand model but only the "
            f"{hand.kind} one is available: put MANO_RIGHT.pkl in data/mano (or set $HANDMESH_MANO_DIR)"
        )
    return hand


def build_model_from_config(config: ModelConfig) -> HandRegressor:
    """Build the train-form regressor of a config (records the hand-model kind in a copy of it)."""
    if config.img_size % 32 != 0 or config.img_size < 64:
        raise HandmeshError(f"img_size must be a multiple of 32 and >= 64, got {config.img_size}")
    hand = _hand_model_for(config)
    config = replace(config, hand_model_kind=hand.kind, focal_length=config.resolved_focal())
    model = HandRegressor(config, hand)
    if config.backbone_weights:
        from handmesh.models.encoder import load_backbone_weights

        load_backbone_weights(model.encoder, config.backbone_weights)
    return model


def build_model(variant: str | None = None, **overrides: Any) -> HandRegressor:
    """Build a train-form regressor: `variant` (a timm FastViT name) plus any ModelConfig field overrides."""
    names = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise HandmeshError(f"build_model: unknown option(s) {unknown}; ModelConfig has {sorted(names)}")
    if variant is not None:
        overrides["variant"] = variant
    return build_model_from_config(ModelConfig(**overrides))


def checkpoint_payload(
    config: ModelConfig, state_dict: dict[str, torch.Tensor], deploy: bool = False
) -> dict[str, Any]:
    """The model-file dict of a config and its weights (hand-model arrays are dropped)."""
    state = {k: v for k, v in state_dict.items() if not k.startswith(HAND_MODEL_PREFIX)}
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_config": to_dict(config),
        "state_dict": state,
        "deploy": bool(deploy),
        "hand_model_kind": config.hand_model_kind,
    }


def model_payload(model: HandRegressor) -> dict[str, Any]:
    """The model-file dict of a model (train or deploy form)."""
    return checkpoint_payload(model.config, model.state_dict(), deploy=bool(getattr(model, "deploy", False)))


def save_model(model: HandRegressor, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write a model to one file (atomically); `extra` holds any plain data (metrics, epoch, notes)."""
    payload = model_payload(model)
    payload["extra"] = dict(extra or {})
    return save_checkpoint(path, payload)


def _describe_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(HAND_MODEL_PREFIX)}
    shape = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if not (shape or missing or unexpected):
        return None
    parts = []
    if shape:
        parts.append(f"{len(shape)} tensor(s) of another shape (e.g. {shape[0]})")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    return ", ".join(parts)


def model_from_payload(payload: dict[str, Any], source: str = "checkpoint") -> HandRegressor:
    """Rebuild a model (train or deploy form, eval mode) from a checkpoint dict."""
    if payload.get("format") != FORMAT or "state_dict" not in payload or "model_config" not in payload:
        raise HandmeshError(f"{source} is not a handmesh model file (no format/model_config/state_dict)")
    if payload.get("version") != VERSION:
        raise HandmeshError(
            f"{source}: model file version {payload.get('version')!r} is not supported ({VERSION})"
        )
    try:
        config = from_dict(ModelConfig, dict(payload["model_config"]))
    except (TypeError, ValueError) as exc:
        raise HandmeshError(f"{source}: bad model config ({exc})") from exc
    # the backbone's initial weights are already inside the state dict; do not look for that file again
    config.backbone_weights = None
    model = build_model_from_config(config)
    if payload.get("deploy"):
        model = reparameterize(model)
    state = payload["state_dict"]
    problem = _describe_mismatch(model, state)
    if problem:
        raise HandmeshError(f"{source} does not match its config (variant {config.variant}): {problem}")
    model.load_state_dict(state, strict=False)
    return model.eval()


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> HandRegressor:
    """Load a model file written by `save_model` (or a training checkpoint holding one), in eval mode."""
    payload = load_checkpoint(path, map_location=map_location)
    return model_from_payload(payload, source=f"checkpoint {path}")
