"""Training of the regressor, one concern per module:

- `config`: `TrainConfig`, every setting of a run but the model;
- `data`: `build_datasets(cfg, img_size)`, the one place a config becomes training/validation data;
- `plan`: `plan_run` resolves configs and resume state once and refuses mismatches up front;
- `state`: the training-checkpoint format (a model file plus the resume state) and run-folder guards;
- `distributed`, `rng`: torchrun ranks, devices, collectives; RNG capture for exact resume;
- `validation`, `preview`: validation as a typed `ValResult`; the TensorBoard mesh grid;
- `trainer`: `Trainer` (the loop) and `train()`; `cli`: `handmesh train` / train_freihand.py.
"""

from __future__ import annotations

from handmesh.lazy import lazy_exports

# Lazy exports (PEP 562): `handmesh train --help` imports `handmesh.train.cli` and must not pull in torch.
_EXPORTS = {
    "TrainConfig": "config",
    "build_datasets": "data",
    "RunPlan": "plan",
    "load_resume_point": "plan",
    "plan_run": "plan",
    "TRAIN_FORMAT": "state",
    "freeze_hand_model": "state",
    "Trainer": "trainer",
    "train": "trainer",
}

__getattr__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})

__all__ = sorted(_EXPORTS)
