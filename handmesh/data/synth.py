"""`handmesh synth`: render the hand model into a folder in FreiHAND's exact layout.

Geometry (poses, shapes, orientations, cameras) is drawn per sample from its own seed
(seed, split, sample) and turned into labels in one float64 pass through the hand-model layer using the
same FreiHAND convention the reader uses, so labels round-trip exactly. Images are rendered by worker
processes from per-sample (and per-version) seeds, so the worker count never changes a pixel.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from handmesh.config import option
from handmesh.data import procedural
from handmesh.data.io import dump_json, write_jpeg
from handmesh.data.photo import CameraEffects
from handmesh.errors import HandmeshError
from handmesh.hand_model.joints import ROOT_JOINT

# seed streams: the on-disk splits, and the endless training stream (handmesh.data.stream)
SPLIT_CODES = {"training": 1, "evaluation": 2, "stream": 3}


@dataclass
class SynthConfig:
    """What `handmesh synth` generates."""

    train: int = field(default=64, metadata=option("training samples"))
    eval: int = field(default=16, metadata=option("evaluation samples"))
    seed: int = 0
    size: int = field(default=224, metadata=option("image side in pixels"))
    versions: int = field(default=1, metadata=option("background versions per training sample (FreiHAND: 4)"))
    workers: int = field(default=1, metadata=option("rendering processes (results do not depend on it)"))
    hand_model: str | None = field(
        default=None,
        metadata=option("MANO file or folder; none = configured MANO, else the stand-in", metavar="PATH"),
    )
    named_pose_prob: float = 0.5  # share of named poses (with noise); the rest from the prior's sampler
    pose_noise: float = 0.15  # radians of noise on named poses' flexion (other axes less: prior.NOISE_SCALE)
    tilt_deg: float = 40.0  # std of out-of-plane tilt away from facing the camera
    back_prob: float = 0.5  # share of hands showing their back
    focal_range: tuple[float, float] = (400.0, 700.0)  # for size 224; scaled with size
    depth_range: tuple[float, float] = (0.4, 0.9)
    # hand's longest projected side / image size (FreiHAND's crops: about 0.4-0.7)
    extent_range: tuple[float, float] = (0.4, 0.75)
    appearance: str = field(
        default="realistic",
        metadata=option(
            "realistic (skin, forearm, lights, scenes, camera) or plain (one colour, no arm)",
            choices=("realistic", "plain"),
        ),
    )
    subdivisions: int = 2  # Loop steps of the render mesh (rendering only; labels keep 778 vertices)
    forearm_prob: float = 1.0  # a real hand always continues into an arm (else the wrist shows a cap)
    sleeve_prob: float = 0.45  # share of forearms in a sleeve
    band_prob: float = 0.15  # share of wrists with a watch or bracelet
    object_prob: float = 0.12  # a held sphere, cylinder or box
    other_hand_prob: float = 0.06  # the person's other hand beside, in front of or behind the hand
    occluder_prob: float = 0.1  # 2D shapes over the hand
    backgrounds: str | None = field(
        default=None, metadata=option("folder of your own background photos", metavar="DIR")
    )
    photo_background_prob: float = 0.8  # with --backgrounds: share of photos (the rest procedural)
    camera: CameraEffects = field(default_factory=CameraEffects)
    jpeg_quality: int = 92


def sample_rng(seed: int, split: str, sample: int, *extra: int) -> np.random.Generator:
    """The generator of one sample (plus e.g. its version): independent of order and worker."""
    return np.random.default_rng([int(seed), SPLIT_CODES[split], int(sample), *map(int, extra)])


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def canonical_orientation(hand) -> np.ndarray:
    """Rotation taking the model's mean hand to face the camera, fingers up: a model-agnostic start."""
    import torch

    with torch.no_grad():
        j = hand(betas=torch.zeros(1, 10, dtype=torch.float64)).joints[0].double().numpy()
    up = j[ROOT_JOINT] - j[0]
    up /= np.linalg.norm(up)
    across = j[5] - j[17]  # index MCP minus pinky MCP
    across -= up * (across @ up)
    across /= np.linalg.norm(across)
    normal = np.cross(across, up)
    model = np.stack([across, up, normal], 1)
    # camera: across -> +x, fingers -> image up (-y), normal -> +z or -z (right-handed: x, -y, -z)
    cam = np.stack([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]], 1)
    return cam @ model.T


def draw_pose(rng: np.random.Generator, cfg: SynthConfig, hands_mean: np.ndarray) -> np.ndarray:
    """45 articulation values relative to the mean hand (FreiHAND convention) from the pose prior."""
    from handmesh.hand_model import prior

    if rng.random() < cfg.named_pose_prob:
        name = prior.NAMED_POSES[int(rng.integers(len(prior.NAMED_POSES)))]
        flat = np.asarray(prior.named_pose(name), np.float64)
        flat = flat + rng.normal(0, cfg.pose_noise, 45) * prior.NOISE_SCALE
        flat = np.asarray(prior.clamp_to_limits(flat), np.float64)
    else:
        flat = np.asarray(prior.sample_poses(1, rng), np.float64)[0]
    return flat - hands_mean


