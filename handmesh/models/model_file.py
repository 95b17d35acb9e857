"""The model file: its format, the hand-model state rule, and saving and loading a regressor.

A model file is one `torch.save` dict, loadable with ``weights_only=True`` (written atomically and read
safely by `handmesh.checkpoint`, which knows nothing of its contents)::

    {"format": "handmesh", "version": 1,
     "model_config": ModelConfig fields (what was asked for),
     "state_dict": weights without the hand-model layer,
     "deploy": bool (fused form),
     "hand_model_kind": "mano" | "standin" (the hand model the weights were trained against),
     "extra": dict (plain data: metrics, epoch, notes)}

A training checkpoint is a model file with one more key holding the trainer's state (its weights go
through `own_state` / `load_own_state` too). The hand-model layer's arrays are never stored: MANO's
licence forbids redistributing them, and they are rebuilt from the hand-model files at load time; the
recorded kind is checked then.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from handmesh.checkpoint import load_checkpoint, save_checkpoint
from handmesh.config import from_dict, to_dict
from handmesh.errors import HandmeshError
from handmesh.models.build import build_model_from_config
from handmesh.models.config import ModelConfig
from handmesh.models.regressor import HandRegressor
from handmesh.models.reparam import reparameterize

FORMAT = "handmesh"
VERSION = 1
# state-dict keys of the regressor's hand-model layer (the `hand_model` attribute)
HAND_MODEL_PREFIX = "hand_model."
# model_config defaults for files written before the field existed
LEGACY_CONFIG_DEFAULTS = {"head": "pooled"}


def is_hand_model_key(name: str) -> bool:
    """Whether a state-dict or parameter name belongs to the hand-model layer (fixed, never stored)."""
    return name.startswith(HAND_MODEL_PREFIX)


def own_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict without the hand-model layer's arrays: what a file stores."""
    return {k: v for k, v in module.state_dict().items() if not is_hand_model_key(k)}


def state_mismatch(module: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """What keeps `state` (as `own_state` saved it) from loading into `module`, in words; None if it fits."""
    own = own_state(module)
    shape = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    parts = []
    if shape:
        parts.append(f"{len(shape)} tensor(s) of another shape (e.g. {shape[0]})")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    return ", ".join(parts) or None


def load_own_state(module: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load what `own_state` saved; any other difference is a one-line HandmeshError naming `source`."""
    problem = state_mismatch(module, state)
    if problem:
        raise HandmeshError(f"{source} does not fit the model: {problem}")
    module.load_state_dict(state, strict=False)  # strict=False only for the hand-model layer's arrays


def model_payload(model: HandRegressor) -> dict[str, Any]:
    """The model-file dict of a model (train or deploy form), without "extra"."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_config": to_dict(model.config),
        "state_dict": own_state(model),
        "deploy": bool(getattr(model, "deploy", False)),
        "hand_model_kind": model.hand_model.kind,
    }


def save_model(model: HandRegressor, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write a model to one file (atomically); `extra` holds any plain data (metrics, epoch, notes)."""
    payload = model_payload(model)
    payload["extra"] = dict(extra or {})
    return save_checkpoint(path, payload)


def _type_problem(payload: dict[str, Any]) -> str | None:
    """What in a model-file dict has the wrong type, in words (None: every field is what save_model writes)."""
    if not isinstance(payload["model_config"], dict):
        return f"model_config must be a dict, not {type(payload['model_config']).__name__}"
    state = payload["state_dict"]
    if not isinstance(state, dict):
        return f"state_dict must be a dict of tensors, not {type(state).__name__}"
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            return f"state_dict entry {str(key)[:60]!r} is not a tensor ({type(value).__name__})"
    if not isinstance(payload.get("deploy", False), bool):
        return f"deploy must be true or false, not {str(payload.get('deploy'))[:20]!r}"
    if not isinstance(payload.get("hand_model_kind"), str | None):
        return "hand_model_kind must be a string"
    return None


def read_model_config(payload: dict[str, Any], source: str = "checkpoint") -> tuple[ModelConfig, str | None]:
    """The ModelConfig and the recorded hand-model kind of a model-file dict (format and version checked)."""
    if payload.get("format") != FORMAT or "state_dict" not in payload or "model_config" not in payload:
        raise HandmeshError(f"{source} is not a handmesh model file (no format/model_config/state_dict)")
    if payload.get("version") != VERSION:
        raise HandmeshError(
            f"{source}: model file version {payload.get('version')!r} is not supported ({VERSION})"
        )
    problem = _type_problem(payload)
    if problem:
        raise HandmeshError(f"{source}: {problem}")
    names = {f.name for f in fields(ModelConfig)}
    raw = {**{k: v for k, v in LEGACY_CONFIG_DEFAULTS.items() if k in names}, **payload["model_config"]}
    # older files also stored the kind inside model_config; the top-level record wins
    legacy_kind = raw.pop("hand_model_kind", None)
    kind = payload.get("hand_model_kind", legacy_kind)
    try:
        config = from_dict(ModelConfig, raw).validate()
    except (TypeError, ValueError, HandmeshError) as exc:
        raise HandmeshError(f"{source}: bad model config ({exc})") from None
    return config, kind


def model_from_payload(payload: dict[str, Any], source: str = "checkpoint") -> HandRegressor:
    """Rebuild a model (train or deploy form, eval mode) from a model-file dict."""
    config, kind = read_model_config(payload, source)
    # the backbone's initial weights are already inside the state dict; do not look for that file again
    config.backbone_weights = None
    try:
        model = build_model_from_config(config, hand_model_kind=kind)
    except HandmeshError as exc:
        if str(exc).startswith("model config"):  # the file's values: say which file
            raise HandmeshError(f"{source}: {exc}") from None
        raise
    if payload.get("deploy"):
        model = reparameterize(model)
    load_own_state(model, payload["state_dict"], f"{source} (variant {config.variant})")
    return model.eval()


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> HandRegressor:
    """Load a model file written by `save_model` (or a training checkpoint holding one), in eval mode."""
    payload = load_checkpoint(path, map_location=map_location)
    return model_from_payload(payload, source=f"checkpoint {path}")


def training_note(payload: dict[str, Any]) -> str:
    """What a model-file dict says about its training, in words: "trained on DATA, epoch E of N, validation
    PA-MPJPE X mm (S samples)", or that the file does not say (written by save_model or an older run)."""
    extra = payload.get("extra") or {}
    data = extra.get("trained_on")
    if not data:
        return "training data not recorded in the file"
    words = [f"trained on {data}"]
    if extra.get("epoch") is not None:
        words.append(f"epoch {extra['epoch']}" + (f" of {extra['epochs']}" if extra.get("epochs") else ""))
    if extra.get("pa_mpjpe_mm") is not None:
        samples = f" ({int(extra['num_samples'])} samples)" if extra.get("num_samples") is not None else ""
        words.append(f"validation PA-MPJPE {float(extra['pa_mpjpe_mm']):.1f} mm{samples}")
    return ", ".join(words)
