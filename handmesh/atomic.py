"""Atomic file writes: a reader sees the old file or the whole new one, never a torn one.

Every writer of a result file uses this module (checkpoints, ONNX models and sidecars, JSON, caches,
the demo's frames). The new content goes to a uniquely named hidden file beside the target
(``.NAME.<random>.tmp``: two writers of one path never share a temporary file), is flushed to disk, and
is renamed over the target; the folder is then synced so that the rename itself survives a crash. A
failed write removes its temporary file and leaves the target as it was. The file gets the mode any
other new file gets (0666 minus the umask): `tempfile.mkstemp` alone makes it 0600, and the rename would
keep that, leaving checkpoints and ONNX files unreadable by the user's group.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back: POSIX has no plain getter)."""
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def temp_glob(name: str) -> str:
    """The glob pattern of the temporary files a killed write of file `name` can leave behind."""
    return f".{name}.*{TEMP_SUFFIX}"


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_target(path: str | os.PathLike) -> Path:
    """A fresh empty temporary file beside `path` (same folder, so `os.replace` onto `path` is atomic) with
    the mode a newly created `path` would get. `atomic_path` wraps it; a writer that outlives one block
    (a video writer) renames or removes it itself."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; write it inside the block, and on a clean exit it
    replaces `path` (synced to disk first unless `durable` is False); on an error it is removed."""
    path = Path(path)
    tmp = atomic_target(path)
    try:
        yield tmp
        if durable:
            _fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync_path(path.parent, directory=True)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: bytes | str, durable: bool = True) -> Path:
    """Write `data` (text is UTF-8) to `path` atomically (see `atomic_path`); returns the path."""
    with atomic_path(path, durable) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)
