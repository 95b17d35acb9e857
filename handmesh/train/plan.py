"""The run plan: configuration, model configuration and resume or init state, resolved and checked once up front.

A resume (`--resume`) or a fine-tune's starting model (`--init`) is read here, once; the trainer only executes
a plan. Every refusal (a model that differs from the checkpoint's, a fresh run into a folder that holds
another run, a deploy-form starting model) happens here, before any model, dataset or process group is built.
"""

from __future__ import annotations

import dataclasses
import hashlib
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


# ModelConfig fields a fine-tune may set otherwise than its --init model: regularization, no weight's
# shape or meaning (img_size is checked on its own: `_init_at_size`)
INIT_MAY_DIFFER = ("head_dropout",)


@dataclass(frozen=True)
class InitPoint:
    """A model file or training checkpoint whose weights start a fresh run (`--init`: fine-tuning)."""

    path: Path
    sha256: str
    model_config: Any  # handmesh.models.ModelConfig
    state_dict: dict[str, Any]
    hand_model_kind: str | None = None

    def record(self) -> dict[str, str]:
        """Where a run's weights started, as its config.json and checkpoints keep it."""
        return {"path": str(self.path), "sha256": self.sha256}


@dataclass(frozen=True)
class RunPlan:
    """What a `Trainer` runs: the configs, and where it resumes from (None: a fresh run) or, for a fresh
    run, whose weights it starts from (None: the model's own initialization)."""

    cfg: TrainConfig
    model_cfg: Any  # handmesh.models.ModelConfig
    resume: ResumePoint | None = None
    overwrite: bool = False  # a fresh run may replace the checkpoints of an earlier one
    init: InitPoint | None = None


def refuse_resume_with_init(path: str | Path) -> str:
    """Why --resume and --init cannot go together, in one line."""
    return (
        f"--resume continues {path} with its weights, optimizer and schedule; --init starts a fresh run "
        "from a model's weights: give one of them"
    )


def load_resume_point(path: str | Path) -> ResumePoint:
    """Read a training checkpoint once: its train config, model config and training state."""
    path = Path(path)
    return resume_point(path, read_train_checkpoint(path))


def resume_point(path: Path, payload: dict[str, Any]) -> ResumePoint:
    """The resume point of a training checkpoint already loaded from `path` (it holds TRAIN_FORMAT)."""
    from handmesh.models import read_model_config

    state = payload[TRAIN_FORMAT]
    model_cfg, hand_model_kind = read_model_config(payload, str(path))
    try:
        train_cfg = cfgutil.from_dict(TrainConfig, state["train_config"], strict=False)
    except (KeyError, TypeError, ValueError) as exc:
        raise HandmeshError(f"{path}: unreadable training configuration ({exc})") from exc
    return ResumePoint(path, train_cfg, model_cfg, state, hand_model_kind)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_init_point(path: str | Path) -> InitPoint:
    """Read the starting model of a fine-tune once: its model config, weights, hand-model kind and hash; a
    deploy-form (fused) file is refused, it has no train-form weights."""
    from handmesh.checkpoint import load_checkpoint
    from handmesh.models import read_model_config

    path = Path(path)
    payload = load_checkpoint(path)
    model_cfg, kind = read_model_config(payload, f"--init {path}")
    if payload.get("deploy"):
        raise HandmeshError(
            f"--init {path} is a deploy-form (fused) model file and cannot be trained: start from the "
            "train-form file it was made from (a run's model.pt, best.pt or last.pt)"
        )
    # the weights come from the file: the encoder's initial ImageNet file is not needed (or present) again
    model_cfg = dataclasses.replace(model_cfg, backbone_weights=None)
    return InitPoint(path, file_sha256(path), model_cfg, payload["state_dict"], kind)


def _init_at_size(point: InitPoint, have: Any, img_size: int) -> Any:
    """`have` (the starting model's config) at another input size, if the model's weights fit a model of
    that size; the focal length scales with the size (the same field of view)."""
    from handmesh.models import build_model_from_config
    from handmesh.models.model_file import state_mismatch

    focal = have.resolved_focal() * img_size / have.img_size
    config = dataclasses.replace(have, img_size=img_size, focal_length=focal)
    try:
        problem = state_mismatch(build_model_from_config(config, point.hand_model_kind), point.state_dict)
    except HandmeshError as exc:
        problem = str(exc)
    if problem:
        raise HandmeshError(
            f"cannot start from {point.path} at img_size={img_size}: its weights (img_size={have.img_size}) "
            f"do not fit a model of that size ({problem})"
        )
    return config


def init_model_config(point: InitPoint, asked: Any, explicit_model_fields: Iterable[str]) -> Any:
    """The model config of a run started from `point`: the file's, with the explicitly asked img_size (if
    its weights fit) and INIT_MAY_DIFFER fields; any other explicitly asked field that differs is refused."""
    config, explicit = point.model_config, set(explicit_model_fields)
    for name in sorted(explicit):
        want, have = getattr(asked, name), getattr(point.model_config, name)
        if want == have:
            continue
        if name in INIT_MAY_DIFFER:
            config = dataclasses.replace(config, **{name: want})
        elif name != "img_size":
            raise HandmeshError(
                f"cannot start from {point.path}: its model has {name}={have!r} but {name}={want!r} was "
                "asked; drop the option (--init takes the model's configuration from the file)"
            )
    if "img_size" in explicit and asked.img_size != config.img_size:
        config = _init_at_size(point, config, int(asked.img_size))
    return config


def plan_run(
    cfg: TrainConfig,
    model_cfg: Any,
    resume: str | Path | ResumePoint | None = None,
    explicit_model_fields: Iterable[str] = (),
    overwrite: bool = False,
) -> RunPlan:
    """Resolve a run: on resume, the checkpoint's model config (a differently asked `explicit_model_fields`
    value is refused); on a fresh run, refuse an `out` folder holding checkpoints unless `overwrite`, and
    with `cfg.init` take the model config and weights from that file (`init_model_config`)."""
    if resume is None:
        refuse_existing_run(Path(cfg.out), overwrite)
        if not cfg.init:
            return RunPlan(cfg, model_cfg, overwrite=overwrite)
        start = load_init_point(cfg.init)
        config = init_model_config(start, model_cfg, explicit_model_fields)
        return RunPlan(cfg, config, overwrite=overwrite, init=start)
    point = resume if isinstance(resume, ResumePoint) else load_resume_point(resume)
    if cfg.init != point.train_config.init:  # a resumed run keeps the init it recorded, nothing else
        raise HandmeshError(refuse_resume_with_init(point.path))
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
