"""Single-file checkpoints: atomic writes and safe loading (tensors and plain containers only)."""

from __future__ import annotations

import os
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from handmesh.atomic import atomic_path
from handmesh.errors import HandmeshError, MissingFileError

# torch's weights_only refusal names the global as "GLOBAL module.name" in one of two phrasings
_UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
# weights_only lets a pickle call bytearray(n): an 80-byte file can ask for gigabytes. A handmesh file's
# pickle is a few kilobytes, and no count in it comes near this.
MAX_PICKLE_BYTES = 64 * 1024 * 1024
MAX_PICKLED_COUNT = 256 * 1024 * 1024
_SIZED_CALLS = {"bytearray", "bytes"}


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


def _pickles(path: Path) -> list[bytes]:
    """The pickle streams of a checkpoint: the zip format's data.pkl, or the legacy format's whole file."""
    if not zipfile.is_zipfile(path):
        return [path.read_bytes()[:MAX_PICKLE_BYTES]]
    with zipfile.ZipFile(path) as zf:
        infos = [info for info in zf.infolist() if info.filename.endswith("data.pkl")]
        if any(info.file_size > MAX_PICKLE_BYTES for info in infos):
            raise HandmeshError(f"its pickle is over {MAX_PICKLE_BYTES >> 20} MB")
        return [zf.read(info) for info in infos]


def scan_pickle(data: bytes) -> None:
    """Refuse a pickle that calls bytearray/bytes with any count over MAX_PICKLED_COUNT (read, never run)."""
    sized, counts, strings = False, [], []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                sized |= str(arg).split(" ")[-1] in _SIZED_CALLS
            elif op.name == "STACK_GLOBAL" and strings:
                sized |= strings[-1] in _SIZED_CALLS
            if isinstance(arg, str):
                strings.append(arg)
            elif type(arg) is int:
                counts.append(abs(arg))
            if op.name == "STOP":
                break
    except (ValueError, EOFError, KeyError):
        return  # not a readable pickle: torch.load says so in its own words
    if sized and counts and max(counts) > MAX_PICKLED_COUNT:
        raise HandmeshError(
            f"it asks to allocate {max(counts) / 2**20:.0f} MB in one call (bytearray/bytes), "
            f"over the {MAX_PICKLED_COUNT >> 20} MB limit"
        )


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict with torch.load(weights_only=True); unreadable files raise a one-line error."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"checkpoint {path} not found")
    if not path.is_file():  # a FIFO would block and /dev/zero never ends
        raise HandmeshError(f"checkpoint {path} is not a regular file")
    try:
        for data in _pickles(path):
            scan_pickle(data)
    except HandmeshError as exc:
        raise HandmeshError(f"checkpoint {path} refused: {exc}") from None
    except (OSError, zipfile.BadZipFile, RuntimeError) as exc:
        raise HandmeshError(f"checkpoint {path} is unreadable or corrupt ({exc})") from None
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
