"""Training data from a `--data` spec: one folder, the synthetic stream, or a weighted mix of several.

    --data data/freihand                          a FreiHAND-layout or custom folder (shuffled epochs)
    --data synth:size=64,named_pose_prob=1.0      the endless synthetic stream (handmesh.data.stream)
    --data cache:runs/fg128                       cached foregrounds on fresh scenes (handmesh.data.cache)
    --data "0.3*data/my_hands + 0.7*synth:"       a mix: each training sample comes from a source drawn
                                                  with these ratios (weights default to 1, normalized)

A mix, like the stream, is indexed by sample number: sample i picks its source with its own seeded draw
and, from a folder, an item drawn the same way (with replacement), from the stream its own new image. Epochs
of such data are fixed-size windows of that endless index space (`EpochSampler`), so every epoch is new data,
a run is deterministic for a seed, and a resumed run continues at the exact next index. A user with a few
hundred labelled images of their own mixes them with the stream in exactly the ratio they choose.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from handmesh.data.stream import HELD_OUT_SEED, STREAM_LENGTH, is_endless, is_stream_spec
from handmesh.errors import HandmeshError

# per-reader keys left out of mixed samples
SOURCE_KEYS = ("line", "sample_id")


@dataclass
class Source:
    """One part of a --data spec: its weight and what it names (a folder or a synth: stream)."""

    weight: float
    spec: str

    @property
    def is_stream(self) -> bool:
        """Whether this source is the synthetic stream."""
        return is_stream_spec(self.spec)

    @property
    def is_cache(self) -> bool:
        """Whether this source is a foreground cache (handmesh.data.cache)."""
        from handmesh.data.cache import is_cache_spec

        return is_cache_spec(self.spec)

    @property
    def is_folder(self) -> bool:
        """Whether this source is a dataset folder (not rendered: the stream or a cache)."""
        return not (self.is_stream or self.is_cache)


def parse_data_spec(spec: str) -> list[Source]:
    """The weighted sources of a --data value ("W*SOURCE + W*SOURCE ..."; a single source has weight 1)."""
    sources = []
    for part in str(spec).split("+"):
        part = part.strip()
        if not part:
            raise HandmeshError(f"--data {spec!r}: empty source (sources are joined by '+')")
        weight, star, rest = part.partition("*")
        if star:
            try:
                w = float(weight)
            except ValueError:
                raise HandmeshError(f"--data {spec!r}: {weight!r} is not a weight (W*SOURCE)") from None
            if not (np.isfinite(w) and w > 0):
                raise HandmeshError(f"--data {spec!r}: weights must be positive numbers, got {weight}")
            sources.append(Source(w, rest.strip()))
        else:
            sources.append(Source(1.0, part))
    return sources


class MixedDataset(Dataset):
    """Sample i of a weighted mix: its source and (for finite sources) its item are seeded by i alone."""

    # render workers must not be forked from a process that may hold a GL context (the trainer's preview)
    multiprocessing_context = "spawn"

    def __init__(self, datasets: Sequence[Dataset], weights: Sequence[float], seed: int = 0) -> None:
        if len(datasets) != len(weights) or not datasets:
            raise HandmeshError("a mix needs one weight per dataset")
        self.datasets = list(datasets)
        w = np.asarray(weights, np.float64)
        self.probs = w / w.sum()
        self.cumulative = np.cumsum(self.probs)
        self.seed = int(seed)
        self.indexed = [is_endless(d) for d in self.datasets]
        for d, indexed in zip(self.datasets, self.indexed, strict=True):
            if not indexed and len(d) == 0:
                raise HandmeshError("a dataset in the mix has no samples")

    def __len__(self) -> int:
        return STREAM_LENGTH

    def locate(self, i: int) -> tuple[int, int]:
        """(source number, index within that source) of mixed sample i."""
        rng = np.random.default_rng([self.seed, 5, int(i)])
        src = int(np.searchsorted(self.cumulative, rng.random(), side="right"))
        src = min(src, len(self.datasets) - 1)
        inner = int(i) if self.indexed[src] else int(rng.integers(len(self.datasets[src])))
        return src, inner

    def __getitem__(self, i: int) -> dict:
        src, inner = self.locate(i)
        sample = self.datasets[src][inner]
        # readers add their own bookkeeping (a custom folder's line, FreiHAND's sample id): a batch
        # mixing sources keeps the keys they share, plus which source each sample came from
        sample = {k: v for k, v in sample.items() if k not in SOURCE_KEYS}
        sample["source"] = torch.tensor(src)
        return sample


class EpochSampler(Sampler[int]):
    """Epoch e of an index-sampled dataset: indices e*L ... (e+1)*L - 1, split across DDP ranks."""

    def __init__(self, epoch_size: int, rank: int = 0, world: int = 1) -> None:
        if epoch_size < world:
            raise HandmeshError(f"an epoch of {epoch_size} samples cannot feed {world} processes")
        self.epoch_size, self.rank, self.world = int(epoch_size), int(rank), int(world)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Move to epoch `epoch`'s window of indices (the trainer calls it before each epoch)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        start = self.epoch * self.epoch_size
        # every rank takes the same number of samples (drop the tail), as DistributedSampler does
        count = self.epoch_size // self.world
        return iter(range(start + self.rank, start + self.rank + count * self.world, self.world))

    def __len__(self) -> int:
        return self.epoch_size // self.world


def build_training_data(
    spec: str | Sequence[Source],
    img_size: int,
    augment: bool,
    val_fraction: float,
    seed: int,
    val_images: int,
    labels: Mapping[str, Any] | None = None,
) -> tuple[Dataset, Dataset]:
    """Training and validation sets of a --data spec (or its parsed sources). Folders hold out
    `val_fraction` by sample id; the validation set of a mix is its folders' held-out samples, or, for the
    stream or a cache alone, `val_images` images of the stream under another seed (never trained on).
    Validation is never augmented. `labels`: a folder's labels by its spec when already read
    (`preflight_dataset`)."""
    from handmesh.data import AugmentConfig, HoldOut, open_dataset
    from handmesh.data.cache import CachedStream, parse_cache_spec
    from handmesh.data.stream import SynthStream, parse_stream_spec

    aug = AugmentConfig(img_size=img_size)
    held_out = HoldOut(val_fraction, seed)
    labels = labels or {}
    sources = parse_data_spec(spec) if isinstance(spec, str) else list(spec)

    def folder(source: Source, split: str, augment: bool) -> Dataset:
        return open_dataset(
            source.spec, split, aug, augment, held_out, labels=labels.get(source.spec)
        )

    if len(sources) == 1 and sources[0].is_folder:
        return folder(sources[0], "train", augment), folder(sources[0], "val", False)
    train_parts, val_parts = [], []
    for n, source in enumerate(sources):
        if source.is_stream:
            synth = parse_stream_spec(source.spec, img_size)
            # the stream's own variety is its augmentation; `augment` adds the crop/colour jitter on top
            train_parts.append(SynthStream(synth, aug, augment=augment, seed_offset=seed + n))
            held_out = SynthStream(synth, aug, seed_offset=HELD_OUT_SEED + seed + n, length=val_images)
            if len(sources) == 1:
                val_parts.append(held_out)
        elif source.is_cache:
            cache = parse_cache_spec(source.spec, img_size)
            cached = CachedStream(
                cache.root, cache.augment, augment=augment, compose_overrides=cache.compose, count=cache.count
            )
            train_parts.append(cached)
            if len(sources) == 1:
                # the cache's own stream under another seed: its pictures as the stream would draw them
                val_parts.append(
                    SynthStream(cached.cfg, aug, seed_offset=HELD_OUT_SEED + seed + n, length=val_images)
                )
        else:
            train_parts.append(folder(source, "train", augment))
            val_parts.append(folder(source, "val", False))
    mix = MixedDataset(train_parts, [s.weight for s in sources], seed=seed)
    return mix, torch.utils.data.ConcatDataset(val_parts)


def held_out(spec: str, count: int, img_size: int, seed: int) -> dict[str, torch.Tensor]:
    """The first `count` held-out images of a stream spec (its other seed, never trained on), stacked."""
    _, ds = build_training_data(spec, img_size, augment=False, val_fraction=0.0, seed=seed, val_images=count)
    return load_stream_batch(ds, count)


def load_stream_batch(ds: Dataset, count: int) -> dict[str, torch.Tensor]:
    """The first `count` samples of a dataset stacked into tensors (a held-out set kept in memory)."""
    items = [ds[i] for i in range(count)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}
