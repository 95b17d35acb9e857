"""File helpers for datasets: image decoding with clear errors, JPEG writing, JSON arrays with shape checks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from handmesh.errors import HandmeshError, MissingFileError


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 (H,W,3); a missing or corrupt file raises a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"image not found: {path}")
    try:
        # PIL, unlike cv2, refuses truncated JPEGs instead of returning a half-grey image.
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise HandmeshError(f"cannot decode image {path}: {exc}") from None
    return np.asarray(rgb, dtype=np.uint8)


def read_mask(path: str | Path) -> np.ndarray:
    """Decode a mask image (grey or colour JPEG/PNG) to a bool (H,W) array (pixel > 127)."""
    return read_image(path).max(axis=2) > 127


def write_jpeg(path: str | Path, image: np.ndarray, quality: int = 92) -> None:
    """Write an RGB uint8 (H,W,3) or grey (H,W) image as JPEG."""
    arr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise HandmeshError(f"cannot encode JPEG for {path}")
    Path(path).write_bytes(buf.tobytes())


def dump_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically; numpy arrays become nested lists with full float64 precision."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
        raise TypeError(f"not JSON serializable: {type(obj).__name__}")

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    # Python's float repr is the shortest string that round-trips, so float64 values survive exactly.
    tmp.write_text(json.dumps(data, default=default, separators=(",", ":")))
    os.replace(tmp, path)


CACHE_MIN_ENTRIES = 1000  # smaller files parse faster than a cache lookup is worth


def _cache_path(path: Path) -> Path:
    return path.parent / ".handmesh_cache" / (path.name + ".npy")


def load_json_array(
    path: str | Path, inner_shape: tuple[int, ...], dtype: Any = np.float64, cache: bool = True
) -> np.ndarray:
    """Load a JSON list of equally-shaped entries as an (N, *inner_shape) array; wrong shapes: one-line error.

    Entries may carry extra singleton dimensions (FreiHAND stores MANO values as 1x61); they are squeezed.
    Large files are cached as .npy beside the JSON (`.handmesh_cache/`), refreshed when the JSON is newer.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"missing file {path}")
    cached = _cache_path(path)
    if cache and cached.is_file() and cached.stat().st_mtime >= path.stat().st_mtime:
        arr = np.load(cached, allow_pickle=False)
        if arr.shape[1:] == tuple(inner_shape):
            return arr.astype(dtype, copy=False)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HandmeshError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise HandmeshError(f"{path}: expected a JSON list of entries, got {type(data).__name__}")
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError):
        bad = _first_bad_entry(data, inner_shape)
        raise HandmeshError(f"{path}: entry {bad} is not a numeric array of shape {inner_shape}") from None
    size = int(np.prod(inner_shape))
    if arr.ndim < 1 or (len(data) and arr[0].size != size) or arr.size != len(data) * size:
        bad = _first_bad_entry(data, inner_shape)
        got = np.shape(data[bad]) if bad < len(data) else arr.shape[1:]
        raise HandmeshError(f"{path}: entry {bad} has shape {got}, expected {inner_shape}")
    arr = arr.reshape((len(data), *inner_shape))
    if not np.isfinite(arr).all():
        bad = int(np.nonzero(~np.isfinite(arr.reshape(len(data), -1)).all(axis=1))[0][0])
        raise HandmeshError(f"{path}: entry {bad} holds NaN or infinity")
    if cache and len(data) >= CACHE_MIN_ENTRIES:
        try:
            cached.parent.mkdir(exist_ok=True)
            np.save(cached, arr)
        except OSError:
            pass  # a read-only dataset folder just means no cache
    return arr.astype(dtype, copy=False)


def _first_bad_entry(data: list, inner_shape: tuple[int, ...]) -> int:
    size = int(np.prod(inner_shape))
    for i, entry in enumerate(data):
        try:
            if np.asarray(entry, dtype=np.float64).size != size:
                return i
        except (ValueError, TypeError):
            return i
    return len(data)
