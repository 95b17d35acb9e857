"""The regressor: FastViT encoder + MANO-parameter head + hand-model layer.

    model = build_model("fastvit_t8", img_size=224)   # train form
    out = model(images)                                # images (B,3,S,S) RGB in [0,1]
    deploy = reparameterize(model)                     # fused copy for inference
    save_model(model, "m.pt"); model = load_model("m.pt")

Building lives in `build`, the model-file format (and which state belongs in a file) in `model_file`.
"""

from __future__ import annotations

from handmesh.models.build import build_model, build_model_from_config
from handmesh.models.config import HEADS, ModelConfig, fastvit_variants
from handmesh.models.model_file import (
    HAND_MODEL_PREFIX,
    is_hand_model_key,
    load_model,
    load_own_state,
    model_from_payload,
    model_payload,
    own_state,
    read_model_config,
    save_model,
)
from handmesh.models.regressor import OUTPUT_NAMES, HandRegressor
from handmesh.models.reparam import reparameterize

__all__ = [
    "HEADS",
    "HAND_MODEL_PREFIX",
    "OUTPUT_NAMES",
    "HandRegressor",
    "ModelConfig",
    "build_model",
    "build_model_from_config",
    "fastvit_variants",
    "is_hand_model_key",
    "load_model",
    "load_own_state",
    "model_from_payload",
    "model_payload",
    "own_state",
    "read_model_config",
    "reparameterize",
    "save_model",
]
