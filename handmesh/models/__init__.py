"""The regressor: FastViT encoder + MANO-parameter head + hand-model layer.

    model = build_model("fastvit_t8", img_size=224)   # train form
    out = model(images)                                # images (B,3,S,S) RGB in [0,1]
    deploy = reparameterize(model)                     # fused copy for inference
    save_model(model, "m.pt"); model = load_model("m.pt")

Building lives in `build`, the model-file format (and which state belongs in a file) in `model_file`.
"""

from __future__ import annotations

from handmesh.lazy import exports_of, lazy_exports

# Lazy exports (PEP 562): `ModelConfig` for a command's --help must not pull in torch and timm.
_EXPORTS = exports_of(
    __name__,
    {
        "build": "build_model build_model_from_config",
        "config": "HEADS ModelConfig fastvit_variants",
        "model_file": "HAND_MODEL_PREFIX is_hand_model_key load_model load_own_state model_from_payload "
        "model_payload own_state read_model_config save_model",
        "regressor": "OUTPUT_NAMES HandRegressor",
        "reparam": "reparameterize",
    },
)
__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
