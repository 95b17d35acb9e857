"""Datasets: FreiHAND-layout folders, custom `annotations.jsonl` folders, the shared crop/augment transform
and the synthetic FreiHAND-format generator (`handmesh synth`).

    ds = open_dataset("data/freihand", split="train")   # or a custom folder; "val", "evaluation", ...
    sample = ds[0]   # image (3,S,S) [0,1], K (3,3) of the crop, joints3d (21,3), vertices (778,3),
                     # joints2d (21,2) crop px, joints2d_conf (21,), mano_pose (48,), betas (10,),
                     # has_joints3d / has_vertices / has_joints2d / has_mano, weight, mirrored, index
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from handmesh.errors import MissingFileError
from handmesh.lazy import exports_of, lazy_exports

if TYPE_CHECKING:
    from handmesh.data.freihand import HoldOut
    from handmesh.data.transforms import AugmentConfig

# Lazy exports (PEP 562): importing handmesh.data.<module> (e.g. in synth's render workers) must not
# pull in torch and the readers.
_EXPORTS = exports_of(
    __name__,
    {
        "custom": "CustomDataset is_custom_layout",
        "freihand": "FreiHANDAnnotations FreiHANDDataset HoldOut is_freihand_layout mano_to_mesh root_from_uv_scale "
        "uv_scale_from_root",
        "record": "HandRecord",
        "transforms": "AugmentConfig HandTransform",
    },
)

__getattr__ = lazy_exports(__name__, _EXPORTS)


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
    from handmesh.data.custom import is_custom_layout
    from handmesh.data.freihand import is_freihand_layout

    if is_freihand_layout(root):
        return "freihand"
    if is_custom_layout(root):
        return "custom"
    raise MissingFileError(
        f"no dataset at {root}: expected FreiHAND files (training_K.json ...; put FreiHAND in data/freihand/, "
        "see data/README.md) or a custom annotations.jsonl (see docs/datasets.md, section Custom datasets)"
    )


def open_dataset(
    root: str | Path,
    split: str = "train",
    cfg: AugmentConfig | None = None,
    augment: bool | None = None,
    held_out: HoldOut | None = None,
    labels: Any = None,
):
    """A dataset of either kind. split: "train"/"val" (held out by sample), "training"/"all" (everything
    for training), "evaluation" (FreiHAND's evaluation split; for a custom folder its lines marked
    `"split": "test"`, or every line when none is, unaugmented). The dataset's `split` says which it is.
    `held_out`: which samples "train" leaves to "val" (default: HoldOut(), 5 % with seed 0). `labels`:
    the folder's labels when already read (`checks.preflight_dataset`)."""
    from handmesh.data.custom import CustomDataset
    from handmesh.data.freihand import FreiHANDDataset

    kind = dataset_kind(root)
    if kind == "freihand":
        split = {"all": "training"}.get(split, split)
        labels = labels if split != "evaluation" else None  # the preflight reads the training labels
        return FreiHANDDataset(root, split, cfg, augment, held_out, ann=labels)
    if split == "evaluation":
        from handmesh.data.custom import has_test_lines

        split = "test" if has_test_lines(root) else "all"
        return CustomDataset(root, split, cfg, False if augment is None else augment, anns=labels)
    # test lines are never trained on, whatever the split asked for training
    split = {"all": "training"}.get(split, split)
    return CustomDataset(root, split, cfg, augment, held_out, anns=labels)
