"""Synthetic hand videos (the hand model rendered over a plain background) for benchmarks and browser tests.

Each frame comes with the detections a perfect detector would give (box from the projected joints,
handedness, 2D keypoints and hand-centred 3D keypoints), so the pipeline can run with known boxes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from handmesh.geometry_np import project_points_np
from handmesh.pipeline.crop import default_intrinsics
from handmesh.pipeline.detector import HandDetection
from handmesh.render import LEFT_COLOR, RIGHT_COLOR

SKIN = (0.86, 0.66, 0.53, 1.0)


@dataclasses.dataclass
class SyntheticVideo:
    """Frames (N, H, W, 3) uint8, the camera K, per-frame ground-truth detections and camera-space joints."""

    frames: np.ndarray
    K: np.ndarray
    detections: list[list[HandDetection]]
    joints: list[list[np.ndarray]] = dataclasses.field(default_factory=list)  # (21, 3) metres per hand


class ScriptedDetector:
    """Replays per-frame detections in order (cycling): a perfect detector for a known video."""

    def __init__(self, detections: list[list[HandDetection]]):
        self.detections = detections
        self.index = 0

    def detect(self, frame: np.ndarray, static: bool = False) -> list[HandDetection]:
        """The next frame's detections (copies)."""
        dets = self.detections[self.index % len(self.detections)]
        self.index += 1
        return [dataclasses.replace(d) for d in dets]

    def reset(self) -> None:
        """Restart from the first frame."""
        self.index = 0


def background(width: int, height: int) -> np.ndarray:
    """A soft blue-grey vertical gradient (RGB uint8)."""
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, bottom = np.array([120, 135, 150], np.float32), np.array([70, 80, 95], np.float32)
    return np.broadcast_to((1 - t) * top + t * bottom, (height, width, 3)).astype(np.uint8)


def render_hand_video(
    n_frames: int = 60,
    size: tuple[int, int] = (640, 480),
    hands: int = 1,
    seed: int = 0,
    depth: float = 0.45,
    renderer=None,
    color_by_side: bool = False,
) -> SyntheticVideo:
    """Render `hands` (1: a right hand; 2: right and left) waving slowly in front of the default camera."""
    import torch

    from handmesh.data.synth import canonical_orientation
    from handmesh.geometry import matrix_to_axis_angle
    from handmesh.hand_model import load_hand_model, mirror_faces, mirror_vertices
    from handmesh.hand_model.prior import named_pose
    from handmesh.render import MeshRenderer

    width, height = size
    K = default_intrinsics(width, height)
    hand = load_hand_model(side="right")
    R0 = torch.as_tensor(canonical_orientation(hand))
    rest = torch.as_tensor(named_pose("relaxed"), dtype=torch.float32)[None] - hand.hands_mean[None].float()
    own = renderer is None
    renderer = renderer or MeshRenderer(width, height)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    bg = background(width, height)
    frames, dets, truth = [], [], []
    try:
        for i in range(n_frames):
            meshes, frame_dets, frame_joints = [], [], []
            for h in range(hands):
                side = "right" if h == 0 else "left"
                a = 2 * np.pi * i / max(n_frames, 1) + phase[h]
                # a slow wave: in-plane tilt and a small circle, fingers curling a little
                tilt = torch.tensor(0.25 * np.sin(a))
                Rz = torch.tensor(
                    [[torch.cos(tilt), -torch.sin(tilt), 0], [torch.sin(tilt), torch.cos(tilt), 0], [0, 0, 1]]
                )
                orient = matrix_to_axis_angle(Rz.double() @ R0.double())[None].float()
                pose = rest * (1.0 + 0.3 * np.sin(2 * a))
                with torch.no_grad():
                    out = hand(global_orient=orient, hand_pose=pose)
                v = out.vertices[0].double().numpy()
                j = out.joints[0].double().numpy()
                centre = j.mean(0)
                offset_x = 0.0 if hands == 1 else (-0.11 if side == "right" else 0.11)
                shift = np.array([offset_x + 0.02 * np.cos(a), 0.015 * np.sin(a), depth]) - centre
                v, j = v + shift, j + shift
                faces = hand.faces
                if side == "left":
                    # the left hand is the right one mirrored about its own centre
                    c = j.mean(0)
                    v, j = mirror_vertices(v - c) + c, mirror_vertices(j - c) + c
                    faces = mirror_faces(faces)
                color = (RIGHT_COLOR if side == "right" else LEFT_COLOR) if color_by_side else SKIN
                meshes.append((v, faces, color))
                frame_joints.append(j)
                uv = project_points_np(j, K)
                box = np.concatenate([uv.min(0), uv.max(0)])
                frame_dets.append(
                    HandDetection(
                        box=box, handedness=side, score=1.0, keypoints2d=uv, keypoints3d=j - j.mean(0)
                    )
                )
            frames.append(renderer.overlay(bg, meshes, K, opacity=1.0))
            dets.append(frame_dets)
            truth.append(frame_joints)
    finally:
        if own:
            renderer.close()
    return SyntheticVideo(frames=np.stack(frames), K=K, detections=dets, joints=truth)


def iter_y4m_frames(frames: np.ndarray) -> Iterator[bytes]:
    """YUV 4:2:0 planes (BT.601, full range) of each RGB frame, as written in a Y4M file."""
    for rgb in frames:
        f = rgb.astype(np.float32)
        r, g, b = f[..., 0], f[..., 1], f[..., 2]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        u = (b - y) * 0.564 + 128.0
        v = (r - y) * 0.713 + 128.0
        h, w = y.shape
        u = u.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        v = v.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        planes = [np.clip(p + 0.5, 0, 255).astype(np.uint8) for p in (y, u, v)]
        yield b"FRAME\n" + b"".join(p.tobytes() for p in planes)


def write_y4m(path, frames: np.ndarray, fps: int = 30) -> None:
    """Write RGB frames (N, H, W, 3), even H and W, as an uncompressed YUV4MPEG2 C420 video."""
    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError("Y4M 4:2:0 needs even width and height")
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420\n".encode())
        for chunk in iter_y4m_frames(frames):
            fh.write(chunk)


def write_examples(folder, size: tuple[int, int] = (640, 480), frames: int = 30) -> tuple[Path, Path]:
    """Example inputs for the demo, rendered from the hand model: a still of two hands and a short video.

    Returns (image path, video path); the video is H.264 MP4 when PyAV is installed (else VP8 WebM).
    """
    from handmesh.pipeline.media import VideoWriter, h264_available, write_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    still = render_hand_video(1, size=size, hands=2, seed=5)
    image = folder / "example_two_hands.png"
    write_image(image, still.frames[0])
    clip = render_hand_video(frames, size=size, hands=1, seed=7)
    video = folder / ("example_wave" + (".mp4" if h264_available() else ".webm"))
    with VideoWriter(video, 30, size) as writer:
        for frame in clip.frames:
            writer.write(frame)
    return image, video
