"""Datasets: FreiHAND-layout folders, custom `annotations.jsonl` folders, the shared crop/augment transform
and the synthetic FreiHAND-format generator (`handmesh synth`).

    ds = open_dataset("data/freihand", split="train")   # or a custom folder; "val", "evaluation", ...
    sample = ds[0]   # image (3,S,S) [0,1], K (3,3) of the crop, joints3d (21,3), vertices (778,3),
                     # joints2d (21,2) crop px, joints2d_conf (21,), mano_pose (48,), betas (10,),
                     # has_joints3d / has_vertices / has_joints2d / has_mano, weight, mirrored, index
"""

from __future__ import annotations

from pathlib import Path

from handmesh.data.custom import CustomDataset, is_custom_layout
from handmesh.data.freihand import (
    FreiHANDAnnotations,
    FreiHANDDataset,
    is_freihand_layout,
    mano_to_mesh,
    root_from_uv_scale,
    uv_scale_from_root,
)
from handmesh.data.record import HandRecord
from handmesh.data.transforms import AugmentConfig, HandTransform
from handmesh.errors import MissingFileError

__all__ = [
    "AugmentConfig",
    "CustomDataset",
    "FreiHANDAnnotations",
    "FreiHANDDataset",
    "HandRecord",
    "HandTransform",
    "dataset_kind",
    "is_custom_layout",
    "is_freihand_layout",
    "mano_to_mesh",
    "open_dataset",
    "root_from_uv_scale",
    "uv_scale_from_root",
]


def dataset_kind(root: str | Path) -> str:
    """ "freihand" or "custom" from the folder's files; a one-line MissingFileError when neither."""
    if is_freihand_layout(root):
        return "freihand"
    if is_custom_layout(root):
        return "custom"
    raise MissingFileError(
        f"no dataset at {root}: expected FreiHAND files (training_K.json ...; put FreiHAND in data/freihand/, "
        "see data/README.md) or a custom annotations.jsonl (see docs/readme/datasets.md)"
    )


def open_dataset(
    root: str | Path,
    split: str = "train",
    cfg: AugmentConfig | None = None,
    augment: bool | None = None,
    val_fraction: float = 0.05,
    split_seed: int = 0,
):
    """A dataset of either kind. split: "train"/"val" (held out by sample), "training"/"all" (everything
    for training), "evaluation" (FreiHAND's evaluation split; for a custom folder every line, unaugmented)."""
    kind = dataset_kind(root)
    if kind == "freihand":
        split = {"all": "training"}.get(split, split)
        return FreiHANDDataset(root, split, cfg, augment, val_fraction, split_seed)
    if split == "evaluation":
        return CustomDataset(root, "all", cfg, False if augment is None else augment)
    split = {"training": "all"}.get(split, split)
    return CustomDataset(root, split, cfg, augment, val_fraction, split_seed)
