"""Hostile videos and full disks: the reader opens only the one file it is given, through an
allowlist of demuxers, and a video writer whose disk fills up reports one line and leaves no file.

A playlist test owns the file its playlist points at and checks that the file was never opened (its access
time stays in the past). Disk-full cases run `handmesh` as a subprocess, on a real full tmpfs where the
system lets a test mount one (a user namespace) and under a file-size limit everywhere, because the
failure they guard against was a segmentation fault, which would take a test run with it.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from handmesh.errors import HandmeshError
from handmesh.pipeline.media import VideoWriter, iter_video, video_info

ROOT = Path(__file__).resolve().parents[1]


def write_clip(path: Path, frames: int = 6, size=(96, 64), fps: float = 10, noise: bool = False) -> Path:
    rng = np.random.default_rng(0)
    with VideoWriter(path, fps, size) as w:
        for i in range(frames):
            frame = rng.integers(0, 255, (size[1], size[0], 3), np.uint8) if noise else None
            w.write(frame if noise else np.full((size[1], size[0], 3), 30 * i, np.uint8))
    return path


def _age(path: Path) -> float:
    """Put the file's access time two days in the past (so that any read moves it, even under relatime)."""
    old = time.time() - 2 * 86400
    os.utime(path, (old, os.stat(path).st_mtime))
    return os.stat(path).st_atime


def _was_read(path: Path, atime: float) -> bool:
    return os.stat(path).st_atime != atime


@pytest.fixture
def owned_video(tmp_path) -> Path:
    """A video only this test knows of, with an access clock that shows whether anything opened it."""
    (tmp_path / "private").mkdir()
    secret = write_clip(tmp_path / "private" / "secret.mp4")
    atime = _age(secret)
    with open(secret, "rb") as f:
        f.read(1)
    if not _was_read(secret, atime):
        pytest.skip("this filesystem does not update access times (noatime)")
    return secret


PLAYLISTS = {
    "hls.mp4": ("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{target}\n#EXT-X-ENDLIST\n", "HLS playlist"),
    "bom_hls.mkv": ("\ufeff#EXTM3U\n#EXTINF:1,\n{target}\n#EXT-X-ENDLIST\n", "HLS playlist"),
    "concat.avi": ("ffconcat version 1.0\nfile '{target}'\n", "concat list"),
    "relative.mp4": ("#EXTM3U\n#EXTINF:1,\nprivate/secret.mp4\n#EXT-X-ENDLIST\n", "HLS playlist"),
}


@pytest.mark.parametrize("name", sorted(PLAYLISTS))
def test_a_playlist_named_like_a_video_is_refused_and_its_target_never_read(owned_video, tmp_path, name):
    text, words = PLAYLISTS[name]
    clip = tmp_path / name
    clip.write_text(text.format(target=owned_video))
    atime = _age(owned_video)
    for read in (video_info, lambda p: list(iter_video(p))):
        with pytest.raises(HandmeshError, match=words) as info:
            read(clip)
        assert name in str(info.value) and "\n" not in str(info.value)
    assert not _was_read(owned_video, atime), "the reader opened the file the playlist names"


def test_predict_refuses_a_playlist_in_one_line_and_goes_on(owned_video, tmp_path):
    """`handmesh predict` on a folder holding a playlist named clip.mp4."""
    from conftest import run_cli

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "clip.mp4").write_text(PLAYLISTS["hls.mp4"][0].format(target=owned_video))
    write_clip(folder / "real.webm", frames=3)
    atime = _age(owned_video)
    rc, err = run_cli("predict", folder, "--out", tmp_path / "out", "--detector", "static:10,10,80,60")
    assert rc == 1 and "Traceback" not in err, err[-3000:]
    assert "clip.mp4: refused, this is an HLS playlist" in err
    assert "1 of 2 input(s) failed" in err
    assert (tmp_path / "out" / "real.webm.json").is_file()
    assert not (tmp_path / "out" / "clip.mp4_overlay.mp4").exists()
    assert not _was_read(owned_video, atime)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(64), "containers only"),  # a WAV is no video
        (b"GIF89a" + bytes(64), "containers only"),
        (b"\x00\x00\x00\x18ftypmp42" + bytes(3000), "not a readable video"),
        (b"\x1a\x45\xdf\xa3" + bytes(200), "not a readable video"),
    ],
)
def test_other_files_named_like_videos_are_one_line(tmp_path, content, words):
    path = tmp_path / "x.mp4"
    path.write_bytes(content)
    with pytest.raises(HandmeshError, match=words):
        video_info(path)


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".avi"])
def test_every_written_format_reads_back_through_the_allowlist(tmp_path, ext):
    path = write_clip(tmp_path / f"v{ext}", frames=5, size=(81, 61), fps=15)
    fps, n, size = video_info(path)
    frames = list(iter_video(path))
    assert (fps, n, size) == (15.0, 5, (80, 60)) and len(frames) == 5
    assert abs(float(frames[3].mean()) - 90) < 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"v{ext}"]  # no temporary file left


