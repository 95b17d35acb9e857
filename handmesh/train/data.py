"""The training and validation datasets of a run: the one place a `TrainConfig` becomes data."""

from __future__ import annotations

import sys

import torch

from handmesh.train.config import TrainConfig


def build_datasets(
    cfg: TrainConfig, img_size: int
) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """Training and validation sets of `--data`: a folder (FreiHAND layout or custom annotations.jsonl,
    detected from its files; validation held out by sample id), the synthetic stream ("synth:..."), or a
    weighted mix ("0.3*DIR + 0.7*synth:"); see handmesh.data.mix. Validation is never augmented."""
    from handmesh.data.checks import preflight_dataset
    from handmesh.data.mix import build_training_data, parse_data_spec

    # the cheap checks of `handmesh check-dataset` (every image's header, label consistency) before the
    # first step: a broken folder fails now with one line, not hours in or at the first validation
    for source in parse_data_spec(cfg.data):
        if not source.is_stream:
            for warning in preflight_dataset(source.spec):
                print(f"handmesh train: warning: {warning}", file=sys.stderr)
    return build_training_data(
        cfg.data,
        img_size,
        augment=cfg.augment,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        val_images=cfg.val_images,
    )
