"""The demo's bounded files: streamed frames never rewritten in place, outputs pruned and removed."""

from __future__ import annotations

import os
import time

import numpy as np


def test_identical_frames_get_their_own_files_and_only_the_newest_stay(tmp_path):
    import cv2

    from handmesh.demo_files import FrameFiles

    frames = FrameFiles(tmp_path / "stream", keep=3)
    still = np.full((48, 64, 3), (200, 30, 10), np.uint8)  # a camera showing the same picture
    paths = [frames.write(still) for _ in range(5)]
    assert len(set(paths)) == 5, "a repeated picture must not reuse (and rewrite) a served file"
    on_disk = sorted(p.name for p in (tmp_path / "stream").iterdir())
    assert on_disk == sorted(os.path.basename(p) for p in paths[-3:])
    decoded = cv2.imread(paths[-1])[..., ::-1]
    assert decoded.shape == still.shape and np.abs(decoded.astype(int) - still).max() < 8
    frames.close()
    assert not (tmp_path / "stream").exists()


def test_output_folder_prunes_old_files_and_is_removed(tmp_path):
    from handmesh.demo_files import OutputFolder

    out = OutputFolder(max_age_s=60.0, parent=tmp_path)
    old = out.stem("image").with_suffix(".glb")
    old.write_bytes(b"old")
    past = time.time() - 120
    os.utime(old, (past, past))
    fresh = out.stem("image").with_suffix(".glb")  # taking a new stem prunes the expired file
    fresh.write_bytes(b"new")
    assert not old.exists() and fresh.exists()
    assert out.prune() == 0
    out.close()
    assert not out.path.exists()


def test_output_folder_is_capped_in_bytes_oldest_first(tmp_path):
    """Issue 22 item 3: a few large results must not fill the disk for an hour."""
    from handmesh.demo_files import OutputFolder

    out = OutputFolder(max_age_s=3600.0, parent=tmp_path, max_bytes=2500)
    paths = []
    for i in range(5):
        path = out.stem("image").with_suffix(".jpg")
        path.write_bytes(bytes(1000))
        os.utime(path, (time.time() - 50 + i, time.time() - 50 + i))  # distinct ages, oldest first
        paths.append(path)
    out.prune()
    assert [p.exists() for p in paths] == [False, False, False, True, True]
    assert sum(p.stat().st_size for p in out.path.iterdir()) <= 2500
    (out.path / "examples").mkdir()  # sub-folders (the example inputs) are not pruned
    out.prune()
    assert (out.path / "examples").is_dir()
    out.close()


def test_example_inputs_are_rendered_hands(tmp_path):
    """The demo's example inputs: a still and a short video of the hand model, readable by the app."""
    from handmesh.pipeline.media import iter_video, read_image
    from handmesh.pipeline.synthetic import background, write_examples

    image, video = write_examples(tmp_path, size=(160, 120), frames=3)
    still = read_image(image)
    assert still.shape == (120, 160, 3)
    differs = np.abs(still.astype(int) - background(160, 120)).max(axis=2) > 20
    assert differs.mean() > 0.02, "no hand drawn over the background"
    assert len(list(iter_video(video))) == 3


def test_named_results_keep_the_upload_name_in_their_own_folder(tmp_path):
    """The demo's downloads keep the uploaded file's name (its stem only, made safe), and two
    uploads of one name never share files; expired result folders go like expired files."""
    from handmesh.demo_files import OutputFolder, safe_stem

    out = OutputFolder(max_age_s=60.0, parent=tmp_path)
    a = out.stem("video", "/tmp/gradio/abc123/My clip (1).mp4")
    b = out.stem("video", "My clip (1).mp4")
    assert a.name == b.name == "My_clip__1" and a.parent != b.parent and a.parent.parent == out.path
    assert safe_stem("../../etc/passwd", "video") == "passwd" and safe_stem("...", "image") == "image"
    a.with_name(a.name + "_overlay.mp4").write_bytes(b"x")
    past = time.time() - 120
    os.utime(a.parent, (past, past))
    (out.path / "examples").mkdir()
    os.utime(out.path / "examples", (past, past))
    out.prune()
    assert not a.parent.exists() and b.parent.exists() and (out.path / "examples").exists()
    out.close()


def test_gradio_cache_is_the_app_s_own_and_capped_in_bytes_oldest_first(tmp_path, monkeypatch):
    """Issue 22 item 3: Gradio's upload cache was aged hourly only. The app's own cache folder (inside the
    one Gradio would use) is pruned oldest first beyond its cap; the examples, the streamed frames and the
    running request's upload stay; closing removes it and restores GRADIO_TEMP_DIR."""
    from handmesh.demo_files import GradioCache

    shared = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(shared))
    shared.mkdir()
    (shared / "other-app.bin").write_bytes(bytes(5000))  # another Gradio app's file: never touched
    cache = GradioCache(max_bytes=4500, period_s=0.05)
    assert os.environ["GRADIO_TEMP_DIR"] == str(cache.path) and cache.path.parent == shared

    def upload(name: str, age_s: float, size: int = 1000):
        folder = cache.path / f"hash-{name}"
        folder.mkdir()
        (folder / f"{name}.png").write_bytes(bytes(size))
        past = time.time() - age_s
        os.utime(folder, (past, past))
        return folder / f"{name}.png"

    example = upload("example", 500)
    cache.protect([example, "/elsewhere/x.png"])
    frames = cache.path / "handmesh-stream-1"
    frames.mkdir()
    (frames / "frame.jpg").write_bytes(bytes(500))
    cache.keep_names.add(frames.name)
    files = [upload(f"u{i}", 100 - i) for i in range(6)]  # u0 oldest
    held = files[0]  # the running request's own upload
    assert cache.prune(holding=[held]) == 3
    assert [f.exists() for f in files] == [True, False, False, False, True, True]
    assert example.exists() and (frames / "frame.jpg").exists() and (shared / "other-app.bin").exists()
    total = sum(p.stat().st_size for p in cache.path.rglob("*") if p.is_file())
    assert total <= 4500, total
    cache.start()  # the sweeper finds what arrives between requests (an upload flood)
    late = [upload(f"late{i}", 10 - i) for i in range(3)]
    deadline = time.time() + 10
    while held.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not held.exists() and late[-1].exists() and example.exists()
    cache.close()
    assert not cache.path.exists() and os.environ["GRADIO_TEMP_DIR"] == str(shared)
    assert (shared / "other-app.bin").exists()