def test_a_rotated_phone_video_is_shown_upright(tmp_path):
    import av

    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(-90)  # what a phone held upright records: display turned 90 clockwise
        image = np.zeros((32, 64, 3), np.uint8)
        image[:, :32] = 255  # left half white
        for _ in range(2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    _, _, size = video_info(path)
    first = next(iter_video(path))
    assert size == (32, 64) and first.shape == (64, 32, 3)
    assert first[:32].mean() > 200 and first[32:].mean() < 50  # turned clockwise: the left half is on top


# ---------------------------------------------------------------------------------------- full disks
def _fsize_limit(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || mount -t tmpfs -o size=64k tmpfs /tmp"
    return subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True).returncode == 0


def run_on_full_disk(
    how: str, out: Path, args: list[str], timeout: float = 300, fsize: int = 20_000
) -> tuple[int, str]:
    """`handmesh ARGS` with `out` unable to take more than a few kilobytes: a full tmpfs or a file-size limit."""
    cmd = [sys.executable, "-m", "handmesh.cli", *map(str, args)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
    if how == "tmpfs":
        out.mkdir(parents=True, exist_ok=True)
        fill = (
            f"mount -t tmpfs -o size=256k tmpfs '{out}' && (cat /dev/zero > '{out}/.fill' 2>/dev/null; true)"
        )
        cmd = ["unshare", "-rm", "sh", "-c", f'{fill} && exec "$0" "$@"', *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    else:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=_fsize_limit(fsize)
        )
    return proc.returncode, proc.stderr


FULL_DISKS = ["fsize"] + (["tmpfs"] if _can_mount_tmpfs() else [])


@pytest.fixture(scope="module")
def small_model(make_model_file) -> Path:
    return make_model_file(128)


@pytest.mark.parametrize("how", FULL_DISKS)
def test_predict_folder_on_a_full_disk_reports_each_video_and_goes_on(small_model, tmp_path, how):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.mp4", "b.webm", "c.avi"):
        write_clip(folder / name, frames=8, size=(320, 240), noise=True)  # noise: overlays too big to fit
    out = tmp_path / "out"
    rc, err = run_on_full_disk(
        how,
        out,
        [
            "predict",
            folder,
            "--out",
            out,
            "--checkpoint",
            small_model,
            "--detector",
            "static:10,10,200,200",
            "--runtime",
            "torch",
        ],
    )
    assert rc == 1, f"exit status {rc} (139 is the segmentation fault this guards against): {err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 3 and all(
        "cannot write" in line or "space" in line or "large" in line for line in errors
    )
    assert "3 of 3 input(s) failed" in err
    if how == "fsize":  # the tmpfs is gone with its namespace; here the folder shows what was left
        left = sorted(p.name for p in out.iterdir())
        assert not [n for n in left if n.endswith(".tmp") or "_overlay" in n], left


@pytest.mark.parametrize("how", FULL_DISKS)
def test_training_on_a_full_disk_is_one_line(tmp_path, how):
    """torch.save's zip writer hid ENOSPC behind "unexpected pos ..." (a traceback): now one line."""
    from conftest import make_freihand

    (tmp_path / "data").mkdir()
    data = make_freihand(tmp_path / "data", n=4)
    out = tmp_path / "run"
    args = [
        "train",
        "--data",
        data,
        "--out",
        out,
        "--img-size",
        64,
        "--epochs",
        1,
        "--batch-size",
        2,
        "--workers",
        0,
    ]
    rc, err = run_on_full_disk(how, out, args, fsize=1_000_000)  # config and logs fit, a checkpoint does not
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    last = err.splitlines()[-1]
    if how == "fsize":  # room for everything but the checkpoint
        assert "cannot write checkpoint" in last and "best.pt" in last, err[-1000:]
        assert not list(out.glob(".*.tmp")) and not (out / "best.pt").exists()
    else:  # a full disk from the start: whichever write comes first says so
        assert last.startswith("handmesh train: error:") and "No space left on device" in last, err[-1000:]


def test_video_writer_failure_is_one_error_and_no_file(tmp_path, monkeypatch):
    """In-process: the first failed write raises one HandmeshError, later frames are ignored, close()
    reports it again, and nothing appears under the name (the temporary file is gone too)."""
    path = tmp_path / "o.mp4"
    writer = VideoWriter(path, 10, (64, 48))
    calls = {"n": 0}

    def failing(self, b):
        calls["n"] += 1
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer._sink, "f", _Failing(writer._sink.f, failing))
    with pytest.raises(HandmeshError, match="No space left on device"):
        for _ in range(40):  # the encoder buffers: the first packet reaches the file after some frames
            writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.write(np.zeros((48, 64, 3), np.uint8))  # ignored, no second error
    with pytest.raises(HandmeshError, match="o.mp4: cannot write the video"):
        writer.close()
    assert calls["n"] == 1
    assert list(tmp_path.iterdir()) == []


class _Failing:
    def __init__(self, f, write):
        self._f, self._write = f, write

    def write(self, b):
        return self._write(self, b)

    def __getattr__(self, name):
        return getattr(self._f, name)
