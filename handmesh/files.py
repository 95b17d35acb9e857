"""Output files written atomically, with the permissions any other output file gets.

`tempfile.mkstemp` creates its file readable by the owner only (0600), and renaming it into place keeps
that mode: checkpoints and ONNX files were unreadable by the user's group while every other output
followed the umask. `atomic_target` gives the temporary file the mode `open()` would have given it.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back: POSIX has no plain getter)."""
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def atomic_target(path: str | os.PathLike) -> Path:
    """An empty temporary file beside `path` (same folder, so `os.replace` onto `path` is atomic), with
    the permissions a newly created `path` would get (0666 minus the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    return Path(tmp)
