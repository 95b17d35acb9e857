"""The training and validation data of a run: the one place a `TrainConfig` becomes datasets and loaders."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch

from handmesh.errors import HandmeshError
from handmesh.train.config import TrainConfig
from handmesh.train.distributed import DistInfo


def build_datasets(
    cfg: TrainConfig, img_size: int, hand_kind: str | None = None
) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """Training and validation sets of `--data`: a folder (FreiHAND layout or custom annotations.jsonl,
    detected from its files; validation held out by sample id), the synthetic stream ("synth:..."), or a
    weighted mix ("0.3*DIR + 0.7*synth:"); see handmesh.data.mix. Validation is never augmented.
    `hand_kind`: the model's hand model; a folder whose labels need MANO is refused for the stand-in."""
    from handmesh.data.checks import preflight_dataset, refuse_standin_on_mano_labels
    from handmesh.data.mix import build_training_data, parse_data_spec

    # the cheap checks of `handmesh check-dataset` (every image's header, label consistency) before the
    # first step: a broken folder fails now with one line, not hours in or at the first validation; the
    # labels they read are the ones the datasets use (a folder is read once)
    sources = parse_data_spec(cfg.data)
    labels = {}
    for source in sources:
        if source.is_folder and source.spec not in labels:
            warnings = []
            if hand_kind is not None:
                allowed = cfg.train_standin_on_mano_labels
                warnings += [w for w in [refuse_standin_on_mano_labels(source.spec, hand_kind, allowed)] if w]
            found, labels[source.spec] = preflight_dataset(source.spec)
            for warning in warnings + found:
                print(f"handmesh train: warning: {warning}", file=sys.stderr)
    return build_training_data(
        sources,
        img_size,
        augment=cfg.augment,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        val_images=cfg.val_images,
        labels=labels,
    )


def split_summary(
    cfg: TrainConfig, train_set: torch.utils.data.Dataset, val_set: torch.utils.data.Dataset
) -> tuple[str, str | None]:
    """The line saying how many samples train and validate, and a warning when validation is too small
    to pick `best.pt` (None when it is big enough)."""
    from handmesh.data.stream import is_endless

    n_val = len(val_set)
    if is_endless(train_set):
        line = f"data: endless training samples ({cfg.epoch_images} per epoch), {n_val} validation samples"
    else:
        line = f"data: {len(train_set)} training samples, {n_val} validation samples"
    if n_val >= cfg.min_val_samples:
        return line, None
    return line, (
        f"only {n_val} validation sample(s) (fewer than --min-val-samples {cfg.min_val_samples}): "
        "validation scores are noise "
        "at that size, so best.pt follows the training loss instead (raise --val-fraction, or mark "
        'validation lines "split": "val" in annotations.jsonl)'
    )


class RenderedOnce(torch.utils.data.Dataset):
    """A rendered validation set kept in memory after its first pass: each picture depends on its index
    alone, so every later validation reuses it instead of rendering it again (in the 128 px run, validating
    on 200 renders took 44-82 s of each 1,600-image epoch, 16-27 % of its wall time; kept: 8-11 s)."""

    def __init__(self, rendered: torch.utils.data.Dataset) -> None:
        self.rendered = rendered
        self.kept: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.rendered)

    def __getitem__(self, i: int) -> dict:
        if i not in self.kept:
            self.kept[i] = self.rendered[i]
        return self.kept[i]


def is_rendered(dataset: torch.utils.data.Dataset) -> bool:
    """Whether a dataset is rendered on the fly: the synthetic stream alone, or only its parts."""
    from handmesh.data.stream import SynthStream

    if isinstance(dataset, torch.utils.data.ConcatDataset):
        return len(dataset.datasets) > 0 and all(is_rendered(d) for d in dataset.datasets)
    return isinstance(dataset, SynthStream)


@dataclass
class Loaders:
    """A run's loaders, the sampler to move to each epoch, and the shuffling generator (checkpointed)."""

    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader
    sampler: Any  # EpochSampler or DistributedSampler (set_epoch before each epoch), or None
    generator: torch.Generator


def make_loaders(
    cfg: TrainConfig,
    train_set: torch.utils.data.Dataset,
    val_set: torch.utils.data.Dataset,
    dist_info: DistInfo,
    device: torch.device,
) -> Loaders:
    """The loaders of a run: shuffled epochs of a folder, or windows of an endless index space."""
    from handmesh.data.mix import EpochSampler
    from handmesh.data.stream import is_endless

    if len(train_set) == 0:
        raise HandmeshError(f"no training samples in {cfg.data}")
    # shuffling draws from its own generator, saved in checkpoints, so a resumed run sees the same order
    generator = torch.Generator().manual_seed(cfg.seed)
    sampler = None
    indexed = is_endless(train_set)  # the synthetic stream or a mix: sampled by index
    if indexed:
        # epoch e is the window of indices e*L ... (e+1)*L-1: always new images, and a resumed run
        # continues at the exact next index
        sampler = EpochSampler(cfg.epoch_images, dist_info.rank, dist_info.world_size)
    elif dist_info.enabled:
        sampler = torch.utils.data.DistributedSampler(
            train_set, dist_info.world_size, dist_info.rank, shuffle=True, seed=cfg.seed, drop_last=True
        )
    common: dict[str, Any] = {"num_workers": cfg.workers, "pin_memory": device.type == "cuda"}
    if cfg.workers > 0:
        # rendering datasets ask for spawned workers (a fork would inherit this process's GL context)
        common["multiprocessing_context"] = getattr(train_set, "multiprocessing_context", None)
    train = torch.utils.data.DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        generator=generator,
        drop_last=indexed or len(train_set) // dist_info.world_size >= cfg.batch_size,
        persistent_workers=indexed and cfg.workers > 0,  # spawned workers are slow to start
        **common,
    )
    if is_rendered(val_set):
        # rendered in this process once (where it is kept), at the first validation: loader workers would
        # render it again every epoch
        val_set, val_common = RenderedOnce(val_set), {"num_workers": 0, "pin_memory": common["pin_memory"]}
    else:
        val_common = common
    val = torch.utils.data.DataLoader(
        val_set,
        batch_size=cfg.batch_size,
        shuffle=False,
        generator=torch.Generator().manual_seed(cfg.seed),
        **val_common,
    )
    if len(train) == 0:
        raise HandmeshError(f"batch size {cfg.batch_size} leaves no full batch of {len(train_set)} samples")
    return Loaders(train, val, sampler, generator)
