"""File helpers for datasets: image decoding with clear errors, JPEG writing, JSON arrays with shape checks."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import struct
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from handmesh.atomic import atomic_path, atomic_write
from handmesh.errors import HandmeshError, MissingFileError

# Limits checked before any native decoder or library sees an image (docs/limits.md). MediaPipe's bundled
# OpenCV aborts the whole process on a side of 32,767 px; 8192 px and 40 megapixels cover 8K frames.
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_BYTES = 200 * 1024 * 1024
EXIF_ORIENTATION = 0x0112
# the decoders Pillow may use: anything else (PostScript through Ghostscript, PDF, ...) is refused by
# content, whatever the file's name says
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF")
# the formats a file's extension promises: a dataset's .jpg that holds a PNG is refused by `probe_image`
_EXTENSION_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
# what a complete file of these formats ends with: a truncated download lacks it
_TAILS = {"JPEG": (b"\xff\xd9",), "PNG": (b"IEND\xaeB`\x82",)}


def check_image_size(width: int, height: int, source: str | Path = "image") -> None:
    """Refuse an image or video frame whose size any later stage could not handle (one-line error)."""
    if width < 1 or height < 1:
        raise HandmeshError(f"{source}: image has no pixels ({width}x{height})")
    if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise HandmeshError(
            f"{source}: image is {width}x{height} px; the limit is {MAX_IMAGE_SIDE} px a side and "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels (downscale it first)"
        )


def check_regular_file(path: Path, what: str = "image") -> int:
    """Size in bytes of a readable regular file; missing files, FIFOs, devices and folders are refused."""
    if not path.exists():
        if path.is_symlink():
            raise HandmeshError(f"{path}: broken or looping symbolic link")
        raise MissingFileError(f"{what} not found: {path}")
    if not path.is_file():
        # reading a FIFO blocks forever and /dev/zero never ends: only regular files are read
        raise HandmeshError(f"{path}: not a regular file (a folder, FIFO or device)")
    size = path.stat().st_size
    if size == 0:
        raise HandmeshError(f"{path}: empty file")
    return size


def _open_checked(source: Path | bytes, name: str = "image") -> Image.Image:
    """Open an image file, or an image's bytes, lazily (header only) and check its size before any pixel
    is decoded; messages name the file's path, or `name` for bytes."""
    if isinstance(source, bytes):
        path, size, source = name, len(source), io.BytesIO(source)
    else:
        path, size = source, check_regular_file(source)
    if size > MAX_IMAGE_BYTES:
        raise HandmeshError(
            f"{path}: {size / 2**20:.0f} MB is over the {MAX_IMAGE_BYTES >> 20} MB image limit"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is lower
            im = Image.open(source, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError:
        raise HandmeshError(
            f"{path}: refused, the header claims a decompression bomb (over {Image.MAX_IMAGE_PIXELS * 2 // 10**6} "
            f"megapixels); the limit is {MAX_IMAGE_SIDE} px a side and {MAX_IMAGE_PIXELS // 10**6} megapixels"
        ) from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise HandmeshError(f"cannot decode image {path}: {exc}") from None
    try:
        check_image_size(*im.size, source=path)
    except HandmeshError:
        im.close()
        raise
    return im


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright); damaged EXIF data counts as upright, not as a broken image."""
    try:
        value = im.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, ValueError, TypeError, KeyError, SyntaxError, struct.error):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def probe_image(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header, after cheap checks (size limits, JPEG/PNG end marker): no decode."""
    path = Path(path)
    with _open_checked(path) as im:
        tails, size = _TAILS.get(im.format or ""), im.size
        promised = _EXTENSION_FORMATS.get(path.suffix.lower())
        if promised and im.format != promised:
            # its pixels are only checked by a full decode: a broken PNG named .jpg passed the header check
            raise HandmeshError(f"cannot decode image {path}: it holds a {im.format} image, not {promised}")
        if _orientation(im) in (5, 6, 7, 8):
            size = size[::-1]  # read_image turns it upright: width and height swap
    if tails:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 16))
            end = fh.read().rstrip(b"\0\r\n ")
        if not any(tail in end for tail in tails):
            raise HandmeshError(f"cannot decode image {path}: truncated {im.format} file (no end marker)")
    return size


def jpeg_damage(path: str | Path) -> str | None:
    """libjpeg's complaint about a JPEG's data ("premature end of data segment"), or None; a reduced
    (1/8 scale) decode, so every byte of the scan is read. A JPEG cut short with an end marker appended
    passes the header and end-marker check and Pillow decodes it silently with grey rows; libjpeg says so
    only on the process's stderr, which is captured here for the moment of the decode (single thread)."""
    data = Path(path).read_bytes()
    read_end, write_end = os.pipe()
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    try:
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        said = fh.read(4096).decode(errors="replace").strip()
    return said.splitlines()[0] if said else None


# libjpeg leaves every block after the point where a JPEG's scan data ran out at zero: mid-grey (128 in
# every channel) from there to the image's end. A complete image rarely ends in exactly that grey, so only
# such an image pays for a second decode that reports the damage.
_CUT_SHORT_GREY = 128
_CUT_SHORT_CORNER = 4  # px: the bottom-right square looked at (inside the last block for 4:2:0 and 4:4:4)


