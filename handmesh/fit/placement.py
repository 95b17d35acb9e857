"""Closed-form translation that places 3D points over their 2D keypoints in a pinhole camera."""

from __future__ import annotations

import numpy as np

# A hand closer than this to the camera is not a plausible solution; fall back to the size ratio.
MIN_DEPTH = 0.05


def depth_from_size(points: np.ndarray, keypoints2d: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Rough depth (B,) of the points' centroid: focal length times 3D spread over 2D spread."""
    spread3 = np.linalg.norm(points[..., :2] - points[..., :2].mean(-2, keepdims=True), axis=-1).mean(-1)
    spread2 = np.linalg.norm(keypoints2d - keypoints2d.mean(-2, keepdims=True), axis=-1).mean(-1)
    focal = 0.5 * (K[:, 0, 0] + K[:, 1, 1])
    return focal * spread3 / np.maximum(spread2, 1e-6)


def translation_to_keypoints(
    points: np.ndarray, keypoints2d: np.ndarray, K: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Offset d (B,3) so that points (B,N,3) + d project onto keypoints2d (B,N,2) with K (B,3,3).

    Linear least squares on the algebraic reprojection error: each point gives
    (X + dx) - a (Z + dz) = 0 and (Y + dy) - b (Z + dz) = 0 with (a, b, 1) = K^-1 (u, v, 1); across a
    hand depth varies little, so this is the pixel error up to a near-constant factor. When the
    solution puts a point nearer than MIN_DEPTH (degenerate keypoints), the centroid goes on its ray at
    the depth the size ratio gives instead.
    """
    batch, n = points.shape[:2]
    # K^-1 of an upper-triangular pinhole K written out (a LAPACK inverse costs more than the whole solve).
    fx, fy, skew = K[:, 0, 0, None], K[:, 1, 1, None], K[:, 0, 1, None]
    b = (keypoints2d[..., 1] - K[:, 1, 2, None]) / fy
    a = (keypoints2d[..., 0] - K[:, 0, 2, None] - skew * b) / fx
    rays = np.stack([a, b, np.ones_like(a)], -1)
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    w = np.ones((batch, n)) if weights is None else weights
    # Normal equations of the 2N x 3 system, written out: rows (1, 0, -a) and (0, 1, -b).
    sw, swa, swb = w.sum(-1), (w * a).sum(-1), (w * b).sum(-1)
    normal = np.zeros((batch, 3, 3))
    normal[:, 0, 0] = normal[:, 1, 1] = sw
    normal[:, 0, 2] = normal[:, 2, 0] = -swa
    normal[:, 1, 2] = normal[:, 2, 1] = -swb
    normal[:, 2, 2] = (w * (a * a + b * b)).sum(-1)
    ra, rb = a * z - x, b * z - y
    rhs = np.stack([(w * ra).sum(-1), (w * rb).sum(-1), -(w * (a * ra + b * rb)).sum(-1)], -1)
    delta = np.linalg.solve(normal, rhs[..., None])[..., 0]
    bad = (z + delta[:, 2:3]).min(-1) < MIN_DEPTH
    if bad.any():
        depth = depth_from_size(points, keypoints2d, K)
        fallback = rays.mean(-2) * depth[:, None] - points.mean(-2)
        delta = np.where(bad[:, None], fallback, delta)
    return delta