def draw_geometry(rng: np.random.Generator, cfg: SynthConfig, R0: np.ndarray, hands_mean: np.ndarray) -> dict:
    """Everything random about one sample's geometry except its placement (needs the posed mesh)."""
    from handmesh.geometry import matrix_to_axis_angle_np

    pose = draw_pose(rng, cfg, hands_mean)
    betas = np.clip(rng.normal(0, 1, 10), -3, 3)
    tilt = np.deg2rad(np.clip(rng.normal(0, cfg.tilt_deg, 2), -80, 80))
    flip = _rot("y", np.pi) if rng.random() < cfg.back_prob else np.eye(3)
    R = _rot("z", rng.uniform(-np.pi, np.pi)) @ _rot("x", tilt[0]) @ _rot("y", tilt[1]) @ flip @ R0

    k = cfg.size / 224.0
    f = rng.uniform(*cfg.focal_range) * k
    K = np.array(
        [
            [f * rng.uniform(0.995, 1.005), 0, cfg.size / 2 + rng.normal(0, 2 * k)],
            [0, f, cfg.size / 2 + rng.normal(0, 2 * k)],
            [0, 0, 1],
        ]
    )
    return {
        "pose": np.concatenate([matrix_to_axis_angle_np(R), pose]),
        "betas": betas,
        "K": K,
        "extent": rng.uniform(*cfg.extent_range) * cfg.size,
        "centre": cfg.size / 2 + rng.normal(0, 0.04 * cfg.size, 2),
        "skin": procedural.skin_tone(rng),
    }


def place(
    verts0: np.ndarray, j9: np.ndarray, K: np.ndarray, extent: float, centre, depth_range
) -> np.ndarray:
    """Camera position of joint 9 so the projected hand has roughly `extent` pixels, centred on `centre`."""
    from handmesh.geometry import project_points_np

    rel = verts0 - j9
    f = (K[0, 0] + K[1, 1]) / 2
    size_m = float(np.max(rel[:, :2].max(0) - rel[:, :2].min(0)))
    z = float(np.clip(f * size_m / extent, *depth_range))
    root = np.array([(centre[0] - K[0, 2]) / K[0, 0] * z, (centre[1] - K[1, 2]) / K[1, 1] * z, z])
    for _ in range(3):
        uv = project_points_np(rel + root, K)
        mid = (uv.min(0) + uv.max(0)) / 2
        root[:2] += (np.asarray(centre) - mid) / [K[0, 0], K[1, 1]] * root[2]
    return root


def make_split_labels(cfg: SynthConfig, split: str, count: int, hand) -> dict:
    """All labels of one split: K, FreiHAND MANO values, xyz, verts, skin tones (float64)."""
    return make_labels(cfg, split, range(count), hand)


def make_labels(cfg: SynthConfig, split: str, samples, hand, R0: np.ndarray | None = None) -> dict:
    """Labels of the given sample ids of a seed stream (each from its own seed, whatever the others are);
    R0 = `canonical_orientation(hand)`, passed by callers that label one sample at a time."""
    import torch

    from handmesh.data.freihand import mano_to_mesh, uv_scale_from_root

    hands_mean = hand.hands_mean.double().numpy()
    R0 = canonical_orientation(hand) if R0 is None else R0
    geo = [draw_geometry(sample_rng(cfg.seed, split, i), cfg, R0, hands_mean) for i in samples]
    if not geo:
        return {
            "K": np.zeros((0, 3, 3)),
            "mano": np.zeros((0, 61)),
            "xyz": np.zeros((0, 21, 3)),
            "verts": np.zeros((0, 778, 3)),
            "skin": np.zeros((0, 3)),
        }
    pose = np.stack([g["pose"] for g in geo])
    betas = np.stack([g["betas"] for g in geo])
    K = np.stack([g["K"] for g in geo])
    # one sample per forward pass: batched float64 maths differs in the last bits with the batch size,
    # and a sample's labels (hence its pixels) must not depend on how many samples are generated
    verts0, joints0 = [], []
    with torch.no_grad():
        for p, b in zip(torch.as_tensor(pose), torch.as_tensor(betas), strict=True):
            out = hand(global_orient=p[None, :3], hand_pose=p[None, 3:], betas=b[None])
            verts0.append(out.vertices[0].numpy())
            joints0.append(out.joints[0].numpy())
    verts0, joints0 = np.stack(verts0), np.stack(joints0)
    roots = np.stack(
        [
            place(verts0[i], joints0[i, ROOT_JOINT], K[i], g["extent"], g["centre"], cfg.depth_range)
            for i, g in enumerate(geo)
        ]
    )
    uv, scale = uv_scale_from_root(roots, K)
    mano = np.concatenate([pose, betas, uv, scale[:, None]], 1)
    # labels come from the written values through the reader's own function: the round trip is exact
    mesh = mano_to_mesh(mano, K, hand, chunk=1)
    return {
        "K": K,
        "mano": mano,
        "xyz": mesh["joints"],
        "verts": mesh["vertices"],
        "skin": np.stack([g["skin"] for g in geo]),
    }