def jpeg_cut_short(im: Image.Image, data: Callable[[], bytes]) -> bool:
    """True when a decoded JPEG's scan data ended early (a file cut short, an end marker appended): its
    bottom-right corner is libjpeg's fill grey and FFmpeg's strict decoder refuses the file. Pillow decodes
    such a file without a word; this costs about 2 % of a 224 px decode unless the corner is that grey
    (bench hostile)."""
    if im.format != "JPEG" or im.mode not in ("L", "RGB"):
        return False
    w, h = im.size
    grey = _CUT_SHORT_GREY if im.mode == "L" else (_CUT_SHORT_GREY,) * 3
    if im.getpixel((w - 1, h - 1)) != grey:  # one pixel first: a crop costs more
        return False
    side = min(_CUT_SHORT_CORNER, w, h)
    corner = im.crop((w - side, h - side, w, h)).tobytes()
    if corner.count(_CUT_SHORT_GREY) != len(corner):
        return False
    return strict_jpeg_refuses(data())


def strict_jpeg_refuses(data: bytes) -> bool:
    """True when FFmpeg's JPEG decoder, told to stop at any damage, refuses `data` (it reports a scan
    that runs out of data, which libjpeg only writes to stderr)."""
    import av

    codec = av.CodecContext.create("mjpeg", "r")
    codec.thread_count = 1
    codec.options = {"err_detect": "explode"}
    try:
        codec.decode(av.Packet(data))
    except av.FFmpegError:
        return True
    return False


def _to_rgb(im: Image.Image) -> np.ndarray:
    """RGB uint8 pixels of a decoded image; 16-bit and 32-bit integer greys are scaled, not clipped."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float64)
        # a 16-bit PNG decodes as "I;16" or "I" (32-bit int holding 16-bit values): scale by its depth;
        # a 32-bit integer TIFF by the 32-bit range (negative values are black)
        top = arr.max(initial=0)
        peak = 65535.0 if im.mode.startswith("I;16") or 255 < top <= 65535 else 255.0
        peak = float(2**31 - 1) if top > 65535 else peak
        grey = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        finite = np.isfinite(arr)
        # NaN pixels are black; one of them must not decide the scale (NaN <= 1.0 is False)
        scale = 255.0 if not finite.any() or arr[finite].max() <= 1.0 else 1.0
        grey = np.clip(np.round(np.where(finite, arr, 0.0) * scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 (H,W,3), upright (EXIF orientation applied); bad files raise a
    one-line error before any large allocation (size limits are read from the header first)."""
    path = Path(path)
    return _decoded(path, path, path.read_bytes)


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """`read_image` for an image's bytes (a frame a browser sent); messages call it `name`."""
    return _decoded(data, name, lambda: data)


def _decoded(source: Path | bytes, name: str | Path, data: Callable[[], bytes]) -> np.ndarray:
    """The checked decode behind `read_image` and `decode_image`; `data` gives the file's bytes when a
    second look is needed."""
    try:
        with _open_checked(source, str(name)) as im:
            # Pillow refuses a JPEG that simply stops; one cut short with an end marker appended it decodes
            # with grey rows, and libjpeg's complaint goes unheard: looked for here
            im.load()
            if jpeg_cut_short(im, data):
                raise HandmeshError(
                    f"cannot decode image {name}: JPEG data ends early (premature end of data segment: the "
                    "file was cut short; its lower part would be grey)"
                )
            upright = ImageOps.exif_transpose(im) if _orientation(im) != 1 else im
            return _to_rgb(upright)
    except HandmeshError:
        raise
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise HandmeshError(f"cannot decode image {name}: {exc}") from None


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

    # Python's float repr is the shortest string that round-trips, so float64 values survive exactly.
    atomic_write(path, json.dumps(data, default=default, separators=(",", ":")))


CACHE_MIN_ENTRIES = 1000  # smaller files parse faster than a cache lookup is worth


def _content_key(path: Path) -> str:
    """Size and BLAKE2 digest of a file: a replaced file is noticed whatever its modification time says
    (tar and `cp -p` keep older times)."""
    digest = hashlib.blake2b(digest_size=12)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return f"{path.stat().st_size}-{digest.hexdigest()}"


def _cache_path(path: Path, key: str) -> Path:
    return path.parent / ".handmesh_cache" / f"{path.name}.{key}.npy"


def _load_cached(cached: Path, inner_shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array when it is readable and has the expected entry shape, else None."""
    try:
        arr = np.load(cached, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # a half-written or damaged cache file is rebuilt
    return arr if arr.shape[1:] == tuple(inner_shape) else None


def _store_cache(cached: Path, arr: np.ndarray, json_name: str) -> None:
    """Write the cache atomically and drop the entries of earlier contents of the same JSON file."""
    try:
        # a cache is rebuilt when lost: not worth a disk sync
        with atomic_path(cached, durable=False) as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr)
        for old in cached.parent.glob(glob.escape(json_name) + ".*.npy"):
            if old != cached:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only dataset folder just means no cache


def load_json_array(
    path: str | Path, inner_shape: tuple[int, ...], dtype: Any = np.float64, cache: bool = True
) -> np.ndarray:
    """Load a JSON list of equally-shaped entries as an (N, *inner_shape) array; wrong shapes: one-line error.

    Entries may carry extra singleton dimensions (FreiHAND stores MANO values as 1x61); they are squeezed.
    Large files are cached as .npy beside the JSON (`.handmesh_cache/`), keyed on the JSON's size and
    content hash.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"missing file {path}")
    check_regular_file(path, "file")
    key = _content_key(path) if cache else ""
    cached = _cache_path(path, key)
    if cache and cached.is_file():
        arr = _load_cached(cached, inner_shape)
        if arr is not None:
            return arr.astype(dtype, copy=False)
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:  # bad JSON, not UTF-8, or an integer of over 4,300 digits
        raise HandmeshError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise HandmeshError(f"{path}: not valid JSON (nested too deeply)") from None
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
        _store_cache(cached, arr, path.name)
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
