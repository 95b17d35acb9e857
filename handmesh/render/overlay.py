"""Overlay planning and drawing without GL: which regions of a frame to render, with which camera, and
how a rendered patch is blended in (numpy and OpenCV only, testable without a GL driver).

A hand covers a small part of a webcam frame, and software GL's cost grows with the pixels rendered,
so an overlay renders only the hands' regions: one region per group of hands whose boxes overlap (so
they occlude each other correctly), each at most `max_render_size` pixels a side (larger regions render
smaller and are upsampled; the 4x MSAA keeps edges clean).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from handmesh.geometry_np import project_points_np

# A mesh to draw: (vertices (V,3) OpenCV camera space, metres; faces (F,3); rgba colour in [0,1]).
Mesh = tuple[np.ndarray, np.ndarray, Sequence[float]]
Box = tuple[int, int, int, int]

# Colours by handedness that stand out on skin of any tone (as HaMeR and WiLoR draw them): light blue
# for right hands, light purple for left ones.
RIGHT_COLOR = (0.55, 0.75, 0.98, 1.0)
LEFT_COLOR = (0.80, 0.62, 0.98, 1.0)
# A hand the plausibility check rejects is drawn in neutral grey and tagged "L?"/"R?": still shown (it
# may be right), but never mistaken for a confident answer.
IMPLAUSIBLE_COLOR = (0.45, 0.45, 0.45, 1.0)

# Viewport sizes are rounded up to this so the framebuffer is not reallocated every frame.
VIEWPORT_STEP = 32
# Vertices nearer than 1 mm (or behind the camera) are left out of a region's box.
MIN_DEPTH = 1e-3


@dataclass
class RegionView:
    """One region to render: its meshes, its box in the frame, and the camera that renders just it."""

    meshes: list[Mesh]
    box: Box  # (x0, y0, x1, y1) frame pixels
    K: np.ndarray  # (3,3) intrinsics of the region's render
    render_size: tuple[int, int]  # (width, height) rendered; upsampled to the box's size when smaller
    viewport: tuple[int, int]  # (width, height) of the framebuffer (render_size rounded up)


def region_box(
    meshes: Sequence[Mesh], K: np.ndarray, frame_size: tuple[int, int], margin: int = 6
) -> Box | None:
    """Pixel box (x0, y0, x1, y1) covering the meshes' projection, clipped to the frame; None if off-screen."""
    width, height = frame_size
    pts = [np.asarray(v, dtype=np.float64) for v, _, _ in meshes]
    pts = [p[p[:, 2] > MIN_DEPTH] for p in pts]
    pts = [p for p in pts if len(p)]
    if not pts:
        return None
    uv = project_points_np(np.concatenate(pts), K)
    x0, y0 = np.floor(uv.min(axis=0)) - margin
    x1, y1 = np.ceil(uv.max(axis=0)) + margin
    x0, y0 = int(max(x0, 0)), int(max(y0, 0))
    x1, y1 = int(min(x1, width)), int(min(y1, height))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def group_regions(
    meshes: Sequence[Mesh], K: np.ndarray, frame_size: tuple[int, int], margin: int = 6
) -> list[tuple[list[Mesh], Box]]:
    """Meshes grouped so that groups' boxes do not overlap: (members, box) per group, off-screen ones dropped."""
    groups: list[tuple[list[Mesh], Box]] = []
    for mesh in meshes:
        box = region_box([mesh], K, frame_size, margin)
        if box is None:
            continue
        members = [mesh]
        merged = True
        while merged:  # absorb every group this box touches, growing the box each time
            merged = False
            for g in groups:
                if _overlap(box, g[1]):
                    groups.remove(g)
                    members = g[0] + members
                    gb = g[1]
                    box = (min(box[0], gb[0]), min(box[1], gb[1]), max(box[2], gb[2]), max(box[3], gb[3]))
                    merged = True
                    break
        groups.append((members, box))
    return groups


