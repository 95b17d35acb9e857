"""Shared test fixtures and helpers, and the rule for tests that need a system tool (`require`).

Test modules import the helpers (`from conftest import FakeRuntime`); fixtures are found by name.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests must never pick up a developer's real MANO files unless asked to.
os.environ.setdefault("HANDMESH_MANO_DIR", os.path.join(os.path.dirname(__file__), "_no_mano_here"))


def require(condition: bool, reason: str) -> None:
    """Skip when a system tool is missing on a developer's machine, but fail under CI=true."""
    if condition:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs this: {reason}")
    pytest.skip(reason)


def bench_script(name: str):
    """The module of a script in bench/ (they are scripts, not a package), loaded by file name."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _deterministic_threads():
    import torch

    torch.set_num_threads(2)
    yield


@pytest.fixture
def restore_determinism():
    """train(deterministic=True) switches torch to deterministic algorithms; undo it for other tests."""
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.fixture(scope="session")
def egl() -> None:
    """Offscreen EGL rendering works on this machine: a test that renders asks for this fixture and then
    renders without catching anything, so a rendering bug fails wherever it runs (a missing driver skips
    on a developer's machine and fails under CI, see `require`)."""
    try:
        from handmesh.render import MeshRenderer

        MeshRenderer(32, 32).close()
        ok, reason = True, ""
    except Exception as exc:  # no EGL / GL driver here
        ok, reason = False, f"offscreen EGL rendering unavailable: {exc}"
    require(ok, reason)


@pytest.fixture(scope="session")
def make_synth_dir(tmp_path_factory, egl) -> Callable[..., Path]:
    """`make_synth_dir(**SynthConfig settings)`: a tiny FreiHAND-layout folder from `handmesh synth`, made once
    per distinct settings in a session."""
    made: dict[tuple, Path] = {}

    def make(**settings) -> Path:
        from handmesh.data.synth import SynthConfig, synthesize

        key = tuple(sorted(settings.items()))
        if key not in made:
            out = tmp_path_factory.mktemp("synth")
            synthesize(SynthConfig(**settings), out)
            made[key] = out
        return made[key]

    return make


@pytest.fixture(scope="session")
def make_model_file(tmp_path_factory) -> Callable[[int], Path]:
    """`make_model_file(img_size)`: an untrained fastvit_t8 model file (seed 0), made once per size."""
    made: dict[int, Path] = {}

    def make(img_size: int = 64) -> Path:
        import torch

        from handmesh.models import build_model, save_model

        if img_size not in made:
            torch.manual_seed(0)
            path = tmp_path_factory.mktemp("model") / "model.pt"
            save_model(build_model("fastvit_t8", img_size=img_size), path)
            made[img_size] = path
        return made[img_size]

    return make


@pytest.fixture(scope="session")
def model_file(make_model_file) -> Path:
    """An untrained fastvit_t8 model file at 64 px."""
    return make_model_file(64)


CACHE_SIZE, CACHE_COUNT = 64, 4  # the `cache_dir` fixture: 4 foregrounds of 64 px


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory, egl) -> Path:
    """A tiny foreground cache (`handmesh synth-cache`: CACHE_COUNT foregrounds, no background bank)."""
    from handmesh.data.cache import build_cache
    from handmesh.data.synth import SynthConfig

    out = tmp_path_factory.mktemp("fgcache")
    build_cache(SynthConfig(size=CACHE_SIZE), out, CACHE_COUNT, backgrounds=0)
    return out


def tiny_train_config(data, out, **changes):
    """A training run of a few seconds: 64 px inputs are the model's; batch 4, no workers, no progress bar."""
    from handmesh.train import TrainConfig

    base = TrainConfig(
        data=str(data),
        out=str(out),
        epochs=2,
        batch_size=4,
        workers=0,
        val_fraction=0.25,
        lr=1e-3,
        warmup_epochs=0.5,
        progress=False,
        image_grid=2,
        log_every=1,
        min_val_samples=1,  # the tiny validation sets here still pick best.pt (its own test lowers it)
    )
    return dataclasses.replace(base, **changes)


class PoisonedLabels:
    """A dataset whose chosen samples carry NaN 3D joints (a corrupt label); the others are `base`'s."""

    def __init__(self, base, bad):
        self.base, self.bad = base, set(bad)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        import torch

        sample = dict(self.base[i])
        if i in self.bad:
            sample["joints3d"] = torch.full_like(sample["joints3d"], float("nan"))
        return sample


# ---- a stand-in regressor and renderer for pipeline tests (no model, no GL) --------------------------

RUNTIME_SIZE = 64  # the crop size FakeRuntime asks for


