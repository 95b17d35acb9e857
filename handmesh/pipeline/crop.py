"""Square hand crops with consistent intrinsics; left hands are flipped so the model sees a right hand.

Mirroring, done properly: flipping the crop image horizontally maps crop pixel u to S-1-u. Seen through
the crop intrinsics K_c that is the camera [[fx, 0, S-1-cx], [0, fy, cy], [0, 0, 1]] looking at the world
mirrored in x — only when cx = (S-1)/2 is that K_c itself. `handmesh.models.camera.crop_to_camera`
(with `mirrored=True`) places the prediction in that mirrored camera and negates x, so `Crop.K` keeps
the un-flipped crop intrinsics and `Crop.mirrored` says the image was flipped.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from handmesh.errors import HandmeshError
from handmesh.geometry_np import crop_affine_np


@dataclasses.dataclass
class Crop:
    """A model input: the crop image and the intrinsics of the camera that sees exactly it."""

    image: np.ndarray  # (S, S, 3) uint8 RGB; horizontally flipped when `mirrored`
    K: np.ndarray  # (3, 3) intrinsics of the crop as cut from the frame (before any flip)
    box: np.ndarray  # (4,) square [x0, y0, x1, y1] in frame pixels
    mirrored: bool


MAX_HANDS_LIMIT = 10


def check_view_options(fov: float, max_hands: int) -> None:
    """Refuse a field of view or hand count that would give silent nonsense (NaN in the outputs, a hand
    behind the camera, nothing detected) with one line naming the option."""
    if isinstance(fov, bool) or not isinstance(fov, int | float) or not 1.0 <= fov <= 179.0:
        raise HandmeshError(f"--fov {fov}: the horizontal field of view must be between 1 and 179 degrees")
    if isinstance(max_hands, bool) or not isinstance(max_hands, int) or not 1 <= max_hands <= MAX_HANDS_LIMIT:
        raise HandmeshError(f"--max-hands {max_hands}: must be an integer from 1 to {MAX_HANDS_LIMIT}")


def default_intrinsics(width: int, height: int, fov_deg: float = 60.0) -> np.ndarray:
    """Pinhole K for an uncalibrated camera: horizontal field of view `fov_deg`, centred principal point."""
    check_view_options(fov_deg, 1)
    f = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def square_box(box: np.ndarray, scale: float = 1.5, min_size: float = 16.0) -> np.ndarray:
    """A square box around `box`'s centre, side = scale * its longer side (at least `min_size` px)."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    half = max(scale * max(x1 - x0, y1 - y0), min_size) / 2.0
    return np.array([cx - half, cy - half, cx + half, cy + half])


def crop_hand(frame: np.ndarray, box: np.ndarray, K: np.ndarray, size: int, mirror: bool = False) -> Crop:
    """Cut the square `box` out of the frame, resized to size x size (flipped when `mirror`)."""
    box = np.asarray(box, dtype=np.float64)
    A = crop_affine_np(box, size)
    K_crop = A @ np.asarray(K, dtype=np.float64)
    image = cv2.warpAffine(
        frame, A[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    if mirror:
        image = cv2.flip(image, 1)  # u -> size-1-u, the flip `camera.flip_intrinsics` assumes
    return Crop(image=image, K=K_crop, box=box, mirrored=bool(mirror))
