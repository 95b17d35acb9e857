"""`TrainConfig`: every setting of a training run except the model itself (that is `ModelConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handmesh.config import option

AMP_MODES = ("auto", "bf16", "fp16", "off")
SWITCH = ("auto", "on", "off")


def loss_weight(default: float, term: str) -> Any:
    """A loss term's weight field: a `--loss-NAME` option of `handmesh train` (0 turns the term off)."""
    return field(
        default=default,
        metadata=option(f"loss weight: {term}; 0 = off (handmesh.losses)", bounds=(0, 1_000_000)),
    )


@dataclass
class TrainConfig:
    """Everything about a training run except the model itself (that is `ModelConfig`)."""

    data: str = field(
        default="",
        metadata=option(
            "training data: a folder (FreiHAND layout or custom annotations.jsonl), the synthetic stream "
            "'synth:KEY=VALUE,...', or a mix '0.3*DIR + 0.7*synth:' (docs/training.md)",
            metavar="DATA",
        ),
    )
    out: str = field(
        default="runs/train", metadata=option("run folder (config, checkpoints, tb/)", metavar="DIR")
    )
    init: str | None = field(
        default=None,
        metadata=option(
            "start a fresh run (new optimizer and schedule, step 0) from the weights of this model file or "
            "checkpoint: fine-tuning; the model's configuration comes from the file",
            metavar="MODEL",
        ),
    )
    # the defaults are docs/training.md's FreiHAND recipe for one GPU (tests/test_recipe.py checks both agree)
    epochs: int = field(default=100, metadata=option("epochs to train", bounds=(1, 1_000_000)))
    batch_size: int = field(default=64, metadata=option("images per step and process", bounds=(1, 65536)))
    lr: float = field(default=5e-4, metadata=option("peak learning rate (AdamW)", bounds=(1e-12, 10)))
    weight_decay: float = field(default=1e-4, metadata=option("AdamW weight decay (not on 1-D tensors)"))
    warmup_epochs: float = field(
        default=1.0, metadata=option("linear warm-up length in epochs", bounds=(0, 1_000_000))
    )
    min_lr_ratio: float = field(default=0.01, metadata=option("end of the cosine decay, as a fraction of lr"))
    # Weights of the loss terms (handmesh.losses). 3D terms are L1 in metres (~0.01-0.04 at the start),
    # 2D ~0.15, rotations ~0.1, betas ~1: the hand-frame 3D terms lead (articulation is what the
    # aligned metrics measure), the camera-frame ones also teach the global rotation, shape is
    # down-weighted because it is the least visible label.
    loss_joints3d: float = loss_weight(5.0, "root-relative 3D joints, camera frame (L1, metres)")
    loss_vertices: float = loss_weight(5.0, "centred vertices, camera frame (L1, metres)")
    loss_joints3d_local: float = loss_weight(20.0, "3D joints in the hand's own frame (articulation)")
    loss_vertices_local: float = loss_weight(20.0, "vertices in the hand's own frame (articulation)")
    loss_joints2d: float = loss_weight(2.0, "projected 2D joints, crop pixels / crop size")
    loss_keypoints2d: float = loss_weight(2.0, "the keypoint head's own heatmap keypoints, like joints2d")
    loss_camera: float = loss_weight(1.0, "crop camera against the labels' translation (log scale + origin)")
    loss_mano_pose: float = loss_weight(2.0, "MANO pose rotations")
    loss_mano_betas: float = loss_weight(0.05, "MANO shape parameters")
    loss_betas_prior: float = loss_weight(1e-3, "shape prior: betas towards 0")
    grad_clip: float = field(default=1.0, metadata=option("max gradient norm; 0 = off"))
    amp: str = field(
        default="auto", metadata=option("mixed precision: auto = bf16 on a GPU, off on a CPU", AMP_MODES)
    )
    channels_last: str = field(
        default="auto",
        metadata=option("channels-last memory format: auto/on = on a GPU (never on a CPU)", SWITCH),
    )
    ema_decay: float | None = field(
        default=None, metadata=option("EMA of the weights, e.g. 0.999; none = no EMA")
    )
    workers: int = field(
        default=8, metadata=option("data-loader worker processes (per process)", bounds=(0, 1024))
    )
    seed: int = field(default=0, metadata=option("seed of the split, the shuffling and the initialization"))
    val_fraction: float = field(default=0.05, metadata=option("share of samples held out for validation"))
    min_val_samples: int = field(
        default=20,
        metadata=option(
            "with fewer validation samples than this, validation scores are noise: best.pt follows the "
            "training loss instead (stated at the start)"
        ),
    )
    epoch_images: int = field(
        default=20000,
        metadata=option("images per epoch when --data is the synthetic stream or a mix (endless data)"),
    )
    val_images: int = field(
        default=500,
        metadata=option("validation images of the synthetic stream (another seed, never trained on)"),
    )
    augment: bool = field(default=True, metadata=option("augment training images"))
    train_standin_on_mano_labels: bool = field(
        default=False,
        metadata=option(
            "train the open stand-in hand on a FreiHAND-layout folder whose labels were made with MANO "
            "(refused otherwise when no MANO files are found: the labels need MANO)"
        ),
    )
    log_every: int = field(default=20, metadata=option("optimizer steps between TensorBoard scalars"))
    ckpt_every: int = field(
        default=1, metadata=option("epochs between last.pt writes (the final epoch is always written)")
    )
    image_grid: int = field(
        default=8, metadata=option("validation samples rendered into TensorBoard; 0 = none")
    )
    time_budget_min: float | None = field(
        default=None, metadata=option("stop (and end the cosine decay) after this many minutes")
    )
    deterministic: bool = field(default=False, metadata=option("deterministic kernels (slower)"))
    device: str = field(default="auto", metadata=option("auto | cpu | cuda | cuda:N", metavar="DEVICE"))
    progress: bool = field(default=True, metadata=option("show a progress bar"))

    def loss_weights(self) -> dict[str, float]:
        """Loss term name -> weight."""
        names = (
            "joints3d",
            "vertices",
            "joints3d_local",
            "vertices_local",
            "joints2d",
            "keypoints2d",
            "camera",
            "mano_pose",
            "mano_betas",
            "betas_prior",
        )
        return {name: float(getattr(self, "loss_" + name)) for name in names}
