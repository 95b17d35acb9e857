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

from handmesh.train.cli import add_parser
from handmesh.train.config import TrainConfig
from handmesh.train.data import build_datasets
from handmesh.train.plan import RunPlan, load_resume_point, plan_run
from handmesh.train.state import TRAIN_FORMAT, freeze_hand_model
from handmesh.train.trainer import Trainer, train

__all__ = [
    "TRAIN_FORMAT",
    "RunPlan",
    "TrainConfig",
    "Trainer",
    "add_parser",
    "build_datasets",
    "freeze_hand_model",
    "load_resume_point",
    "plan_run",
    "train",
]
