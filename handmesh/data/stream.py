"""An endless synthetic training stream: every index is a new hand, rendered on the fly from its own seed.

`SynthStream(cfg)[i]` draws sample i of the seed stream (`handmesh.data.synth`: pose, shape, orientation,
camera, lighting, background, occluders) from `sample_rng(cfg.seed, "stream", i)`, labels it through the
hand-model layer and renders it in the calling process (a data-loader worker keeps one renderer), then
runs the same crop/augment transform as every dataset. Nothing is stored: a long run never sees an image
twice, and because a sample depends on its index only, a run is deterministic for a seed and resumes
exactly when its sampler continues at the same index (`handmesh.data.mix.EpochSampler`).

The stream is selected on the command line as ``--data synth:`` with synth settings as options, e.g.
``synth:size=64,named_pose_prob=1.0,pose_noise=0.05`` (any `SynthConfig` field; `size` defaults to the
model's input size).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import Dataset

from handmesh.data.record import HandRecord
from handmesh.data.synth import (
    SynthConfig,
    backgrounds_of,
    build_renderer,
    canonical_orientation,
    check_appearance,
    make_labels,
    render_record_image,
)
from handmesh.data.transforms import AugmentConfig, HandTransform
from handmesh.errors import HandmeshError

STREAM_PREFIX = "synth:"
# an "endless" stream still reports a length (samplers and progress bars ask); 2**40 samples is forever
STREAM_LENGTH = 2**40
# seed offset of held-out streams (validation, the learning curve's test set): never meets a training seed
HELD_OUT_SEED = 100_000
_NOT_STREAM_SETTINGS = ("train", "eval", "versions", "workers", "jpeg_quality")


def is_endless(dataset) -> bool:
    """Whether a dataset is sampled by index from an endless space (the stream or a mix with it)."""
    return len(dataset) >= STREAM_LENGTH


def is_stream_spec(spec: str) -> bool:
    """Whether a --data value names the synthetic stream ("synth:" plus optional settings)."""
    return str(spec).startswith(STREAM_PREFIX)


def parse_stream_spec(spec: str, img_size: int) -> SynthConfig:
    """The SynthConfig of "synth:KEY=VALUE,..." (size defaults to the model's input size; a tuple value
    keeps its commas: "focal_range=400,700")."""
    from handmesh.config import apply_overrides

    if not is_stream_spec(spec):
        raise HandmeshError(f"not a synthetic stream spec: {spec!r} (expected 'synth:' plus KEY=VALUE,...)")
    items: list[str] = []
    for part in spec[len(STREAM_PREFIX) :].split(","):
        part = part.strip()
        if "=" in part or not items:
            items.append(part)
        elif part:
            items[-1] += "," + part  # the next element of a tuple value
    items = [item for item in items if item]
    for item in items:
        if item.partition("=")[0].strip() in _NOT_STREAM_SETTINGS:
            raise HandmeshError(
                f"--data {spec}: {item!r} is a `handmesh synth` folder setting, not a stream one"
            )
    try:
        cfg = apply_overrides(SynthConfig(size=int(img_size)), items)
    except HandmeshError as exc:
        raise HandmeshError(f"--data {spec}: {exc}") from None
    if cfg.size < 32:
        raise HandmeshError(f"--data {spec}: size must be >= 32")
    return cfg


class SynthStream(Dataset):
    """Sample i of the synthetic seed stream as a training sample dict (datasets contract)."""

    # render workers must not be forked from a process that may hold a GL context (the trainer's preview)
    multiprocessing_context = "spawn"

    def __init__(
        self,
        cfg: SynthConfig,
        augment_cfg: AugmentConfig | None = None,
        augment: bool = False,
        length: int = STREAM_LENGTH,
        seed_offset: int = 0,
    ) -> None:
        self.cfg = replace(cfg, seed=int(cfg.seed) + int(seed_offset))
        self.length = int(length)
        # the renderer already varies scale, rotation, lighting, blur and noise per sample: by default the
        # transform only fits the rendered image to the model's input (whole image, no jitter)
        self.transform = HandTransform(
            augment_cfg or AugmentConfig(img_size=cfg.size), train=augment, crop="image"
        )
        check_appearance(self.cfg)
        self.backgrounds = backgrounds_of(self.cfg)  # checked once here; loader workers get the list
        self._hand = None
        self._R0: np.ndarray | None = None
        self._renderer = None  # this process's own (made on first use: loader workers each make theirs)

    def __len__(self) -> int:
        return self.length

    def _setup(self) -> None:
        """Per-process state: the float64 hand model, its canonical orientation, this stream's renderer."""
        from handmesh.data.freihand import data_hand_model

        self._hand = data_hand_model(path=self.cfg.hand_model)
        self._R0 = canonical_orientation(self._hand)
        self._renderer = build_renderer(self.cfg, self._hand)

    def close(self) -> None:
        """Free this process's renderer (it is made again on the next record)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
            self._hand = None

    def __getstate__(self) -> dict:
        # a loader worker gets the settings, never this process's GL context
        state = dict(self.__dict__)
        state.update(_hand=None, _R0=None, _renderer=None)
        return state

    def record(self, i: int, side: str = "right") -> HandRecord:
        """The rendered, labelled hand of stream index i (before the transform).

        `side="left"` renders the same hand mirrored in the scene -- a left hand -- with the same skin,
        arm, lights and background draws; the lights stay where they are in the camera frame. (Flipping
        a right hand's image would flip the lights too: a side-from-lighting cue a handedness classifier
        learns instead of the hand.) A left record's labels are its own: 3D points mirrored, K flipped
        and the pose in the left convention, so `mirror_record` turns it back into the right hand's labels.
        """
        from handmesh.mirror import flip_intrinsics, mirror_pose, mirror_vertices

        if not 0 <= i < self.length:
            raise IndexError(f"stream index {i} out of range")
        if side not in ("right", "left"):
            raise HandmeshError(f"side must be 'right' or 'left', got {side!r}")
        if self._renderer is None:
            self._setup()
        sample = int(i)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one tiny float64 forward: thread hand-offs would cost more than it
        try:
            labels = make_labels(self.cfg, "stream", [sample], self._hand, self._R0)
        finally:
            torch.set_num_threads(threads)
        verts, K, joints = labels["verts"][0], labels["K"][0], labels["xyz"][0]
        if side == "left":
            verts, joints = mirror_vertices(verts), mirror_vertices(joints)
            K = flip_intrinsics(K, self.cfg.size)
        image, silhouette = render_record_image(
            self._renderer, self.cfg, "stream", sample, 0, verts, joints, K, labels["skin"][0], side,
            self.backgrounds,
        )
        mano = labels["mano"][0]
        return HandRecord(
            image=image,
            K=K,
            side=side,
            joints3d=joints,
            vertices=verts,
            mano_pose=mano[:48] if side == "right" else mirror_pose(mano[:48]),
            betas=mano[48:58],
            mask=silhouette,
            index=sample,
        )

    def __getitem__(self, i: int) -> dict:
        # the transform's own randomness (when augmenting) is seeded by the index as well
        rng = np.random.default_rng([int(self.cfg.seed), 3, int(i), 7])
        out = self.transform(self.record(i), rng)
        out["sample_id"] = torch.tensor(int(i))
        return out