def region_view(meshes: list[Mesh], box: Box, K: np.ndarray, max_render_size: int = 320) -> RegionView:
    """The camera and sizes that render exactly `box` of the frame, at most `max_render_size` a side."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    scale = min(1.0, max_render_size / max(w, h))
    rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
    sx, sy = rw / w, rh / h
    # Shifting (and scaling) the principal point renders just this window of the camera's image;
    # the +-0.5 terms keep pixel centres aligned under cv2.resize's convention.
    K_region = np.array(K, dtype=np.float64, copy=True)
    K_region[0, 0] *= sx
    K_region[1, 1] *= sy
    K_region[0, 2] = (K_region[0, 2] - x0 + 0.5) * sx - 0.5
    K_region[1, 2] = (K_region[1, 2] - y0 + 0.5) * sy - 0.5
    viewport = (-(-rw // VIEWPORT_STEP) * VIEWPORT_STEP, -(-rh // VIEWPORT_STEP) * VIEWPORT_STEP)
    return RegionView(meshes, box, K_region, (rw, rh), viewport)


def plan_overlay(
    meshes: Sequence[Mesh],
    K: np.ndarray,
    frame_size: tuple[int, int],
    margin: int = 6,
    max_render_size: int = 320,
) -> list[RegionView]:
    """Every region an overlay of `meshes` on a (width, height) frame renders; empty when none is on screen."""
    K = np.asarray(K, dtype=np.float64)
    return [
        region_view(m, box, K, max_render_size) for m, box in group_regions(meshes, K, frame_size, margin)
    ]


def fit_patch(rgba: np.ndarray, view: RegionView) -> np.ndarray:
    """A region's rendered viewport cut to its render size and scaled to its box (RGBA, box height x width)."""
    rw, rh = view.render_size
    x0, y0, x1, y1 = view.box
    rgba = rgba[:rh, :rw]
    if (rw, rh) != (x1 - x0, y1 - y0):
        rgba = cv2.resize(rgba, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return rgba


def composite(
    frame: np.ndarray, rgba: np.ndarray, offset: tuple[int, int] = (0, 0), opacity: float = 1.0
) -> np.ndarray:
    """Blend a premultiplied RGBA patch over a copy of an RGB frame at `offset` (x, y).

    pyrender draws on transparent black, so its anti-aliased edges are premultiplied by coverage.
    """
    out = frame.copy()
    x0, y0 = offset
    h, w = rgba.shape[:2]
    patch = out[y0 : y0 + h, x0 : x0 + w]
    opacity = float(opacity)
    alpha = rgba[..., 3:4].astype(np.float32) * (opacity / 255.0)
    blended = patch.astype(np.float32) * (1.0 - alpha) + rgba[..., :3].astype(np.float32) * opacity
    out[y0 : y0 + h, x0 : x0 + w] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out


def draw_skeleton(
    image: np.ndarray,
    joints2d: np.ndarray,
    color: Sequence[int] = (255, 255, 255),
    thickness: int = 2,
    parents: Sequence[int] | None = None,
) -> np.ndarray:
    """Draw 21 FreiHAND-order joints and their bones on the image in place; returns it."""
    if parents is None:
        from handmesh.hand_model.joints import FREIHAND_PARENTS

        parents = FREIHAND_PARENTS
    pts = np.round(np.asarray(joints2d, dtype=np.float64)).astype(np.int64)
    color = tuple(int(c) for c in color)
    for child, parent in enumerate(parents):
        if parent is not None and parent >= 0:
            cv2.line(
                image,
                tuple(map(int, pts[parent])),
                tuple(map(int, pts[child])),
                color,
                thickness,
                cv2.LINE_AA,
            )
    for p in pts:
        cv2.circle(image, (int(p[0]), int(p[1])), thickness + 1, color, -1, cv2.LINE_AA)
    return image


def draw_side_tag(image: np.ndarray, text: str, box: Sequence[float], color: Sequence[int]) -> np.ndarray:
    """Draw a short tag ("L"/"R") in a filled badge by the top-left corner of a hand's box, in place."""
    h, w = image.shape[:2]
    scale = max(0.5, min(1.2, (box[2] - box[0]) / 160.0))  # readable on small and large hands
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    x = int(np.clip(box[0], 0, max(w - tw - 8, 0)))
    y = int(np.clip(box[1] - 6, th + 8, h - 1))
    cv2.rectangle(image, (x, y - th - 8), (x + tw + 8, y + base - 2), tuple(int(c) for c in color), -1)
    cv2.putText(image, text, (x + 4, y - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return image
