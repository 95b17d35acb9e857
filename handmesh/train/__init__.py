"""Training of the regressor, one concern per module:

- `config`: `TrainConfig`, every setting of a run but the model;
- `data`: `build_datasets(cfg, img_size)`, the one place a config becomes training/validation data;
- `plan`: `plan_run` resolves configs and resume or `--init` state once and refuses mismatches up front;
- `state`: the training-checkpoint format (a model file plus the resume state) and run-folder guards;
- `distributed`, `rng`: torchrun ranks, devices, collectives; RNG capture for exact resume;
- `validation`, `preview`: validation as a typed `ValResult`; the TensorBoard mesh grid;
- `trainer`: `Trainer` (the loop) and `train()`; `cli`: `handmesh train` / train_freihand.py.
"""

from __future__ import annotations

from handmesh.lazy import exports_of, lazy_exports

# Lazy exports (PEP 562): `handmesh train --help` imports `handmesh.train.cli` and must not pull in torch.
_EXPORTS = exports_of(
    __name__,
    {
        "config": "TrainConfig",
        "data": "build_datasets",
        "plan": "RunPlan load_init_point load_resume_point plan_run",
        "state": "TRAIN_FORMAT freeze_hand_model",
        "trainer": "Trainer train",
    },
)
__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
