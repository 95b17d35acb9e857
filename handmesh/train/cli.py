"""`handmesh train` (also `python train_freihand.py`, the same subcommand): options -> a `RunPlan` -> `Trainer`."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from handmesh import config as cfgutil
from handmesh.errors import HandmeshError
from handmesh.train.config import TrainConfig

if TYPE_CHECKING:
    from handmesh.train.plan import RunPlan

# the ModelConfig fields worth their own option; any other one is `--set FIELD=VALUE`
MODEL_OPTIONS = ("variant", "img_size", "backbone_weights")

DESCRIPTION = """Train the regressor on a FreiHAND-layout or custom dataset.

`torchrun --nproc_per_node N train_freihand.py ...` starts N workers (gloo on CPU, nccl on GPU); rank 0
alone validates, logs and writes checkpoints. A run folder holds config.json, last.pt, best.pt (lowest
validation PA-MPJPE), model.pt and TensorBoard events under tb/. last.pt and best.pt carry what --resume
needs to continue exactly from the last completed epoch; model.pt is best.pt's model alone (about a third
of the size), the file to share. All three load wherever a model file is taken (handmesh.load_model,
--checkpoint, handmesh export, handmesh evaluate). --init MODEL starts a fresh run from such a file's
weights and model (fine-tuning: new optimizer and schedule; docs/training.md)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh train` / train_freihand.py."""
    from handmesh.models import ModelConfig

    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="CKPT",
        help="continue OUT/last.pt (or the given checkpoint) from its last completed epoch",
    )
    cfgutil.add_bool_option(
        parser,
        "--overwrite",
        "start afresh in an --out folder that holds another run (its checkpoints and tb/ are deleted)",
    )
    cfgutil.add_config_options(parser.add_argument_group("model"), ModelConfig, only=MODEL_OPTIONS)
    cfgutil.add_config_options(parser.add_argument_group("training"), TrainConfig)
    cfgutil.add_overrides_option(parser, "override any TrainConfig or ModelConfig field (repeatable)")


def plan_from_args(args: argparse.Namespace) -> RunPlan:
    """The run plan of the parsed options: on --resume the checkpoint's settings (read once) with the
    options given on top; fresh runs start from the defaults (with --init, the model file's model)."""
    from handmesh.models import ModelConfig
    from handmesh.train.plan import load_resume_point, plan_run, refuse_resume_with_init

    train_over, model_over = cfgutil.split_overrides(args.overrides, TrainConfig, ModelConfig)
    given = cfgutil.options_given(args)
    resume, base = None, TrainConfig()
    if args.resume is not None:
        out = Path(given.get("out", base.out))
        path = out / "last.pt" if args.resume == "auto" else Path(args.resume)
        if "init" in given:
            raise HandmeshError(refuse_resume_with_init(path))
        resume = load_resume_point(path)
        # a resumed run continues in the folder of its checkpoint unless --out says otherwise
        base = replace(resume.train_config, out=str(out if "out" in given else resume.path.parent))
    cfg = cfgutil.apply_overrides(cfgutil.config_from_args(base, args), train_over)
    if not cfg.data:
        raise HandmeshError("--data DIR is required (a FreiHAND folder or a custom dataset)")
    model_cfg = cfgutil.apply_overrides(cfgutil.config_from_args(ModelConfig(), args), model_over)
    explicit = {name for name in given if name in MODEL_OPTIONS}
    explicit |= {item.split("=", 1)[0].strip().replace("-", "_") for item in model_over}
    return plan_run(cfg, model_cfg, resume, explicit, overwrite=args.overwrite)


def run(args: argparse.Namespace) -> int:
    """`handmesh train`: plan the run and train."""
    from handmesh.train.trainer import Trainer

    result = Trainer(plan_from_args(args)).fit()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in result.items() if k != "last"}, indent=2))
    return 0
