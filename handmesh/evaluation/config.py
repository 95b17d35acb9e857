"""`EvaluateConfig`: what `handmesh evaluate` scores and how (each field is an option of the command)."""

from __future__ import annotations

from dataclasses import dataclass, field

from handmesh.config import option
from handmesh.pipeline.predictor import detector_field, search_field

# the splits `--split` takes (handmesh.evaluate.split_dataset says what each is in a folder of either kind)
SPLITS = ("evaluation", "training", "val")
# the mesh sources (handmesh.evaluation.sources builds them)
SOURCES = ("model", "landmark-fit")


@dataclass
class EvaluateConfig:
    """Which split of the data is scored, with which mesh source, and how it is run."""

    split: str = field(
        default="evaluation",
        metadata=option(
            "evaluation: FreiHAND's, or a custom folder's test lines (all lines when none); training; "
            "val: what training held out (see --val-fraction, --seed)",
            SPLITS,
        ),
    )
    source: str = field(
        default="auto",
        metadata=option(
            "mesh source: the model file (auto when CKPT is given) or the landmark fit (no model file)",
            ("auto", *SOURCES),
        ),
    )
    detect: bool = field(
        default=False,
        metadata=option(
            "find the hands with the detector as `handmesh predict` does instead of using the labelled "
            "boxes; reports the share of hands found"
        ),
    )
    detector: str = detector_field()
    search: str | None = search_field("the images (or the crops)")
    baseline: str | None = field(
        default=None, metadata=option("score the mean-pose baseline instead", choices=("mean",))
    )
    val_fraction: float = field(
        default=0.05,
        metadata=option("share of the samples training held out (--split val)", bounds=(0.0, 1.0)),
    )
    seed: int = field(default=0, metadata=option("seed of the validation split (--split val)"))
    batch_size: int = field(default=32, metadata=option("crops per model batch", bounds=(1, 65536)))
    workers: int = field(default=2, metadata=option("data-loader worker processes", bounds=(0, 1024)))
    device: str = field(default="auto", metadata=option("auto | cpu | cuda | cuda:N", metavar="DEVICE"))
