"""Single-file checkpoints: atomic writes and safe loading (tensors and plain containers only)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from handmesh.atomic import atomic_path
from handmesh.errors import HandmeshError, MissingFileError

# torch's weights_only refusal names the global as "GLOBAL module.name" in one of two phrasings
_UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


class _KeepsWriteError:
    """A file that remembers its first failed write: torch's zip writer turns that OSError into a
    RuntimeError that names no cause ("unexpected pos 3119360 vs 3119248")."""

    def __init__(self, fh) -> None:
        self.fh, self.error = fh, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write payload with torch.save, atomically (`handmesh.atomic`); a failed write (a full disk) is one
    HandmeshError and leaves any earlier file at `path` as it was."""
    path = Path(path)
    out = None
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            out = _KeepsWriteError(fh)
            torch.save(payload, out)
    except BaseException as exc:
        cause = out.error if out is not None and out.error is not None else exc
        if isinstance(exc, OSError | RuntimeError) and isinstance(cause, OSError):
            raise HandmeshError(f"cannot write checkpoint {path}: {cause.strerror or cause}") from None
        raise  # not a file problem: a bug, keep its traceback
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict with torch.load(weights_only=True); unreadable files raise a one-line error."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"checkpoint {path} not found")
    if not path.is_file():  # a FIFO would block and /dev/zero never ends
        raise HandmeshError(f"checkpoint {path} is not a regular file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt or foreign files all mean the same to a user
        unsafe = _UNSAFE_GLOBAL.search(str(exc))
        if unsafe:
            # torch's paragraph suggests weights_only=False; the user needs what was refused and why
            raise HandmeshError(
                f"checkpoint {path} refused: it references {unsafe.group(1)}, which could run code when "
                "loaded; a handmesh checkpoint holds only tensors and plain values"
            ) from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HandmeshError(f"checkpoint {path} is unreadable or corrupt ({reason[:120]})") from None
    if not isinstance(payload, dict):
        raise HandmeshError(f"checkpoint {path} does not hold a dict (got {type(payload).__name__})")
    return payload
