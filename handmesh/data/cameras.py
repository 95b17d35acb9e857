"""What counts as a camera and as a labelled point in front of it: the bounds every dataset check shares
(a leaf module: the custom reader and the dataset checks both use it)."""

from __future__ import annotations

import numpy as np

MIN_DEPTH_M = 1e-3  # a labelled point closer to the camera than 1 mm projects anywhere (fx / z)
# Intrinsics in pixels: images are at most 8192 px a side; a focal length of 1e-300 or a skew of 1e12 is
# finite but no camera, and training would skip every batch holding it.
MIN_FOCAL_PX = 1.0
MAX_CAMERA_PX = 1e5


def camera_problem(K: np.ndarray) -> str | None:
    """What makes a 3x3 matrix no pinhole camera in pixels, in words (None: a plausible camera)."""
    if not (np.isfinite(K).all() and np.all(np.abs(K[2] - [0, 0, 1]) < 1e-9) and K[1, 0] == 0):
        return "no camera matrix ([[fx, s, cx], [0, fy, cy], [0, 0, 1]])"
    if not (MIN_FOCAL_PX <= K[0, 0] <= MAX_CAMERA_PX and MIN_FOCAL_PX <= K[1, 1] <= MAX_CAMERA_PX):
        return f"a camera with focal lengths {K[0, 0]:.3g}, {K[1, 1]:.3g} px (allowed {MIN_FOCAL_PX:g}..{MAX_CAMERA_PX:g})"
    if np.abs(K[:2]).max() > MAX_CAMERA_PX:
        return f"a camera with skew or principal point up to {np.abs(K[:2]).max():.3g} px (limit {MAX_CAMERA_PX:g})"
    return None
