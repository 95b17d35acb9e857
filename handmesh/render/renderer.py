"""`MeshRenderer`: hand meshes drawn by pyrender through OpenCV intrinsics, and overlays on camera frames."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from handmesh.geometry_np import vertex_normals

# pyrender only through egl, which picks the GL platform and loads triton before pyrender loads GL
from handmesh.render.egl import Offscreen, pyrender
from handmesh.render.overlay import Mesh, composite, fit_patch, plan_overlay

# OpenCV (x right, y down, z forward) -> OpenGL (x right, y up, z backward); a rotation, so face
# winding (and thus back-face culling) is preserved.
_CV_TO_GL = np.array([1.0, -1.0, -1.0], dtype=np.float32)


def _look_at_pose(direction: Sequence[float]) -> np.ndarray:
    """Pose of a directional light shining along `direction` (pyrender lights shine along their -z)."""
    z = -np.asarray(direction, dtype=np.float64)
    z /= np.linalg.norm(z)
    up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = x, y, z
    return pose


@dataclass
class Light:
    """A directional light shining along `direction` (OpenCV camera frame), with its RGB colour."""

    direction: tuple[float, float, float]
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    intensity: float = 2.0


@dataclass
class Part:
    """A surface to render: vertices (V,3) in OpenCV camera space (metres), faces, and either one RGBA
    colour or per-vertex RGB colours (V,3), with its material's roughness."""

    vertices: np.ndarray
    faces: np.ndarray
    color: Sequence[float] | np.ndarray = (0.8, 0.8, 0.8, 1.0)
    roughness: float = 0.55
    normals: np.ndarray | None = None  # (V,3) OpenCV frame; None = smooth normals from the faces


# Light rig of overlays, in the camera frame: key light from the upper left, fill from the right, a rim
# light from behind-above so finger outlines separate from the palm.
DEFAULT_RIG = (
    Light((0.5, 0.6, 1.0), (1.0, 0.97, 0.92), 2.3),  # key: shines down-right, away from camera
    Light((-0.8, 0.1, 0.6), (0.9, 0.94, 1.0), 0.9),  # fill
    Light((0.0, 0.7, -0.8), (1.0, 1.0, 1.0), 1.3),  # rim: from behind the hand towards the camera
)
DEFAULT_AMBIENT = (0.22, 0.21, 0.2)