class FakeRuntime:
    """A stand-in regressor: the same asymmetric blob for every crop, centred in it; records its calls."""

    input_size = RUNTIME_SIZE
    name = "fake"

    def __init__(self):
        import trimesh

        blob = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
        v = blob.vertices * np.array([0.04, 0.07, 0.02])
        v[:, 0] += 0.3 * v[:, 1]  # shear: not symmetric under x -> -x
        self.vertices = v.astype(np.float32)
        self.faces = blob.faces.astype(np.int64)
        self.batches: list[np.ndarray] = []

    def __call__(self, crops):
        self.batches.append(crops.copy())
        b = len(crops)
        verts = np.repeat(self.vertices[None], b, 0)
        return {
            "vertices": verts,
            "joints": verts[:, :21].copy(),
            "cam": np.tile(np.array([[2.0 / 0.2, 0.0, 0.0]], np.float32), (b, 1)),
            "betas": np.zeros((b, 10), np.float32),
            "global_orient": np.tile(np.eye(3, dtype=np.float32), (b, 1, 1)),
            "hand_pose": np.tile(np.eye(3, dtype=np.float32), (b, 15, 1, 1)),
        }


class NoRenderer:
    """Records the meshes instead of drawing them (keeps most tests GL-free)."""

    def overlay(self, frame, meshes, K, opacity=0.85, margin=6, max_render_size=320, timings=None):
        return frame


def numbered_frames(n: int) -> list[np.ndarray]:
    """n plain 640x240 frames, frame i marked by its first pixel's red value."""
    frames = []
    for i in range(n):
        f = np.full((240, 640, 3), 30, np.uint8)
        f[0, 0, 0] = i
        frames.append(f)
    return frames


def write_jpeg(path: Path, size=(64, 64), value=120) -> Path:
    """A flat grey JPEG of `size` (w, h)."""
    from PIL import Image

    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path, quality=90)
    return path


def write_cut_short_jpeg(path: Path, size=(224, 224), keep: float = 1 / 3) -> Path:
    """A noisy JPEG cut to `keep` of its bytes with an end marker appended: header and end intact, and
    Pillow decodes it silently with the rest grey."""
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), np.uint8)
    Image.fromarray(noise).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] + b"\xff\xd9")
    return path


def make_freihand(root: Path, n: int = 4, eval_n: int = 0) -> Path:
    """A small FreiHAND-layout folder whose labels agree with its MANO values (no rendering needed)."""
    import json

    from handmesh.data.freihand import data_hand_model, mano_to_mesh, uv_scale_from_root

    hand = data_hand_model()
    for split, count in (("training", n), ("evaluation", eval_n)):
        if not count:
            continue
        rng = np.random.default_rng(len(split))
        K = np.tile(np.array([[200.0, 0, 32], [0, 200.0, 32], [0, 0, 1]]), (count, 1, 1))
        uv, scale = uv_scale_from_root(np.tile([0.0, 0.0, 0.5], (count, 1)), K)
        mano = np.concatenate(
            [rng.normal(0, 0.1, (count, 48)), np.zeros((count, 10)), uv, scale[:, None]], axis=1
        )
        mesh = mano_to_mesh(mano, K, hand)
        files = {"K": K, "xyz": mesh["joints"], "verts": mesh["vertices"]}
        if split == "training":
            files["mano"] = mano
        for name, arr in files.items():
            (root / f"{split}_{name}.json").write_text(json.dumps(arr.tolist()))
        if split == "evaluation":
            (root / "evaluation_scale.json").write_text(json.dumps([0.03] * count))
        (root / split / "rgb").mkdir(parents=True)
        for i in range(count):
            write_jpeg(root / split / "rgb" / f"{i:08d}.jpg", value=40 + 20 * i)
    info = {"hand_model": hand.kind, "training_versions": 1}
    (root / "handmesh_synth.json").write_text(json.dumps(info))
    return root


def assert_refused(rc: int, err: str, *words: str) -> None:
    """Exit status 1 or 2, no traceback, and an error line holding every word (input name and problem)."""
    assert rc in (1, 2), f"exit status {rc}: {err[-2000:]}"
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if "error:" in line or line.startswith("problem:")]
    assert lines, err[-2000:]
    assert any(all(w.lower() in line.lower() for w in words) for line in lines), (words, lines)


def run_cli(*args) -> tuple[int, str]:
    """Run `handmesh ARGS` in this process: (exit status, stdout + stderr)."""
    import contextlib
    import io

    from handmesh.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main([str(a) for a in args])
    return rc, out.getvalue() + err.getvalue()


# ---- hostile files ---------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's first bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )
