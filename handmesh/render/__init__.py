"""Rendering hand meshes over camera frames: offscreen pyrender (EGL) and the overlay around it.

- `renderer`: `MeshRenderer` (render meshes through OpenCV intrinsics; overlays on frames);
- `overlay`: overlay planning (regions, their cameras), compositing and skeleton drawing, without GL;
- `egl`: every pyrender/EGL workaround, in one place.

The GL modules load on first use (PEP 562), so `handmesh.render.overlay` imports without a GL driver.
"""

from __future__ import annotations

from handmesh.lazy import lazy_exports
from handmesh.render.overlay import (
    LEFT_COLOR,
    RIGHT_COLOR,
    Mesh,
    composite,
    draw_skeleton,
    plan_overlay,
)

__all__ = [
    "LEFT_COLOR",
    "RIGHT_COLOR",
    "Mesh",
    "MeshRenderer",
    "composite",
    "draw_skeleton",
    "plan_overlay",
    "vertex_normals",
]

__getattr__ = lazy_exports(
    __name__, {"MeshRenderer": "handmesh.render.renderer", "vertex_normals": "handmesh.geometry_np"}
)