# ---- image rendering ---------------------------------------------------------------------------------


def foreground_rng(cfg: SynthConfig, split: str, sample: int) -> np.random.Generator:
    """The generator of a sample's rendered hand (skin, arm, lights): the same for all its versions."""
    return sample_rng(cfg.seed, split, sample, 0, 1)


def compose_rng(cfg: SynthConfig, split: str, sample: int, version: int) -> np.random.Generator:
    """The generator of one version's background, occluders and camera effects."""
    return sample_rng(cfg.seed, split, sample, version, 2)


def check_appearance(cfg: SynthConfig) -> None:
    """Refuse settings no renderer can honour, with one line."""
    from handmesh.data.synth_render import APPEARANCES

    if cfg.appearance not in APPEARANCES:
        raise HandmeshError(
            f"synth: appearance must be one of {', '.join(APPEARANCES)}, got {cfg.appearance!r}"
        )
    if not 0 <= int(cfg.subdivisions) <= 2:
        raise HandmeshError("synth: subdivisions must be 0, 1 or 2")


def build_renderer(cfg: SynthConfig, hand=None, gl_threads: int | None = None):
    """A `SynthRenderer` for `cfg` (the hand model's faces and, for realistic pictures, its surface)."""
    from handmesh.data.freihand import data_hand_model
    from handmesh.data.synth_render import SynthRenderer

    hand = data_hand_model(path=cfg.hand_model) if hand is None else hand
    return SynthRenderer(cfg.size, np.asarray(hand.faces, np.int64), render_surface(cfg, hand), gl_threads)


def render_surface(cfg: SynthConfig, hand):
    """The hand's render surface for `cfg` (None for plain pictures): numpy only, cheap to send to workers."""
    if cfg.appearance == "plain":
        return None
    from handmesh.render.skin import HandSurface

    return HandSurface.from_hand_model(hand, int(cfg.subdivisions))


def backgrounds_of(cfg: SynthConfig):
    """The user's background photos (`backgrounds` folder), or None."""
    from handmesh.data.scenes import BackgroundPool

    return BackgroundPool(cfg.backgrounds) if cfg.backgrounds else None


def render_record_image(
    renderer,
    cfg: SynthConfig,
    split: str,
    sample: int,
    version: int,
    vertices,
    joints,
    K,
    skin,
    side: str = "right",
    backgrounds=None,
) -> tuple[np.ndarray, np.ndarray]:
    """One picture (RGB uint8) and the hand's silhouette of a sample/version, right or left side."""
    fg = renderer.foreground(cfg, vertices, joints, K, side, skin, foreground_rng(cfg, split, sample))
    from handmesh.data.synth_render import compose

    return compose(cfg, fg, compose_rng(cfg, split, sample, version), backgrounds), fg.mask


# the pool workers' own renderer (one per worker process, made by the pool's initializer)
_POOL: dict = {}


def _init_pool_worker(
    cfg: SynthConfig, faces: np.ndarray, surface, backgrounds, gl_threads: int | None
) -> None:
    import cv2

    cv2.setNumThreads(1)
    from handmesh.data.synth_render import SynthRenderer

    _POOL["renderer"] = SynthRenderer(cfg.size, faces, surface, gl_threads)
    _POOL["backgrounds"] = backgrounds


def _render_job(job: tuple) -> int:
    cfg, out, split, sample, versions, n, verts, joints, K, skin = job
    renderer = _POOL["renderer"]
    for v in range(versions):
        image, silhouette = render_record_image(
            renderer, cfg, split, sample, v, verts, joints, K, skin, backgrounds=_POOL["backgrounds"]
        )
        write_jpeg(Path(out) / split / "rgb" / f"{sample + n * v:08d}.jpg", image, cfg.jpeg_quality)
        if split == "training" and v == 0:
            # one silhouette per sample, like FreiHAND's masks: the whole hand, occluders ignored
            mask = silhouette.astype(np.uint8) * 255
            write_jpeg(Path(out) / split / "mask" / f"{sample:08d}.jpg", mask, cfg.jpeg_quality)
    return versions