class MeshRenderer:
    """One offscreen pyrender renderer, reused across frames (never a GL context per frame); thread-safe."""

    def __init__(
        self, width: int = 640, height: int = 480, znear: float = 0.01, zfar: float = 20.0, samples: int = 4
    ):
        self.width, self.height = int(width), int(height)
        self._offscreen = Offscreen(self.width, self.height, samples)  # samples per pixel (1: no MSAA)
        # Gradio calls handlers from worker threads; an EGL context may be current in one thread only.
        self._lock = threading.Lock()
        self._scene = pyrender.Scene(bg_color=(0.0, 0.0, 0.0, 0.0), ambient_light=DEFAULT_AMBIENT)
        self._camera = pyrender.IntrinsicsCamera(fx=500, fy=500, cx=320, cy=240, znear=znear, zfar=zfar)
        self._scene.add(self._camera, pose=np.eye(4))
        self._rig = [
            self._scene.add(self._light(light), pose=self._light_pose(light)) for light in DEFAULT_RIG
        ]

    @staticmethod
    def _light(light: Light) -> pyrender.DirectionalLight:
        return pyrender.DirectionalLight(color=np.asarray(light.color, np.float64), intensity=light.intensity)

    @staticmethod
    def _light_pose(light: Light) -> np.ndarray:
        return _look_at_pose(np.asarray(light.direction, np.float64) * _CV_TO_GL)

    def close(self) -> None:
        """Free the GL context (and the EGL display, when no other renderer is left)."""
        with self._lock:
            self._offscreen.close()

    def _part_node(self, part: Part) -> pyrender.Mesh:
        verts = np.asarray(part.vertices, dtype=np.float32) * _CV_TO_GL
        faces = np.asarray(part.faces, dtype=np.int64)
        if part.normals is None:
            normals = vertex_normals(verts, faces).astype(np.float32)
        else:
            normals = np.asarray(part.normals, dtype=np.float32) * _CV_TO_GL
        color = np.asarray(part.color, dtype=np.float32)
        per_vertex = color.ndim == 2
        rgba = np.ones(4, np.float32) if per_vertex else np.clip(np.r_[color, [1.0] * (4 - len(color))], 0, 1)
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=rgba,
            metallicFactor=0.0,
            roughnessFactor=float(part.roughness),
            alphaMode="OPAQUE",
        )
        prim = pyrender.Primitive(
            positions=verts,
            normals=normals,
            indices=faces.astype(np.uint32),
            color_0=np.clip(color, 0, 1) if per_vertex else None,
            material=material,
        )
        return pyrender.Mesh([prim])

    def render(
        self, meshes: Sequence[Mesh], K: np.ndarray, size: tuple[int, int] | None = None, depth: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Render meshes seen through OpenCV intrinsics K: (rgba uint8 (H,W,4), depth float32 (H,W), 0 = empty).

        With `depth=False` the depth map is not read back (cheaper) and None is returned in its place.
        """
        return self.render_scene([Part(v, f, c) for v, f, c in meshes], K, size=size, depth=depth)

    def render_scene(
        self,
        parts: Sequence[Part],
        K: np.ndarray,
        size: tuple[int, int] | None = None,
        depth: bool = True,
        lights: Sequence[Light] | None = None,
        ambient: Sequence[float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Render parts through K under `lights` and `ambient` (default: the overlay rig), as `render`."""
        width, height = size if size is not None else (self.width, self.height)
        if not parts:
            empty = np.zeros((height, width), np.float32) if depth else None
            return np.zeros((height, width, 4), np.uint8), empty
        K = np.asarray(K, dtype=np.float64)
        with self._lock:
            if self._offscreen.closed:
                raise RuntimeError("MeshRenderer was closed")
            cam = self._camera
            # OpenCV puts pixel i's centre at coordinate i, pyrender's projection at i + 0.5: without the
            # half pixel every render sat half a pixel up-left of its labels, and a render of the mirrored
            # scene, flipped back, one pixel off the original
            cam.fx, cam.fy = float(K[0, 0]), float(K[1, 1])
            cam.cx, cam.cy = float(K[0, 2]) + 0.5, float(K[1, 2]) + 0.5
            nodes = [self._scene.add(self._part_node(p)) for p in parts]
            if lights is not None:
                for node in self._rig:
                    self._scene.remove_node(node)
                nodes += [self._scene.add(self._light(x), pose=self._light_pose(x)) for x in lights]
            if ambient is not None:
                self._scene.ambient_light = np.asarray(ambient, np.float64)
            try:
                rgba, depth_map = self._offscreen.render(self._scene, (width, height), depth)
            finally:
                for node in nodes:
                    self._scene.remove_node(node)
                if lights is not None:
                    for node in self._rig:
                        self._scene.add_node(node)
                self._scene.ambient_light = np.asarray(DEFAULT_AMBIENT, np.float64)
        if depth_map is not None:
            depth_map = np.asarray(depth_map, dtype=np.float32)
        return np.ascontiguousarray(rgba), depth_map

    def render_regions(
        self,
        meshes: Sequence[Mesh],
        K: np.ndarray,
        frame_size: tuple[int, int],
        margin: int = 6,
        max_render_size: int = 320,
    ) -> list[tuple[np.ndarray, tuple[int, int]]]:
        """Patches (rgba, (x0, y0)) covering the meshes on a (width, height) frame, one per group of
        meshes whose regions overlap (`overlay.plan_overlay`); empty when nothing is on screen."""
        patches = []
        for view in plan_overlay(meshes, K, frame_size, margin, max_render_size):
            rgba, _ = self.render(view.meshes, view.K, size=view.viewport, depth=False)
            patches.append((fit_patch(rgba, view), view.box[:2]))
        return patches

    def overlay(
        self,
        frame: np.ndarray,
        meshes: Sequence[Mesh],
        K: np.ndarray,
        opacity: float = 0.85,
        margin: int = 6,
        max_render_size: int = 320,
        timings: dict[str, float] | None = None,
    ) -> np.ndarray:
        """Composite the meshes over an RGB frame (a new array), rendering only the hands' regions.

        Returns `frame` itself when no mesh is on screen. `timings`, when given, receives the
        milliseconds spent rendering ("render") and blending ("composite").
        """
        height, width = frame.shape[:2]
        t0 = time.perf_counter()
        patches = self.render_regions(meshes, K, (width, height), margin, max_render_size)
        t1 = time.perf_counter()
        out = frame
        for rgba, offset in patches:
            out = composite(out, rgba, offset, opacity)
        if timings is not None:
            timings["render"] = (t1 - t0) * 1000.0
            timings["composite"] = (time.perf_counter() - t1) * 1000.0
        return out
