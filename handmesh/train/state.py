"""The training checkpoint format, and what a run folder may hold before a run starts.

`last.pt` and `best.pt` are model files in `handmesh.models`' format (`model_payload`, written atomically
by `handmesh.checkpoint.save_checkpoint`) with one more key, `TRAIN_FORMAT`, holding everything an exact
resume needs: raw weights, optimizer, schedule, AMP scaler, EMA, epoch, step, best score and every rank's
RNG states, all plain tensors and numbers (they load with `weights_only=True`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from handmesh.atomic import temp_glob
from handmesh.errors import HandmeshError, MissingFileError

TRAIN_FORMAT = "handmesh-train"
# what a run writes: last.pt and best.pt carry the training state (resume); model.pt is best.pt's model
# alone (config + weights, a third of the size), the file to share or deploy
MODEL_FILE = "model.pt"
CHECKPOINTS = ("last.pt", "best.pt", MODEL_FILE)


def write_train_checkpoint(
    path: Path, model: torch.nn.Module, state: dict[str, Any], extra: dict[str, Any] | None = None
) -> None:
    """One file `handmesh.load_model` reads (config + weights) that also carries the training state;
    `extra`: the model file's plain notes (what it was trained on: `model_file.training_note`)."""
    from handmesh.checkpoint import save_checkpoint
    from handmesh.models import model_payload

    payload = model_payload(model)
    payload["extra"] = dict(extra or {})
    payload[TRAIN_FORMAT] = state
    save_checkpoint(path, payload)


def read_train_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint (last.pt/best.pt) and check that it can be resumed."""
    from handmesh.checkpoint import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no checkpoint to resume at {path} (run training with --out first)")
    payload = load_checkpoint(path)
    if TRAIN_FORMAT not in payload:
        raise HandmeshError(f"{path} is a model file without training state; it cannot be resumed")
    return payload


def freeze_hand_model(model: torch.nn.Module) -> None:
    """The hand-model layer is fixed geometry: none of its tensors is trained (DDP also needs every
    trainable parameter to receive a gradient)."""
    from handmesh.models import is_hand_model_key

    for name, param in model.named_parameters():
        if is_hand_model_key(name):
            param.requires_grad_(False)


def refuse_existing_run(out: Path, overwrite: bool) -> None:
    """A fresh run must not silently replace another run's checkpoints: refuse unless `overwrite`."""
    found = [name for name in CHECKPOINTS if (out / name).exists()]
    if found and not overwrite:
        raise HandmeshError(
            f"{out} already holds a run ({', '.join(found)}): continue it with --resume, "
            "replace it with --overwrite, or choose another --out"
        )


LOCK_FILE = ".handmesh_train.lock"


def lock_run_dir(out: Path) -> int:
    """Hold the run folder for this process (an advisory lock, released when the process ends): a second
    training into the same --out is refused instead of both running and one run's files being lost."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise HandmeshError(
            f"{out} is in use by another training (process {holder}); wait for it to finish or choose "
            "another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def stale_temp_files(out: Path) -> list[Path]:
    """Hidden partial checkpoints a killed write left behind (`save_checkpoint` writes through
    `handmesh.atomic`; a kill before the rename leaves the temp file)."""
    return sorted(p for name in CHECKPOINTS for p in out.glob(temp_glob(name)) if p.is_file())


def prepare_run_dir(out: Path, fresh: bool) -> list[str]:
    """Create the run folder, delete stale temp files and, for a fresh run (`--overwrite` was checked by
    `refuse_existing_run`), the previous run's checkpoints and events; returns what was removed."""
    out.mkdir(parents=True, exist_ok=True)
    removed = stale_temp_files(out)
    if fresh:
        removed += [out / name for name in CHECKPOINTS if (out / name).exists()]
    for path in removed:
        path.unlink(missing_ok=True)
    names = [p.name for p in removed]
    if fresh and (out / "tb").is_dir():  # a new run's curves must not be drawn over the old run's
        shutil.rmtree(out / "tb")
        names.append("tb/")
    return names
