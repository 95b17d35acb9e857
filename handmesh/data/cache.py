"""A foreground cache: every hand rendered once, composited onto a fresh scene at every reuse.

FreiHAND's 130,240 training images are 32,560 green-screen captures in four versions each: the hand kept,
the background replaced. The cache does the same for the synthetic stream. `build_cache` renders sample
n = 0 ... N-1 of the seed stream (`handmesh.data.stream`: the same labels and the same foreground -- skin,
arm, held object, lights -- as `SynthStream(cfg).record(n)`) once into a folder:

    cache.json     format, count, size, the SynthConfig it was rendered with, the hand model's kind
    rgb.npy        (N, S, S, 3) float16, premultiplied by coverage, 0..255
    alpha.npy      (N, S, S) uint8 coverage
    mask.npy       (N, S, S) bool, the hand's silhouette (the label mask)
    labels.npz     K (N,3,3), mano (N,61), xyz (N,21,3), verts (N,778,3) in FreiHAND's convention
    backgrounds.npy  (B, S, S, 3) uint8: procedural scenes (`handmesh.data.scenes`), rendered once too

`CachedStream` reads it (memory-mapped) as an endless index space like the stream: index i is foreground
i mod N in version i div N, so each pass over the cache is a new version. The loader worker warps the
foreground (crop scale, shift and in-plane rotation, labels turned with it) and composites it with
`synth_render.compose` -- background, occluders, the camera's colour, blur, noise and JPEG -- drawn from
`compose_rng(cfg, "stream", n, version)`. The background is the user's photos when the cache was built with
`--set backgrounds=DIR`, else a random crop (scale, flip, quarter turn) of one of the B cached procedural
scenes, as FreiHAND drew from a pool of background photos: a procedural scene costs more CPU than all the
rest of a composite (about 110 ms of 150 ms at 128 px), so drawing fresh ones would undo the cache's
speed-up. `photo_background_prob=0.5` in the spec draws half of them fresh instead. With `backgrounds=0`
(`handmesh synth-cache --backgrounds 0`) every scene is fresh, and version 0 without augmentation is the
stream's own picture of n (to float16's rounding of the foreground).
Every sample depends on its index alone, so a run is deterministic and resumes exactly
(`handmesh.data.mix.EpochSampler`).

    handmesh synth-cache --out runs/fg128 --count 4000 --size 128 --workers 2
    handmesh train --data cache:runs/fg128 --img-size 128 ...
    handmesh train --data "cache:runs/fg128,rotation_deg=45,occluder_prob=0.3" ...   # other settings
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from handmesh.atomic import atomic_path, atomic_write
from handmesh.data.record import HandRecord
from handmesh.data.synth import SynthConfig, compose_rng, foreground_rng
from handmesh.data.transforms import AugmentConfig, HandTransform, crop_transform, warp_image
from handmesh.errors import HandmeshError, MissingFileError
from handmesh.geometry_np import axis_angle_to_matrix_np, matrix_to_axis_angle_np

CACHE_PREFIX = "cache:"
CACHE_FORMAT = "handmesh-foreground-cache"
CACHE_INFO = "cache.json"
# one pass over the cache is one version of every foreground; 2**40 indices is forever, like the stream
CACHE_LENGTH = 2**40
# the geometric augmentation of cached foregrounds: the FastViT/MobRecon hand recipe's rotation up to 90
# degrees and a scale jitter (colour, blur, noise and occluders come from compose's camera and scene)
CACHE_AUGMENT = {"rotation_deg": 90.0, "rotation_prob": 1.0, "scale_jitter": 0.2, "shift_jitter": 0.08}
# SynthConfig fields a --data cache: spec may change: what compose draws, never the rendered hand
COMPOSE_FIELDS = ("occluder_prob", "backgrounds", "photo_background_prob", "camera", "appearance")


def is_cache_spec(spec: str) -> bool:
    """Whether a --data value names a foreground cache ("cache:DIR" plus optional settings)."""
    return str(spec).startswith(CACHE_PREFIX)


@dataclass
class CacheSpec:
    """A parsed "cache:DIR,KEY=VALUE,..." value: the folder, its augmentation and compose overrides."""

    root: Path
    augment: AugmentConfig
    compose: list[str]  # SynthConfig overrides (COMPOSE_FIELDS only)
    count: int | None = None  # use only the first `count` foregrounds (more reuse: see bench cache)


def parse_cache_spec(spec: str, img_size: int) -> CacheSpec:
    """The folder and settings of "cache:DIR,KEY=VALUE,..." (AugmentConfig fields, or compose's
    SynthConfig fields such as occluder_prob and camera.noise_prob)."""
    from handmesh.config import apply_overrides

    if not is_cache_spec(spec):
        raise HandmeshError(f"not a cache spec: {spec!r} (expected 'cache:DIR' plus KEY=VALUE,...)")
    root, *items = [part.strip() for part in spec[len(CACHE_PREFIX) :].split(",")]
    if not root:
        raise HandmeshError(f"--data {spec}: name the cache folder, e.g. cache:runs/fg128")
    aug_names = {f.name for f in fields(AugmentConfig)}
    aug_items = [f"{k}={v}" for k, v in CACHE_AUGMENT.items()]
    compose, count = [], None
    for item in filter(None, items):
        key, _, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if key == "count":
            try:
                count = int(value)
            except ValueError:
                raise HandmeshError(f"--data {spec}: count must be a whole number, got {value!r}") from None
            if count < 1:
                raise HandmeshError(f"--data {spec}: count must be >= 1")
        elif key in aug_names and key != "img_size":
            aug_items.append(item)
        elif key.split(".")[0] in COMPOSE_FIELDS:
            compose.append(item)
        else:
            raise HandmeshError(
                f"--data {spec}: {key!r} is not a cache setting (count; augmentation: "
                f"{', '.join(sorted(aug_names))}; scene: {', '.join(COMPOSE_FIELDS)})"
            )
    try:
        aug = apply_overrides(AugmentConfig(img_size=int(img_size)), aug_items)
    except HandmeshError as exc:
        raise HandmeshError(f"--data {spec}: {exc}") from None
    return CacheSpec(Path(root), aug, compose, count)


def read_cache_info(root: str | Path) -> dict[str, Any]:
    """The cache.json of a complete cache folder (a one-line error when missing or not a cache)."""
    path = Path(root) / CACHE_INFO
    if not path.is_file():
        raise MissingFileError(
            f"no foreground cache at {root} (no {CACHE_INFO}; build one with `handmesh synth-cache --out {root}`)"
        )
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HandmeshError(f"{path}: unreadable ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != CACHE_FORMAT:
        raise HandmeshError(f"{path}: not a handmesh foreground cache")
    return info


# ---- building --------------------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(cfg: SynthConfig, faces: np.ndarray, surface, gl_threads: int | None) -> None:
    import cv2

    cv2.setNumThreads(1)
    from handmesh.data.synth_render import SynthRenderer

    _WORKER["cfg"] = cfg
    _WORKER["renderer"] = SynthRenderer(cfg.size, faces, surface, gl_threads)


def _render_foreground(job: tuple) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    n, verts, joints, K, skin = job
    cfg = _WORKER["cfg"]
    fg = _WORKER["renderer"].foreground(
        cfg, verts, joints, K, "right", skin, foreground_rng(cfg, "stream", n)
    )
    alpha = np.round(fg.alpha[..., 0] * 255).astype(np.uint8)
    return n, fg.rgb.astype(np.float16), alpha, fg.mask


def _render_background(job: tuple) -> tuple[int, np.ndarray]:
    from handmesh.data.scenes import procedural_background

    b, seed, size = job
    return b, procedural_background(np.random.default_rng([int(seed), 7, int(b)]), size, size)


class BackgroundBank:
    """The cache's procedural scenes, drawn like a folder of photos (`compose`'s background pool)."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def draw(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        """A random crop (half to all of a side), mirrored and turned by quarter turns at random, (h, w)."""
        import cv2

        image = self.images[int(rng.integers(len(self.images)))]
        ih, iw = image.shape[:2]
        ch, cw = max(int(ih * rng.uniform(0.5, 1.0)), 1), max(int(iw * rng.uniform(0.5, 1.0)), 1)
        y0, x0 = int(rng.integers(0, ih - ch + 1)), int(rng.integers(0, iw - cw + 1))
        crop = np.rot90(image[y0 : y0 + ch, x0 : x0 + cw], int(rng.integers(4)))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=cv2.INTER_LINEAR)


def build_cache(
    cfg: SynthConfig,
    out: str | Path,
    count: int,
    workers: int = 1,
    progress=None,
    backgrounds: int | None = None,
) -> dict:
    """Render foregrounds 0 ... count-1 of `cfg`'s stream and `backgrounds` procedural scenes (default:
    half the count, at most 2000; none when `cfg.backgrounds` names photos) into `out`; returns timings."""
    from handmesh.config import to_dict
    from handmesh.data.freihand import data_hand_model
    from handmesh.data.synth import check_appearance, make_labels, render_surface

    if backgrounds is None:
        backgrounds = 0 if cfg.backgrounds else min(max(count // 2, 1), 2000)
    if count < 1 or cfg.size < 32 or backgrounds < 0:
        raise HandmeshError("synth-cache: --count must be >= 1, --size >= 32 and --backgrounds >= 0")
    check_appearance(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / CACHE_INFO).unlink(missing_ok=True)  # incomplete until the end
    t0 = time.perf_counter()
    hand = data_hand_model(path=cfg.hand_model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one tiny float64 forward per sample: thread hand-offs would dominate
    try:
        labels = make_labels(cfg, "stream", range(count), hand)
    finally:
        torch.set_num_threads(threads)
    t_labels = time.perf_counter() - t0
    S = int(cfg.size)
    jobs = (
        (n, labels["verts"][n].astype(np.float32), labels["xyz"][n], labels["K"][n], labels["skin"][n])
        for n in range(count)
    )
    bank_jobs = ((b, cfg.seed, S) for b in range(backgrounds))
    faces, surface = np.asarray(hand.faces, np.int64), render_surface(cfg, hand)
    workers = max(int(workers), 1)
    t1 = time.perf_counter()
    # every file through handmesh.atomic: a build that fails leaves no half-written array behind
    with contextlib.ExitStack() as files:

        def array(name: str, dtype, shape: tuple[int, ...]) -> np.memmap:
            return np.lib.format.open_memmap(files.enter_context(atomic_path(out / name)), "w+", dtype, shape)

        rgb = array("rgb.npy", np.float16, (count, S, S, 3))
        alpha = array("alpha.npy", np.uint8, (count, S, S))
        mask = array("mask.npy", np.bool_, (count, S, S))
        bank = array("backgrounds.npy", np.uint8, (backgrounds, S, S, 3))
        if workers == 1:
            _init_worker(cfg, faces, surface, None)
            pool, results = None, map(_render_foreground, jobs)
            bank_results = map(_render_background, bank_jobs)
        else:
            # spawn: a forked child deadlocks in EGL when the parent holds a GL context (see handmesh synth)
            gl_threads = max((os.cpu_count() or 1) // workers, 1)
            pool = mp.get_context("spawn").Pool(workers, _init_worker, (cfg, faces, surface, gl_threads))
            results = pool.imap_unordered(_render_foreground, jobs, chunksize=8)
            bank_results = pool.imap_unordered(_render_background, bank_jobs, chunksize=8)
        try:
            for done, (n, c, a, m) in enumerate(results, 1):
                rgb[n], alpha[n], mask[n] = c, a, m
                if progress:
                    progress(done, count)
            for b, image in bank_results:
                bank[b] = image
        finally:
            if pool is None:
                _WORKER.pop("renderer").close()
            else:
                pool.terminate()
        for memmap in (rgb, alpha, mask, bank):
            memmap.flush()
        del rgb, alpha, mask, bank
        # a file object: np.savez would append ".npz" to the temporary file's name
        with open(files.enter_context(atomic_path(out / "labels.npz")), "wb") as f:
            np.savez(f, **{k: labels[k] for k in ("K", "mano", "xyz", "verts")})
    t_render = time.perf_counter() - t1
    info = {
        "format": CACHE_FORMAT,
        "version": 1,
        "count": int(count),
        "size": S,
        "backgrounds": int(backgrounds),
        "hand_model": hand.kind,
        "synth": to_dict(cfg),
        "render_seconds": round(t_render, 2),
    }
    atomic_write(out / CACHE_INFO, json.dumps(info, indent=2) + "\n")
    return {
        "foregrounds": int(count),
        "backgrounds": int(backgrounds),
        "workers": workers,
        "label_seconds": round(t_labels, 2),
        "render_seconds": round(t_render, 2),
        "foregrounds_per_s": round(count / max(t_render, 1e-9), 2),
        "bytes": sum(p.stat().st_size for p in out.iterdir() if p.is_file()),
    }


# ---- reading ---------------------------------------------------------------------------------------------


class CachedStream(Dataset):
    """Index i of a foreground cache: foreground i mod N, composited in version i div N (datasets contract)."""

    # like the stream: loader workers must not be forked from a process that may hold a GL context
    multiprocessing_context = "spawn"

    def __init__(
        self,
        root: str | Path,
        augment_cfg: AugmentConfig | None = None,
        augment: bool = True,
        compose_overrides: list[str] | tuple[str, ...] = (),
        length: int = CACHE_LENGTH,
        count: int | None = None,
    ) -> None:
        from handmesh.config import apply_overrides, from_dict
        from handmesh.data.photo import CameraEffects
        from handmesh.data.synth import backgrounds_of, check_appearance

        self.root = Path(root)
        info = read_cache_info(self.root)
        synth = dict(info["synth"])
        camera = from_dict(CameraEffects, synth.pop("camera", {}), strict=False)
        self.cfg = apply_overrides(
            replace(from_dict(SynthConfig, synth, strict=False), camera=camera), list(compose_overrides)
        )
        check_appearance(self.cfg)
        self.stored, self.size = int(info["count"]), int(info["size"])
        if count is not None and not 1 <= count <= self.stored:
            raise HandmeshError(
                f"{self.root}: count={count} asked, the cache holds {self.stored} foregrounds"
            )
        self.count = self.stored if count is None else int(count)
        self.hand_model_kind = info.get("hand_model")
        self.augment_cfg = augment_cfg or AugmentConfig(img_size=self.size)
        self.augment = bool(augment)
        self.length = int(length)
        self.transform = HandTransform(replace(self.augment_cfg, crop="image"), train=False)
        self.backgrounds = backgrounds_of(self.cfg)
        self.bank_size = int(info.get("backgrounds", 0))
        if self.backgrounds is None and self.bank_size:
            self.backgrounds = BackgroundBank(
                np.zeros((0, self.size, self.size, 3), np.uint8)
            )  # mapped in _open
            # the cached scenes stand in for fresh ones unless the spec says otherwise
            given = {item.partition("=")[0].strip() for item in compose_overrides}
            if "photo_background_prob" not in given:
                self.cfg = replace(self.cfg, photo_background_prob=1.0)
        self._arrays: dict[str, np.ndarray] | None = None
        self._open()  # checks the files now; loader workers read their own

    def _open(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            arrays = {}
            n = self.stored
            counts = {"rgb": n, "alpha": n, "mask": n, "backgrounds": self.bank_size}
            for name, count in counts.items():
                path = self.root / f"{name}.npy"
                if not path.is_file():
                    raise MissingFileError(
                        f"{self.root}: {path.name} missing (rebuild with handmesh synth-cache)"
                    )
                arrays[name] = np.load(path, mmap_mode="r")
                if arrays[name].shape[:3] != (count, self.size, self.size):
                    raise HandmeshError(f"{path}: shape {arrays[name].shape} does not match {CACHE_INFO}")
            with np.load(self.root / "labels.npz") as labels:
                for key in ("K", "mano", "xyz", "verts"):
                    arrays[key] = np.asarray(labels[key])
                    if len(arrays[key]) != n:
                        raise HandmeshError(f"{self.root}: labels.npz does not hold {n} samples")
            self._arrays = arrays
            if isinstance(self.backgrounds, BackgroundBank):
                self.backgrounds = BackgroundBank(arrays["backgrounds"])
        return self._arrays

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_arrays"] = None  # each process maps the files (and reads the labels) itself
        if isinstance(self.backgrounds, BackgroundBank):
            state["backgrounds"] = BackgroundBank(np.zeros((0, self.size, self.size, 3), np.uint8))
        return state

    def __len__(self) -> int:
        return self.length

    def locate(self, i: int) -> tuple[int, int]:
        """(foreground, version) of index i."""
        return int(i) % self.count, int(i) // self.count

    def record(self, i: int) -> HandRecord:
        """The composited, labelled picture of index i at the model's size (before the tensor transform)."""
        from handmesh.data.synth_render import Foreground, compose

        if not 0 <= i < self.length:
            raise IndexError(f"cache index {i} out of range")
        n, version = self.locate(i)
        arrays = self._open()
        K = arrays["K"][n]
        S, out = self.size, int(self.augment_cfg.img_size)
        centre, side, angle = np.array([S / 2.0, S / 2.0]), float(S), 0.0
        if self.augment:
            cfg, rng = self.augment_cfg, np.random.default_rng([int(self.cfg.seed), 6, int(i)])
            side *= rng.uniform(1 - cfg.scale_jitter, 1 + cfg.scale_jitter)
            centre = centre + rng.uniform(-cfg.shift_jitter, cfg.shift_jitter, 2) * side
            if rng.random() < cfg.rotation_prob:
                angle = np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))
        # the warp comes before the composite: the new scene fills the whole frame, whatever the rotation
        M, K_crop, R = crop_transform(K, centre, side, out, angle)
        rgb = warp_image(np.asarray(arrays["rgb"][n], np.float32), M, out)
        alpha = warp_image(arrays["alpha"][n].astype(np.float32) * np.float32(1 / 255), M, out)
        mask = warp_image(arrays["mask"][n].astype(np.float32), M, out) >= 0.5
        fg = Foreground(rgb, alpha[..., None], mask)
        image = compose(self.cfg, fg, compose_rng(self.cfg, "stream", n, version), self.backgrounds)
        mano = arrays["mano"][n]
        pose = np.asarray(mano[:48], np.float64).copy()
        pose[:3] = matrix_to_axis_angle_np(R @ axis_angle_to_matrix_np(pose[:3]))
        return HandRecord(
            image=image,
            K=K_crop,
            joints3d=arrays["xyz"][n] @ R.T,
            vertices=arrays["verts"][n] @ R.T,
            mano_pose=pose,
            betas=mano[48:58],
            mask=mask,
            index=int(i),
        )

    def __getitem__(self, i: int) -> dict:
        out = self.transform(self.record(i))
        out["sample_id"] = torch.tensor(int(i))
        return out
