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
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
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


def folder_entries(folder: Path, include: Callable[[Path], bool]) -> list[tuple[float, int, Path]]:
    """(modification time, bytes, path) of each entry of `folder` that `include` accepts (a file, or a
    folder with everything below it: its own time, which a file added or removed inside renews), oldest
    first."""
    entries = []
    for f in folder.iterdir():
        try:
            if not include(f):
                continue
            if f.is_dir() and not f.is_symlink():
                size = sum(
                    st.st_size for st in (p.lstat() for p in f.rglob("*")) if not stat.S_ISDIR(st.st_mode)
                )
                entries.append((f.lstat().st_mtime, size, f))
            else:
                st = f.lstat()
                entries.append((st.st_mtime, st.st_size, f))
        except FileNotFoundError:  # another request or the sweeper removed it first
            pass
    return sorted(entries)


def prune_oldest(
    entries: list[tuple[float, int, Path]],
    max_age_s: float | None = None,
    max_bytes: int | None = None,
    now: float | None = None,
) -> int:
    """Delete entries (oldest first, as `folder_entries` gives them) older than `max_age_s`, then the
    oldest while they hold over `max_bytes` together; returns how many went."""
    now = time.time() if now is None else now
    total, gone = sum(size for _, size, _ in entries), 0
    for mtime, size, f in entries:
        expired = max_age_s is not None and now - mtime > max_age_s
        if not expired and (max_bytes is None or total <= max_bytes):
            break
        if f.is_dir() and not f.is_symlink():
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)
        total, gone = total - size, gone + 1
    return gone


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

    def prune(self, now: float | None = None) -> int:
        """Delete results older than max_age_s, then the oldest while the folder holds over max_bytes;
        returns how many went."""
        entries = folder_entries(self.path, lambda f: f.is_file() or f.name.startswith(RESULT_PREFIX))
        return prune_oldest(entries, self.max_age_s, self.max_bytes, now)

    def close(self) -> None:
        """Remove the folder and its files."""
        shutil.rmtree(self.path, ignore_errors=True)


CACHE_PREFIX = "handmesh-gradio-"


class GradioCache:
    """A folder of the app's own for Gradio's cache (uploads, Gradio's copies of results, streamed frames),
    capped in bytes: beyond `max_bytes` its oldest entries go, checked every `period_s` and whenever
    `prune` is called (each request), so an upload flood cannot fill the disk between Gradio's hourly
    sweeps. Made before the page is built: it points GRADIO_TEMP_DIR at a new folder inside the one
    Gradio would use (other apps' files there are never touched); `close` removes it and restores the
    variable. Entries holding a file in `keep` (the examples) and folders named in `keep_names` (the
    streamed frames, which bound themselves) are never pruned; they still count."""

    def __init__(self, max_bytes: int, period_s: float = 5.0):
        from gradio.utils import get_upload_folder

        parent = Path(get_upload_folder())
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=CACHE_PREFIX, dir=parent))
        self._previous = os.environ.get("GRADIO_TEMP_DIR")
        os.environ["GRADIO_TEMP_DIR"] = str(self.path)
        self.max_bytes = int(max_bytes)
        self.period_s = float(period_s)
        self.keep: set[Path] = set()
        self.keep_names: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def protect(self, files: Iterable[str | os.PathLike]) -> None:
        """Never prune the entries that hold these files (Gradio's copies of the page's examples)."""
        self.keep |= {self._entry_of(f) for f in files} - {None}

    def _entry_of(self, file: str | os.PathLike) -> Path | None:
        """The entry of this folder (its top-level file or folder) that holds `file`, or None."""
        try:
            rel = Path(file).resolve().relative_to(self.path.resolve())
        except ValueError:  # not in this folder
            return None
        return self.path / rel.parts[0] if rel.parts else None

    def prune(self, holding: Iterable[str | os.PathLike] = ()) -> int:
        """Delete the oldest entries while the folder holds over max_bytes, never those holding the files
        in `holding` (the request's own upload); returns how many went."""
        held = {self._entry_of(f) for f in holding} - {None}
        with self._lock:
            entries = folder_entries(self.path, lambda f: True)
            kept = self.keep | held
            fixed = [e for e in entries if e[2] in kept or e[2].name in self.keep_names]
            prunable = [e for e in entries if e not in fixed]
            budget = self.max_bytes - sum(size for _, size, _ in fixed)
            return prune_oldest(prunable, max_bytes=max(budget, 0))

    def start(self) -> None:
        """Prune every period_s in a daemon thread (uploads arrive without a request of ours)."""

        def sweep() -> None:
            while not self._stop.wait(self.period_s):
                self.prune()

        self._thread = threading.Thread(target=sweep, name="handmesh-cache-cap", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop sweeping, remove the folder, and point GRADIO_TEMP_DIR back where it was."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        shutil.rmtree(self.path, ignore_errors=True)
        if os.environ.get("GRADIO_TEMP_DIR") == str(self.path):
            if self._previous is None:
                os.environ.pop("GRADIO_TEMP_DIR", None)
            else:
                os.environ["GRADIO_TEMP_DIR"] = self._previous
