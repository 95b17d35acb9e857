"""`HandRecord`: one annotated hand in a full, uncropped image — what every reader hands to the transforms."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass
class HandRecord:
    """A hand in its source image: labels in the source camera, any of them may be absent (None)."""

    image: np.ndarray  # (H,W,3) uint8 RGB
    K: np.ndarray  # (3,3) intrinsics of `image`
    side: str = "right"  # "right" | "left"
    joints3d: np.ndarray | None = None  # (21,3) metres, camera frame, FreiHAND order
    vertices: np.ndarray | None = None  # (778,3) metres, camera frame
    keypoints2d: np.ndarray | None = None  # (21,2) pixels of `image`
    keypoints_conf: np.ndarray | None = None  # (21,) 0..1, 0 = unlabelled
    mano_pose: np.ndarray | None = None  # (48,) axis-angle, 3 global + 45 relative to the mean hand
    betas: np.ndarray | None = None  # (10,)
    box: np.ndarray | None = None  # (4,) x0,y0,x1,y1 pixels
    mask: np.ndarray | None = None  # (H,W) bool hand silhouette
    weight: float = 1.0  # per-sample confidence
    K_estimated: bool = False  # K was guessed (not labelled): 3D labels must not be projected with it
    index: int = 0

    def copy(self, **changes) -> HandRecord:
        """A shallow copy with some fields replaced."""
        return replace(self, **changes)
