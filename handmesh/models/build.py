"""Building the regressor from a config: the encoder, the head and the hand-model layer it asks for."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from torch import nn

from handmesh.errors import HandmeshError, MissingFileError
from handmesh.models.config import ModelConfig
from handmesh.models.regressor import HandRegressor


def hand_model_for(config: ModelConfig, kind: str | None = None) -> nn.Module:
    """The hand-model layer of a config; `kind` ("mano"/"standin", as a model file records it) must be honoured."""
    from handmesh.hand_model import HandModel, load_hand_model

    if kind == "standin" and config.hand_model is None:
        # build the stand-in even where MANO is configured: the weights were trained against it
        from handmesh.hand_model.standin import standin_arrays

        return HandModel(standin_arrays(), kind="standin", side="right", source="stand-in")
    hand = load_hand_model(config.hand_model, side="right")
    if kind not in (None, hand.kind):
        raise MissingFileError(
            f"this model was trained with the {kind} hand model but only the {hand.kind} one is "
            "available: put MANO_RIGHT.pkl in data/mano (or set $HANDMESH_MANO_DIR)"
        )
    return hand


def build_model_from_config(config: ModelConfig, hand_model_kind: str | None = None) -> HandRegressor:
    """Build the train-form regressor of a config; `hand_model_kind` pins the hand model (None: default)."""
    config.validate()
    hand = hand_model_for(config, hand_model_kind)
    # the default focal length is pinned in the model's copy so a saved model keeps its camera
    model = HandRegressor(replace(config, focal_length=config.resolved_focal()), hand)
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
