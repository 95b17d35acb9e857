"""Reading images and videos, writing overlay videos and hand meshes (OBJ / GLB / PLY)."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from handmesh.atomic import atomic_target
from handmesh.data.io import (
    check_image_size,
    check_regular_file,
    read_image,  # noqa: F401  (re-exported: one image decoder for the project)
)
from handmesh.errors import HandmeshError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
MESH_FORMATS = ("obj", "glb", "ply")
# OpenCV camera (x right, y down, z forward) -> y-up viewer frame (x right, y up, z towards the viewer),
# a rotation about x by 180 degrees: mesh viewers (and glTF, which mandates +Y up) show hands upright.
CAMERA_TO_VIEWER = np.array([1.0, -1.0, -1.0])
# The demuxers a user's video may reach. FFmpeg sniffs content, not names: a text file named .mp4 holding
# an HLS playlist or a concat list makes it open the files listed inside. So the container is named here
# from the file's first bytes, and FFmpeg gets the open file itself (no URL, so no protocol can open more).
_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}
VIDEO_CONTAINERS = {"mov": "MP4/MOV", "matroska": "Matroska/WebM", "avi": "AVI", "mpeg": "MPEG-PS"}
# extension -> (muxer, encoder, codec, pixel format) of the overlay videos written here
_WRITERS = {
    ".mp4": ("mp4", "libx264", "h264", "yuv420p"),  # H.264: plays in browsers and players
    ".webm": ("webm", "libvpx", "vp8", "yuv420p"),
    ".avi": ("avi", "mjpeg", "mjpeg", "yuvj420p"),
}


def _container_of(path: Path, head: bytes) -> str:
    """The allowed demuxer for a file that starts with `head`; HandmeshError for anything else."""
    if head[4:8] in _MP4_BOXES:
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"\x00\x00\x01\xba":
        return "mpeg"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"#EXTM3U"):
        raise HandmeshError(
            f"{path}: refused, this is an HLS playlist, not a video (playlists name other files)"
        )
    if text.startswith(b"ffconcat"):
        raise HandmeshError(
            f"{path}: refused, this is a concat list, not a video (concat lists name other files)"
        )
    raise HandmeshError(
        f"{path}: not a video this reader accepts ({', '.join(VIDEO_CONTAINERS.values())} containers only)"
    )


@contextlib.contextmanager
def _open_video(path: str | Path) -> Iterator[tuple]:
    """(container, video stream) of a user's video, opened only through the allowed demuxers."""
    import av

    path = Path(path)
    check_regular_file(path, "video")
    with open(path, "rb") as f:
        fmt = _container_of(path, f.read(16))
        f.seek(0)
        try:
            container = av.open(f, mode="r", format=fmt)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise HandmeshError(f"{path}: not a readable video ({type(exc).__name__})") from None
        try:
            if container.format.name.split(",")[0] not in VIDEO_CONTAINERS or not container.streams.video:
                raise HandmeshError(f"{path}: no video stream in this file")
            stream = container.streams.video[0]
            check_image_size(
                stream.codec_context.width, stream.codec_context.height, f"{path} (video frames)"
            )
            stream.thread_type = "AUTO"
            yield container, stream
        finally:
            container.close()


