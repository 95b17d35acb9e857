"""Reading images and videos, writing overlay videos and hand meshes (OBJ / GLB / PLY)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

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


def video_info(path: str | Path) -> tuple[float, int, tuple[int, int]]:
    """(fps, frame count, (width, height)) of a video; HandmeshError when it cannot be opened or is too big."""
    check_regular_file(Path(path), "video")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise HandmeshError(f"{path}: not a readable video")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()
    check_image_size(*size, source=f"{path} (video frames)")
    return (fps if 1.0 <= fps <= 240.0 else 30.0), n, size


def iter_video(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a video file; a file that ends before its declared frame count gets a warning."""
    check_regular_file(Path(path), "video")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise HandmeshError(f"{path}: not a readable video")
    try:
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        count, shape = 0, None
        while max_frames is None or count < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            if frame.shape != shape:  # checked once per size, before the frame reaches any other library
                check_image_size(frame.shape[1], frame.shape[0], source=f"{path} frame {count}")
                shape = frame.shape
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if count == 0:
            raise HandmeshError(f"{path}: no frames could be decoded")
        # some containers (webm) only estimate their frame count: one frame short is not damage
        if max_frames is None and count < declared - 1:
            print(
                f"handmesh: warning: {path}: decoded {count} of its {declared} frames (truncated or damaged file)",
                file=sys.stderr,
            )
    finally:
        cap.release()


class VideoWriter:
    """Writes RGB frames to .mp4 (H.264 through PyAV: plays in browsers and players), .webm (VP8) or .avi.

    Without PyAV (`pip install av`, part of the demo extra) .mp4 falls back to OpenCV's MPEG-4 Part 2,
    which desktop players show but browsers do not; `codec` says which one is being written.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".mp4", ".webm", ".avi"):
            raise HandmeshError(f"{path}: video output must be .mp4, .webm or .avi")
        self.size = tuple(int(v) for v in size)
        self._container = self._stream = self._writer = None
        if suffix == ".mp4" and h264_available():
            self._open_h264(float(fps))
            return
        self.codec = {".webm": "VP80", ".mp4": "mp4v", ".avi": "MJPG"}[suffix]
        self._writer = cv2.VideoWriter(
            str(self.path), cv2.VideoWriter_fourcc(*self.codec), float(fps), self.size
        )
        if not self._writer.isOpened():
            raise HandmeshError(f"{path}: this OpenCV build cannot write {self.codec} video")

    def _open_h264(self, fps: float) -> None:
        from fractions import Fraction

        import av

        self._av = av  # write() builds one av.VideoFrame per frame
        self.codec = "h264"
        self._container = av.open(str(self.path), mode="w")
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        # yuv420p (what browsers decode) needs even sides: the last odd row/column is dropped
        self._stream.width, self._stream.height = self.size[0] // 2 * 2, self.size[1] // 2 * 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": "20", "preset": "veryfast", "movflags": "+faststart"}

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB frame (resized if its size differs)."""
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        if self._stream is None:
            self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            return
        even = np.ascontiguousarray(frame[: self._stream.height, : self._stream.width])
        for packet in self._stream.encode(self._av.VideoFrame.from_ndarray(even, format="rgb24")):
            self._container.mux(packet)

    def close(self) -> None:
        """Finish the file."""
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._stream = None
        elif self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def h264_available() -> bool:
    """True when PyAV with an H.264 encoder is installed."""
    try:
        import av
        from av.codec import Codec

        Codec("libx264", "w")
        return bool(av)
    except Exception:
        return False


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
