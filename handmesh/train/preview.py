"""The TensorBoard mesh grid: predicted meshes drawn over validation inputs.

Drawing needs an offscreen GL context (EGL). A machine without one can still train: the first failure to
create the renderer is reported once and the grid is skipped from then on. Only creating the renderer is
guarded; an error while drawing is a bug and stops the run like any other.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Preview:
    """The first validation samples: input images (N,3,S,S) in [0,1], crop intrinsics and predicted
    camera-space vertices."""

    image: torch.Tensor
    K: torch.Tensor
    vertices: torch.Tensor


def _no_gl_errors() -> tuple[type[BaseException], ...]:
    """What creating a renderer raises where there is no usable GL: a missing library (ImportError,
    OSError), an unknown or broken platform (ValueError, RuntimeError) or an EGL/GL call failing."""
    errors: tuple[type[BaseException], ...] = (ImportError, OSError, RuntimeError, ValueError)
    try:
        from OpenGL.error import Error as GLError
    except ImportError:
        return errors
    return (*errors, GLError)


def open_renderer(size: int) -> Any:
    """A `MeshRenderer` of `size` x `size` pixels (imported here: GL loads only when a grid is drawn)."""
    from handmesh.render import MeshRenderer

    return MeshRenderer(size, size)


def render_grid(preview: Preview, faces: np.ndarray, renderer: Any, up: int, nrow: int = 4) -> np.ndarray:
    """Each predicted mesh over its (upscaled by `up`) input, as one (3,H,W) uint8 grid."""
    import cv2
    import torchvision

    from handmesh.render import RIGHT_COLOR

    size = preview.image.shape[-1] * up
    tiles = []
    for img, K, verts in zip(preview.image, preview.K, preview.vertices, strict=True):
        frame = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_NEAREST)
        K_up = K.double().numpy().copy()
        K_up[:2] *= up
        K_up[:2, 2] += (up - 1) / 2.0  # pixel centres sit at integer coordinates (OpenCV)
        drawn = renderer.overlay(frame, [(verts.numpy(), faces, RIGHT_COLOR)], K_up, 0.6)
        tiles.append(torch.from_numpy(np.ascontiguousarray(drawn)).permute(2, 0, 1))
    return torchvision.utils.make_grid(torch.stack(tiles), nrow=min(nrow, len(tiles))).numpy()


class MeshGrid:
    """Draws validation previews for TensorBoard; gives up (saying so once) where no renderer can be made."""

    def __init__(self, faces: np.ndarray | None, min_tile: int = 160):
        self.faces, self.min_tile = faces, min_tile
        self.unavailable: str | None = None if faces is not None else "the model has no mesh faces"

    def __call__(self, preview: Preview | None) -> np.ndarray | None:
        """The grid image (3,H,W) uint8, or None when there is nothing to draw or no renderer."""
        if preview is None or len(preview.image) == 0 or self.unavailable is not None:
            return None
        # small training inputs are upscaled so that the meshes are legible
        up = max(1, math.ceil(self.min_tile / preview.image.shape[-1]))
        try:
            renderer = open_renderer(preview.image.shape[-1] * up)
        except _no_gl_errors() as exc:
            self.unavailable = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
            print(f"[train] mesh image grid off: no offscreen renderer ({self.unavailable})", file=sys.stderr)
            return None
        try:
            return render_grid(preview, self.faces, renderer, up)
        finally:
            renderer.close()