def _upright(frame) -> np.ndarray:
    """RGB uint8 pixels of a decoded frame, turned as its display matrix says (phones record sideways)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _frames(path: Path, container, stream, max_frames: int | None) -> Iterator[np.ndarray]:
    """Decoded frames, each size checked before conversion; decoding stops quietly at damage."""
    import av

    count, size = 0, None
    if max_frames is not None and max_frames <= 0:
        return
    try:
        for frame in container.decode(stream):
            if (frame.width, frame.height) != size:  # checked once per size, before pixels are converted
                check_image_size(frame.width, frame.height, source=f"{path} frame {count}")
                size = (frame.width, frame.height)
            count += 1
            yield _upright(frame)
            if max_frames is not None and count >= max_frames:
                return
    except av.FFmpegError:
        if count == 0:
            raise HandmeshError(f"{path}: no frames could be decoded") from None


def _declared_frames(container, stream, fps: float) -> int:
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.time_base:  # webm and mkv only state a duration
        return round(float(stream.duration * stream.time_base) * fps)
    return round(container.duration / 1e6 * fps) if container.duration else 0


def video_info(path: str | Path) -> tuple[float, int, tuple[int, int]]:
    """(fps, frame count, (width, height) as shown) of a video; HandmeshError when it is refused or unreadable."""
    with _open_video(path) as (container, stream):
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        fps = fps if 1.0 <= fps <= 240.0 else 30.0
        n = _declared_frames(container, stream, fps)
        first = next(_frames(Path(path), container, stream, 1), None)
    if first is None:
        raise HandmeshError(f"{path}: no frames could be decoded")
    return fps, n, (first.shape[1], first.shape[0])


def iter_video(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a video file; a file that ends before its declared frame count gets a warning."""
    with _open_video(path) as (container, stream):
        rate = stream.average_rate or stream.guessed_rate
        declared = _declared_frames(container, stream, float(rate) if rate else 30.0)
        count = 0
        for frame in _frames(Path(path), container, stream, max_frames):
            count += 1
            yield frame
        if count == 0:
            raise HandmeshError(f"{path}: no frames could be decoded")
        # some containers (webm) only estimate their frame count: one frame short is not damage
        if max_frames is None and count < declared - 1:
            print(
                f"handmesh: warning: {path}: decoded {count} of its {declared} frames (truncated or damaged file)",
                file=sys.stderr,
            )


class _Sink(io.RawIOBase):
    """The file FFmpeg writes through: after the first failed write it discards everything, so that
    closing the muxer never goes back through the broken path (a PyAV muxer closed or fed after a failed
    write on a full disk can segfault)."""

    def __init__(self, f):
        self.f, self.broken, self.pos = f, False, 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, b) -> int:
        if self.broken:
            return len(b)
        try:
            return self.f.write(b)
        except OSError:
            self.broken = True
            raise

    def seek(self, offset: int, whence: int = 0) -> int:
        if not self.broken:
            self.pos = self.f.seek(offset, whence)
        elif whence == 0:
            self.pos = offset
        return self.pos

    def tell(self) -> int:
        return self.pos if self.broken else self.f.tell()


class VideoWriter:
    """Writes RGB frames to .mp4 (H.264: plays in browsers and players), .webm (VP8) or .avi (MJPEG).

    The file appears under its name only when it is complete: frames go to a temporary file beside it,
    renamed on `close()`. A failed write (a full disk) raises one HandmeshError, and the temporary file
    is removed; the writer then ignores further frames.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]):
        import av

        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _WRITERS:
            raise HandmeshError(f"{path}: video output must be .mp4, .webm or .avi")
        muxer, encoder, self.codec, pix_fmt = _WRITERS[suffix]
        self.size = tuple(int(v) for v in size)
        self._av = av  # write() builds one av.VideoFrame per frame
        self._failed: str | None = None
        self._container = None
        self._sink: _Sink | None = None
        self._tmp = atomic_target(self.path)
        try:
            # unbuffered: a failed write surfaces in the sink, not later in a buffer's flush
            self._sink = _Sink(open(self._tmp, "wb", buffering=0))  # noqa: SIM115 - closed in close()
            self._container = av.open(self._sink, mode="w", format=muxer)
            rate = Fraction(float(fps)).limit_denominator(1001)
            self._stream = self._container.add_stream(encoder, rate=rate)
            # yuv420p (what browsers decode) needs even sides: the last odd row/column is dropped
            self._stream.width, self._stream.height = self.size[0] // 2 * 2, self.size[1] // 2 * 2
            self._stream.pix_fmt = pix_fmt
            self._stream.options = {"crf": "20", "preset": "veryfast"} if encoder == "libx264" else {}
        except BaseException:
            self._discard()
            raise

    def _fail(self, exc: BaseException) -> str:
        """Record the first failure; from now on the sink swallows every write the muxer makes."""
        self._sink.broken = True
        if self._failed is None:
            self._failed = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return f"{self.path}: cannot write the video: {self._failed}"

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB frame (resized if its size differs); HandmeshError when the file cannot be written."""
        if self._failed is not None:
            return
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        even = np.ascontiguousarray(frame[: self._stream.height, : self._stream.width])
        try:
            for packet in self._stream.encode(self._av.VideoFrame.from_ndarray(even, format="rgb24")):
                self._container.mux(packet)
        except (self._av.FFmpegError, OSError) as exc:
            raise HandmeshError(self._fail(exc)) from None

    def _close_container(self) -> None:
        """Close the muxer once; after a failure its writes go nowhere and its stored error is dropped."""
        container, self._container = self._container, None
        if container is None:
            return
        try:
            container.close()
        except (self._av.FFmpegError, OSError) as exc:
            self._fail(exc)

    def _discard(self) -> None:
        """Close without a file: the temporary file is removed, nothing appears under the name."""
        if self._container is not None:
            self._sink.broken = True
            self._close_container()
        if self._sink is not None:
            with contextlib.suppress(OSError):
                self._sink.f.close()
        self._tmp.unlink(missing_ok=True)

    def close(self) -> None:
        """Finish the file and give it its name; HandmeshError (and no file) when it could not be written."""
        if self._container is None:
            return
        if self._failed is None:
            try:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            except (self._av.FFmpegError, OSError) as exc:
                self._fail(exc)
        self._close_container()
        if self._failed is None:
            self._sink.f.close()
            os.replace(self._tmp, self.path)  # the finished file takes its name
            return
        self._discard()
        raise HandmeshError(f"{self.path}: cannot write the video: {self._failed}")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:  # the caller failed: no half-written file under the name
            self._discard()


