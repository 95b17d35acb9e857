"""`MeshRenderer`: hand meshes drawn by pyrender through OpenCV intrinsics, and overlays on camera frames."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

# pyrender only through egl, which picks the GL platform and loads triton before pyrender loads GL
from handmesh.render.egl import Offscreen, pyrender
from handmesh.render.overlay import Mesh, composite, fit_patch, plan_overlay

# OpenCV (x right, y down, z forward) -> OpenGL (x right, y up, z backward); a rotation, so face
# winding (and thus back-face culling) is preserved.
_CV_TO_GL = np.array([1.0, -1.0, -1.0], dtype=np.float32)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (smooth shading), following the faces' winding."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_n)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(norm, 1e-12)


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


class MeshRenderer:
    """One offscreen pyrender renderer, reused across frames (never a GL context per frame); thread-safe."""

    def __init__(self, width: int = 640, height: int = 480, znear: float = 0.01, zfar: float = 20.0):
        self.width, self.height = int(width), int(height)
        self._offscreen = Offscreen(self.width, self.height)
        # Gradio calls handlers from worker threads; an EGL context may be current in one thread only.
        self._lock = threading.Lock()
        self._scene = pyrender.Scene(bg_color=(0.0, 0.0, 0.0, 0.0), ambient_light=(0.22, 0.21, 0.2))
        self._camera = pyrender.IntrinsicsCamera(fx=500, fy=500, cx=320, cy=240, znear=znear, zfar=zfar)
        self._scene.add(self._camera, pose=np.eye(4))
        # Light rig in the camera frame: key light from the upper left, fill from the right, a rim
        # light from behind-above so finger outlines separate from the palm.
        for direction, intensity, color in (
            ((0.5, -0.6, -1.0), 2.3, (1.0, 0.97, 0.92)),  # key: shines down-right, away from camera
            ((-0.8, -0.1, -0.6), 0.9, (0.9, 0.94, 1.0)),  # fill
            ((0.0, -0.7, 0.8), 1.3, (1.0, 1.0, 1.0)),  # rim: from behind the hand towards the camera
        ):
            light = pyrender.DirectionalLight(color=np.array(color), intensity=intensity)
            self._scene.add(light, pose=_look_at_pose(direction))

    def close(self) -> None:
        """Free the GL context (and the EGL display, when no other renderer is left)."""
        with self._lock:
            self._offscreen.close()

    def _mesh_node(self, vertices: np.ndarray, faces: np.ndarray, color: Sequence[float]) -> pyrender.Mesh:
        verts = np.asarray(vertices, dtype=np.float32) * _CV_TO_GL
        faces = np.asarray(faces, dtype=np.int64)
        normals = vertex_normals(verts, faces).astype(np.float32)
        rgba = np.clip(np.asarray(list(color) + [1.0] * (4 - len(color)), dtype=np.float32), 0.0, 1.0)
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=rgba, metallicFactor=0.0, roughnessFactor=0.55, alphaMode="OPAQUE"
        )
        prim = pyrender.Primitive(
            positions=verts, normals=normals, indices=faces.astype(np.uint32), material=material
        )
        return pyrender.Mesh([prim])

    def render(
        self, meshes: Sequence[Mesh], K: np.ndarray, size: tuple[int, int] | None = None, depth: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Render meshes seen through OpenCV intrinsics K: (rgba uint8 (H,W,4), depth float32 (H,W), 0 = empty).

        With `depth=False` the depth map is not read back (cheaper) and None is returned in its place.
        """
        width, height = size if size is not None else (self.width, self.height)
        if not meshes:
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
            nodes = [self._scene.add(self._mesh_node(v, f, c)) for v, f, c in meshes]
            try:
                rgba, depth_map = self._offscreen.render(self._scene, (width, height), depth)
            finally:
                for node in nodes:
                    self._scene.remove_node(node)
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