def _write_split(cfg: SynthConfig, out: Path, split: str, labels: dict, pool, progress) -> int:
    n = len(labels["K"])
    (out / split / "rgb").mkdir(parents=True, exist_ok=True)
    if split == "training":
        (out / split / "mask").mkdir(parents=True, exist_ok=True)
    versions = cfg.versions if split == "training" else 1
    jobs = (
        (
            cfg,
            str(out),
            split,
            i,
            versions,
            n,
            labels["verts"][i].astype(np.float32),
            labels["xyz"][i],
            labels["K"][i],
            labels["skin"][i],
        )
        for i in range(n)
    )
    done = 0
    results = pool.imap(_render_job, jobs, chunksize=8) if pool is not None else map(_render_job, jobs)
    for count in results:
        done += count
        if progress:
            progress(split, done, n * versions)
    mano = labels["mano"][:, None, :]  # FreiHAND stores each entry as 1x61
    dump_json(out / f"{split}_K.json", labels["K"])
    dump_json(out / f"{split}_mano.json", mano)
    dump_json(out / f"{split}_xyz.json", labels["xyz"])
    dump_json(out / f"{split}_verts.json", labels["verts"])
    if split == "evaluation":
        bone = np.linalg.norm(labels["xyz"][:, 9] - labels["xyz"][:, 10], axis=1)
        dump_json(out / "evaluation_scale.json", bone)
    return done


def synthesize(cfg: SynthConfig, out: str | Path, progress=None) -> dict:
    """Generate the dataset into `out`; returns timing figures (images, seconds, images_per_s)."""
    if cfg.train < 0 or cfg.eval < 0 or cfg.versions < 1 or cfg.size < 32:
        raise HandmeshError("synth: --train/--eval must be >= 0, --versions >= 1, --size >= 32")
    check_appearance(cfg)
    backgrounds = backgrounds_of(cfg)  # a bad --backgrounds folder fails here, before any labels are made
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from handmesh.data.freihand import SYNTH_INFO, data_hand_model

    t0 = time.perf_counter()
    cpu0 = _cpu_seconds()
    hand = data_hand_model(path=cfg.hand_model)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny per-sample ops: thread hand-offs would dominate
    try:
        labels = {
            s: make_split_labels(cfg, s, n, hand)
            for s, n in (("training", cfg.train), ("evaluation", cfg.eval))
        }
    finally:
        torch.set_num_threads(threads)
    t_labels = time.perf_counter() - t0
    faces = np.asarray(hand.faces, np.int64)
    surface = render_surface(cfg, hand)
    workers = max(int(cfg.workers), 1)
    images = 0
    t1 = time.perf_counter()
    if workers == 1:
        _init_pool_worker(cfg, faces, surface, backgrounds, None)
        try:
            for split in labels:
                images += _write_split(cfg, out, split, labels[split], None, progress)
        finally:
            _POOL.pop("renderer").close()
    else:
        gl_threads = max((os.cpu_count() or 1) // workers, 1)
        # spawn, not fork: a forked child deadlocks in EGL when this process already holds a GL context,
        # and torch's OpenMP pool does not survive a fork. Workers import neither torch nor the reader.
        ctx = mp.get_context("spawn")
        # the workers' numpy must not start BLAS threads (pyrender inverts 4x4 matrices every frame, and
        # OpenBLAS thread hand-offs cost milliseconds on a busy machine); set before they import numpy
        saved = os.environ.get("OPENBLAS_NUM_THREADS")
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        try:
            pool = ctx.Pool(
                workers,
                initializer=_init_pool_worker,
                initargs=(cfg, faces, surface, backgrounds, gl_threads),
            )
        finally:
            if saved is None:
                os.environ.pop("OPENBLAS_NUM_THREADS")
            else:
                os.environ["OPENBLAS_NUM_THREADS"] = saved
        with pool:
            for split in labels:
                images += _write_split(cfg, out, split, labels[split], pool, progress)
            pool.close()
            pool.join()
    t_images = time.perf_counter() - t1
    from handmesh.config import to_dict

    info = {
        "generator": "handmesh synth",
        "hand_model": hand.kind,
        "config": to_dict(cfg),
        "training_samples": cfg.train,
        "training_versions": cfg.versions,
        "evaluation_samples": cfg.eval,
    }
    (out / SYNTH_INFO).write_text(json.dumps(info, indent=2) + "\n")
    total = time.perf_counter() - t0
    return {
        "images": images,
        "workers": workers,
        "label_seconds": round(t_labels, 3),
        "render_seconds": round(t_images, 3),
        "seconds": round(total, 3),
        "images_per_s": round(images / max(total, 1e-9), 2),
        "render_images_per_s": round(images / max(t_images, 1e-9), 2),
        "cpu_ms_per_image": round(1000 * (_cpu_seconds() - cpu0) / max(images, 1), 1),
    }


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (workers and their GL threads)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
