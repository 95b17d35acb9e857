"""The foreground cache: the stream's own hands rendered once, composited afresh per index, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import CACHE_COUNT, CACHE_SIZE

from handmesh.data.cache import CachedStream, build_cache, parse_cache_spec, read_cache_info
from handmesh.data.stream import SynthStream
from handmesh.data.synth import SynthConfig
from handmesh.errors import HandmeshError, MissingFileError

S, COUNT = CACHE_SIZE, CACHE_COUNT


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fgbank")
    build_cache(SynthConfig(size=S, seed=3), out, 2, backgrounds=3)
    return out


def test_version_zero_is_the_streams_own_picture(cache_dir):
    """Unaugmented, without the background bank, index n < N is SynthStream(cfg).record(n) exactly."""
    cached = CachedStream(cache_dir, augment=False)
    stream = SynthStream(SynthConfig(size=S))
    for n in range(2):
        a, b = cached.record(n), stream.record(n)
        # the cached foreground is float16 (and llvmpipe may shade an edge pixel one level differently
        # between renderer instances); the camera's JPEG pass spreads such a difference over 8x8 blocks
        diff = np.abs(a.image.astype(int) - b.image.astype(int))
        assert diff.mean() < 0.3 and diff.max() <= 12
        for key in ("joints3d", "vertices", "K", "mano_pose", "betas"):
            assert np.allclose(getattr(a, key), getattr(b, key), atol=1e-9), key
        assert np.array_equal(a.mask, b.mask)
    # the next pass over the cache is the same hand on a new scene
    again = cached.record(COUNT)
    assert np.allclose(again.joints3d, cached.record(0).joints3d)
    assert np.abs(again.image.astype(int) - cached.record(0).image.astype(int)).mean() > 5


def test_augmented_samples_are_deterministic_and_labels_follow_the_warp(cache_dir):
    from handmesh.geometry_np import project_points_np

    spec = parse_cache_spec(f"cache:{cache_dir},rotation_deg=90", S)
    assert spec.augment.rotation_deg == 90 and spec.augment.rotation_prob == 1.0
    a = CachedStream(cache_dir, spec.augment)
    b = CachedStream(cache_dir, spec.augment)
    for i in (1, 5):
        x, y = a[i], b[i]
        for key in ("image", "joints3d", "vertices", "joints2d", "K", "mano_pose"):
            assert torch.equal(x[key], y[key]), key
    # the rotated hand's projected vertices land on its warped silhouette
    rec = a.record(5)
    uv = np.round(project_points_np(rec.vertices, rec.K)).astype(int)
    inside = (uv >= 0).all(1) & (uv < S).all(1)
    assert inside.mean() > 0.5
    assert rec.mask[uv[inside, 1], uv[inside, 0]].mean() > 0.9
    # the global orientation turned with the crop: the hand model's joints follow it
    plain = CachedStream(cache_dir, augment=False).record(5)
    assert not np.allclose(rec.joints3d, plain.joints3d)
    assert np.allclose(
        np.linalg.norm(rec.joints3d - rec.joints3d[0], axis=1),
        np.linalg.norm(plain.joints3d - plain.joints3d[0], axis=1),
        atol=1e-9,
    )


def test_background_bank_is_drawn_and_survives_pickling(bank_dir):
    import pickle

    cached = CachedStream(bank_dir, augment=False)
    assert read_cache_info(bank_dir)["backgrounds"] == 3 and cached.cfg.photo_background_prob == 1.0
    copy = pickle.loads(pickle.dumps(cached))  # what a spawned loader worker gets: no arrays
    assert len(pickle.dumps(cached)) < 100_000
    assert np.array_equal(copy.record(3).image, cached.record(3).image)
    fresh = CachedStream(bank_dir, augment=False, compose_overrides=["photo_background_prob=0"])
    assert not np.array_equal(fresh.record(3).image, cached.record(3).image)


def test_cache_files_are_written_atomically(tmp_path, bank_dir):
    """Every file of a build goes through handmesh.atomic: the usual mode, no temporary file left, and a
    build that fails part-way leaves the folder's earlier arrays as they were and no cache.json."""
    from handmesh.atomic import current_umask

    names = {"rgb.npy", "alpha.npy", "mask.npy", "backgrounds.npy", "labels.npz", "cache.json"}
    assert {p.name for p in bank_dir.iterdir()} == names  # nothing else: no .*.tmp
    assert {p.stat().st_mode & 0o777 for p in bank_dir.iterdir()} == {0o666 & ~current_umask()}
    (tmp_path / "rgb.npy").write_bytes(b"earlier")

    def fail(done: int, total: int) -> None:
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        build_cache(SynthConfig(size=S, seed=3), tmp_path, 2, progress=fail, backgrounds=1)
    assert [p.name for p in tmp_path.iterdir()] == ["rgb.npy"]
    assert (tmp_path / "rgb.npy").read_bytes() == b"earlier"


def test_bad_specs_and_folders_fail_in_one_line(tmp_path, cache_dir):
    with pytest.raises(HandmeshError, match="not a cache setting"):
        parse_cache_spec(f"cache:{cache_dir},pose_noise=0.1", S)
    with pytest.raises(HandmeshError, match="name the cache folder"):
        parse_cache_spec("cache:", S)
    with pytest.raises(MissingFileError, match="synth-cache"):
        CachedStream(tmp_path)
    (tmp_path / "cache.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(HandmeshError, match="not a handmesh foreground cache"):
        CachedStream(tmp_path)


@pytest.mark.slow
def test_learning_curve_on_the_cache_scores_the_streams_held_out_set(tmp_path, cache_dir):
    """`handmesh bench learn --cache` at toy size: trains on the cache, scores the stream's held-out renders."""
    from handmesh.cli import main as cli_main

    out = tmp_path / "curve.json"
    args = ["bench", "learn", "--run", "toy", "--cache", f"{cache_dir},count=2", "--img-size", str(S)]
    args += [
        "--images",
        "8",
        "--milestones",
        "8",
        "--batch-size",
        "4",
        "--eval-images",
        "4",
        "--workers",
        "0",
    ]
    args += ["--json", str(out), "--png", str(tmp_path / "curve.png")]
    assert cli_main(args) == 0
    run = json.loads(out.read_text())["runs"]["toy"]
    assert run["settings"]["data"] == f"cache:{cache_dir},count=2"
    assert [p["images_seen"] for p in run["curve"]] == [8]
    assert 5 < run["baseline_mean_pose"]["pa_mpjpe_mm"] < 50
