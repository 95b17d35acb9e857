"""The regressor: FastViT encoder + MANO-parameter head + hand-model layer.

    model = build_model("fastvit_t8", img_size=224)   # train form
    out = model(images)                                # images (B,3,S,S) RGB in [0,1]
    deploy = reparameterize(model)                     # fused copy for inference
    save_model(model, "m.pt"); model = load_model("m.pt")

Building lives in `build`, the model-file format (and which state belongs in a file) in `model_file`.
"""

from __future__ import annotations

from handmesh.lazy import lazy_exports

# Lazy exports (PEP 562): `ModelConfig` for a command's --help must not pull in torch and timm.
_EXPORTS = {
    "build_model": "build",
    "build_model_from_config": "build",
    "HEADS": "config",
    "ModelConfig": "config",
    "fastvit_variants": "config",
    "HAND_MODEL_PREFIX": "model_file",
    "is_hand_model_key": "model_file",
    "load_model": "model_file",
    "load_own_state": "model_file",
    "model_from_payload": "model_file",
    "model_payload": "model_file",
    "own_state": "model_file",
    "read_model_config": "model_file",
    "save_model": "model_file",
    "OUTPUT_NAMES": "regressor",
    "HandRegressor": "regressor",
    "reparameterize": "reparam",
}

__getattr__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})

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
