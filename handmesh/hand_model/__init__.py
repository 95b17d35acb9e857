"""The hand-model layer: MANO (when its licence-gated files are present) or the open stand-in hand.

hand = load_hand_model()                   # configured MANO, else the stand-in
out = hand(global_orient=..., hand_pose=..., betas=..., transl=...)
out.vertices (B,778,3), out.joints (B,21,3) FreiHAND order, out.joints16 (B,16,3) MANO order
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from handmesh.errors import HandmeshError, MissingFileError
from handmesh.hand_model.arrays import mirror_arrays
from handmesh.hand_model.mano_io import find_mano_file, load_arrays, mano_dir
from handmesh.lazy import lazy_exports
from handmesh.mirror import mirror_faces, mirror_pose, mirror_vertices

if TYPE_CHECKING:
    from handmesh.hand_model.layer import HandModel, HandOutput

__all__ = [
    "HandModel",
    "HandOutput",
    "load_hand_model",
    "resolve_hand_arrays",
    "mirror_vertices",
    "mirror_faces",
    "mirror_pose",
]

_NOTICE_SHOWN = False


# The torch layer loads on first use, so the torch-free submodules (joints, prior, arrays, mano_io)
# import without torch: synth's render workers rely on it.
__getattr__ = lazy_exports(
    __name__, {"HandModel": "handmesh.hand_model.layer", "HandOutput": "handmesh.hand_model.layer"}
)


def _notice(folder: Path) -> None:
    global _NOTICE_SHOWN
    if not _NOTICE_SHOWN:
        print(
            f"handmesh: no MANO files in {folder} (put MANO_RIGHT.pkl / MANO_LEFT.pkl there, set "
            "$HANDMESH_MANO_DIR, or run `handmesh mano import PATH`); using the open stand-in hand",
            file=sys.stderr,
        )
        _NOTICE_SHOWN = True


def fix_left_shapedirs(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Undo the known sign error of MANO_LEFT's shapedirs x component (it equals the right hand's)."""
    a, b = left["shapedirs"][:, 0], right["shapedirs"][:, 0]
    if a.shape == b.shape and np.abs(a - b).sum() < np.abs(a + b).sum():
        left = dict(left)
        left["shapedirs"] = left["shapedirs"].copy()
        left["shapedirs"][:, 0] *= -1
    return left


def _from_folder(folder: Path, side: str) -> tuple[dict, str] | None:
    own = find_mano_file(folder, side)
    other = find_mano_file(folder, "right" if side == "left" else "left")
    if own is not None:
        arrays, _ = load_arrays(own)
        if side == "left" and other is not None:
            arrays = fix_left_shapedirs(arrays, load_arrays(other)[0])
        return arrays, str(own)
    if other is not None:
        arrays, _ = load_arrays(other)
        return mirror_arrays(arrays), f"{other} (mirrored)"
    return None


def resolve_hand_arrays(path: str | Path | None = None, side: str = "right") -> tuple[dict, str, str]:
    """The MANO-schema arrays for `side`, their kind ("mano"/"standin") and a description of the source."""
    if side not in ("right", "left"):
        raise HandmeshError(f"side must be 'right' or 'left', got {side!r}")
    if path is None:
        folder = mano_dir()
        found = _from_folder(folder, side) if folder.is_dir() else None
        if found is not None:
            return found[0], "mano", found[1]
        _notice(folder)
        from handmesh.hand_model.standin import standin_arrays

        arrays = standin_arrays()
        return (arrays if side == "right" else mirror_arrays(arrays)), "standin", "stand-in"
    path = Path(path)
    if path.is_dir():
        found = _from_folder(path, side)
        if found is None:
            raise MissingFileError(f"no MANO_RIGHT/MANO_LEFT .pkl or .npz in {path}")
        return found[0], "mano", found[1]
    arrays, file_side = load_arrays(path)
    if (file_side or "right") != side:
        return mirror_arrays(arrays), "mano", f"{path} (mirrored)"
    return arrays, "mano", str(path)


def load_hand_model(
    path: str | Path | None = None,
    side: str = "right",
    flat_hand_mean: bool = False,
    use_pca: bool = False,
    num_pca_comps: int = 45,
) -> HandModel:
    """Load MANO from `path` (.pkl, .npz or folder; None: the configured MANO dir) or else the stand-in."""
    from handmesh.hand_model.layer import HandModel

    arrays, kind, source = resolve_hand_arrays(path, side)
    return HandModel(
        arrays,
        kind=kind,
        side=side,
        flat_hand_mean=flat_hand_mean,
        use_pca=use_pca,
        num_pca_comps=num_pca_comps,
        source=source,
    )