def h264_available() -> bool:
    """True when PyAV with an H.264 encoder is installed."""
    try:
        import av
        from av.codec import Codec

        Codec("libx264", "w")
        return bool(av)
    except Exception:
        return False


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    """`image` scaled down (area averaging) so that its longer side is at most `max_side` px."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image
    return cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )


def write_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB image (format from the extension)."""
    ok, buf = cv2.imencode(Path(path).suffix or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise HandmeshError(f"{path}: cannot encode image")
    buf.tofile(str(path))


def export_meshes(
    meshes: Sequence[tuple[np.ndarray, np.ndarray, Sequence[float]]],
    stem: str | Path,
    formats: Sequence[str] = MESH_FORMATS,
) -> list[Path]:
    """Write hand meshes (camera-space vertices, faces, rgba) as files `stem_handN.obj/.ply` and `stem.glb`.

    OBJ and PLY get one file per hand; GLB holds all hands of the image in one scene. Vertices are in
    metres in the y-up viewer frame (the OpenCV camera frame rotated 180 degrees about x).
    """
    import trimesh

    stem = Path(stem)
    unknown = set(formats) - set(MESH_FORMATS)
    if unknown:
        raise HandmeshError(f"unknown mesh format(s) {sorted(unknown)}: use {', '.join(MESH_FORMATS)}")
    tms = []
    for verts, faces, color in meshes:
        rgba = np.clip(np.round(np.asarray(list(color) + [1.0] * (4 - len(color))) * 255), 0, 255).astype(
            np.uint8
        )
        tm = trimesh.Trimesh(
            vertices=np.asarray(verts, dtype=np.float64) * CAMERA_TO_VIEWER,
            faces=np.asarray(faces),
            process=False,
        )
        tm.visual.face_colors = np.tile(rgba, (len(tm.faces), 1))
        tms.append(tm)
    written = []
    for fmt in formats:
        if fmt == "glb":
            if not tms:
                continue
            path = stem.with_name(stem.name + ".glb")
            scene = trimesh.Scene()
            for i, tm in enumerate(tms):
                scene.add_geometry(tm, node_name=f"hand{i}", geom_name=f"hand{i}")
            path.write_bytes(scene.export(file_type="glb"))
            written.append(path)
        else:
            for i, tm in enumerate(tms):
                path = stem.with_name(f"{stem.name}_hand{i}.{fmt}")
                tm.export(str(path), file_type=fmt)
                written.append(path)
    return written
