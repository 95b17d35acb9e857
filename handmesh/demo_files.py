"""The demo's files on disk: streamed frames and the image/video tabs' outputs, bounded and removed on exit.

Why streamed frames are written here and not by Gradio: for a numpy output Gradio encodes the image and
writes it to `<cache>/<hash of the bytes>/image.jpeg`, truncating and rewriting that file whenever the
same picture comes back. A still camera returns the same overlay many times, so the browser often read
the file while it was being rewritten: the server had announced the old length and then found fewer
bytes ("Too little data for declared Content-Length", ERR_CONTENT_LENGTH_MISMATCH in Chromium). Every
frame also stayed in the cache (about 0.5 GB an hour). `FrameFiles` gives each frame its own name,
written completely before it is visible (rename), inside Gradio's cache folder so Gradio serves it as
it is, and deletes all but the newest `keep` frames.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from handmesh.atomic import atomic_write


class FrameFiles:
    """Frames as JPEG files with unique names in one folder; only the newest `keep` stay on disk."""

    def __init__(self, folder: str | Path, keep: int = 120, quality: int = 85):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = max(2, int(keep))
        self.quality = int(quality)
        self._written: list[Path] = []
        self._count = 0
        self._lock = threading.Lock()

    def write(self, frame: np.ndarray) -> str:
        """Encode an RGB uint8 frame and return the path of its file (never reused, never rewritten)."""
        import cv2

        ok, data = cv2.imencode(
            ".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        )
        if not ok:
            raise ValueError(f"could not encode a frame of shape {frame.shape} as JPEG")
        with self._lock:
            self._count += 1
            path = self.folder / f"frame-{os.getpid()}-{self._count:09d}.jpg"
            # a reader sees the whole file or none; a frame lives a few seconds: no disk sync
            atomic_write(path, data.tobytes(), durable=False)
            self._written.append(path)
            # old frames go; a browser still fetching one gets a 404 (a missed frame), never a torn one
            while len(self._written) > self.keep:
                self._written.pop(0).unlink(missing_ok=True)
        return str(path)

    def close(self) -> None:
        """Remove the folder and every frame in it."""
        with self._lock:
            shutil.rmtree(self.folder, ignore_errors=True)
            self._written = []


RESULT_PREFIX = "r-"  # the folders `OutputFolder.stem` makes for named results (others, e.g. examples, stay)


def safe_stem(upload: str | os.PathLike, fallback: str) -> str:
    """The stem of an uploaded file's name as a safe file name (letters, digits, `-`, `_`, `.`; at most
    60 characters), or `fallback` when nothing is left. Only the name is used, never the folders."""
    stem = Path(str(upload)).stem
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in stem).strip("._")
    return cleaned[:60] or fallback


class OutputFolder:
    """A temporary folder for the app's downloads; files older than `max_age_s` go as new ones come."""

    def __init__(
        self,
        prefix: str = "handmesh-app-",
        max_age_s: float = 3600.0,
        parent=None,
        max_bytes: int | None = None,
    ):
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self.max_age_s = float(max_age_s)
        self.max_bytes = max_bytes
        self._count = itertools.count()  # two results in one clock tick still get two folders

    def stem(self, kind: str, upload: str | os.PathLike | None = None) -> Path:
        """A fresh file stem (no suffix) for one result; prunes expired files first.

        With `upload` (the uploaded file's path) the result's files are named after it, in a folder of
        their own (`r-<time>/clip_overlay.mp4`): downloads keep the user's file name and two uploads of
        the same name never share files. Only the name's stem is used, reduced to safe characters.
        """
        self.prune()
        if upload is None:
            return self.path / f"{kind}-{time.time_ns()}"
        folder = self.path / f"{RESULT_PREFIX}{time.time_ns()}-{next(self._count)}"
        folder.mkdir()
        return folder / safe_stem(upload, kind)

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(modification time, bytes, path) of every result file and result folder, oldest first."""
        entries = []
        for f in self.path.iterdir():
            try:
                if f.is_file():
                    st = f.stat()
                    entries.append((st.st_mtime, st.st_size, f))
                elif f.is_dir() and f.name.startswith(RESULT_PREFIX):
                    size = sum(p.stat().st_size for p in f.rglob("*") if p.is_file())
                    entries.append((f.stat().st_mtime, size, f))
            except FileNotFoundError:  # another request pruned it first
                pass
        return sorted(entries)

    def prune(self, now: float | None = None) -> int:
        """Delete results older than max_age_s, then the oldest while the folder holds over max_bytes;
        returns how many went."""
        now = time.time() if now is None else now
        entries = self._entries()
        total, gone = sum(size for _, size, _ in entries), 0
        for mtime, size, f in entries:
            if now - mtime <= self.max_age_s and (self.max_bytes is None or total <= self.max_bytes):
                break
            if f.is_dir():
                shutil.rmtree(f, ignore_errors=True)
            else:
                f.unlink(missing_ok=True)
            total, gone = total - size, gone + 1
        return gone

    def close(self) -> None:
        """Remove the folder and its files."""
        shutil.rmtree(self.path, ignore_errors=True)
