"""The run plan: configuration, model configuration and resume state, resolved and checked once up front.

A resume reads its checkpoint here, once; the trainer only executes a plan. Every refusal (a model that
differs from the checkpoint's, a fresh run into a folder that holds another run) happens here, before any
model, dataset or process group is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handmesh import config as cfgutil
from handmesh.errors import HandmeshError
from handmesh.train.config import TrainConfig
from handmesh.train.state import TRAIN_FORMAT, read_train_checkpoint, refuse_existing_run


@dataclass(frozen=True)
class ResumePoint:
    """A training checkpoint read for resuming: its configurations and its training state."""

    path: Path
    train_config: TrainConfig
    model_config: Any  # handmesh.models.ModelConfig
    state: dict[str, Any]
    hand_model_kind: str | None = None  # the hand model the weights were trained against


@dataclass(frozen=True)
class RunPlan:
    """What a `Trainer` runs: the configs, and where it resumes from (None: a fresh run)."""

    cfg: TrainConfig
    model_cfg: Any  # handmesh.models.ModelConfig
    resume: ResumePoint | None = None
    overwrite: bool = False  # a fresh run may replace the checkpoints of an earlier one


def load_resume_point(path: str | Path) -> ResumePoint:
    """Read a training checkpoint once: its train config, model config and training state."""
    from handmesh.models import read_model_config

    path = Path(path)
    payload = read_train_checkpoint(path)
    state = payload[TRAIN_FORMAT]
    model_cfg, hand_model_kind = read_model_config(payload, str(path))
    try:
        train_cfg = cfgutil.from_dict(TrainConfig, state["train_config"], strict=False)
    except (KeyError, TypeError, ValueError) as exc:
        raise HandmeshError(f"{path}: unreadable training configuration ({exc})") from exc
    return ResumePoint(path, train_cfg, model_cfg, state, hand_model_kind)


def plan_run(
    cfg: TrainConfig,
    model_cfg: Any,
    resume: str | Path | ResumePoint | None = None,
    explicit_model_fields: Iterable[str] = (),
    overwrite: bool = False,
) -> RunPlan:
    """Resolve a run: on resume, the checkpoint's model config (a differently asked `explicit_model_fields`
    value is refused); on a fresh run, refuse an `out` folder holding checkpoints unless `overwrite`."""
    if resume is None:
        refuse_existing_run(Path(cfg.out), overwrite)
        return RunPlan(cfg, model_cfg, overwrite=overwrite)
    point = resume if isinstance(resume, ResumePoint) else load_resume_point(resume)
    for name in sorted(explicit_model_fields):
        want, have = getattr(model_cfg, name), getattr(point.model_config, name)
        if want != have:
            raise HandmeshError(
                f"cannot resume {point.path}: it was trained with {name}={have!r} but {name}={want!r} was "
                "asked; drop the option or start a new --out folder"
            )
    # the weights come from the checkpoint: the initial backbone file is not needed (or present) again
    saved = dataclasses.replace(point.model_config, backbone_weights=None)
    return RunPlan(cfg, saved, point)
