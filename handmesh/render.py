"""Offscreen pyrender (EGL) rendering of hand meshes and their composite over camera frames."""

from __future__ import annotations

import importlib.util
import os
import threading
import weakref
from collections.abc import Sequence

# pyrender picks its GL platform when it is imported; EGL is the one that works headless here.
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def _preload_triton() -> None:
    """Import triton (torch's GPU compiler) before Mesa's GL driver loads.

    Both bring their own LLVM; importing triton after an llvmpipe EGL context exists segfaults (seen
    here with torch 2.14 / triton 3.8 when timm pulls in torch._dynamo). The other order is fine.
    """
    if importlib.util.find_spec("triton") is None:
        return
    try:
        import triton  # noqa: F401
    except Exception:  # a broken triton only matters to torch.compile, not to rendering
        pass


_preload_triton()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pyrender  # noqa: E402

# A mesh to draw: (vertices (V,3) OpenCV camera space, metres; faces (F,3); rgba colour in [0,1]).
Mesh = tuple[np.ndarray, np.ndarray, Sequence[float]]

# Colours by handedness: a warm skin-like tone for right hands, a cool blue for left ones.
RIGHT_COLOR = (0.98, 0.75, 0.55, 1.0)
LEFT_COLOR = (0.55, 0.72, 0.98, 1.0)
HAND_COLORS = {"right": RIGHT_COLOR, "left": LEFT_COLOR}

# OpenCV (x right, y down, z forward) -> OpenGL (x right, y up, z backward); a rotation, so face
# winding (and thus back-face culling) is preserved.
_CV_TO_GL = np.array([1.0, -1.0, -1.0], dtype=np.float32)
# Viewport sizes are rounded up to this so the framebuffer is not reallocated every frame.
_VIEWPORT_STEP = 32


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


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection of (N,3) camera-space points to (N,2) pixels."""
    z = np.maximum(points[:, 2:3], 1e-6)
    return (points[:, :2] / z) * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])


class MeshRenderer:
    """One offscreen pyrender renderer, reused across frames (never a GL context per frame)."""

    # pyrender's EGL platform calls eglTerminate on the process-wide EGL display when a renderer is
    # deleted, which kills every other renderer's context; only the last one alive may do that.
    _alive = 0
    _alive_lock = threading.Lock()

    def __init__(self, width: int = 640, height: int = 480, znear: float = 0.01, zfar: float = 20.0):
        self.width, self.height = int(width), int(height)
        _delete_dropped()
        self._renderer = pyrender.OffscreenRenderer(self.width, self.height)
        with MeshRenderer._alive_lock:
            MeshRenderer._alive += 1
        self._want_depth = [True]  # a list: shared with the readback hook without a reference cycle
        self._install_color_only_readback()
        self._release_context()
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

    def _install_color_only_readback(self) -> None:
        """Let renders that need no depth skip pyrender's depth readback.

        pyrender always resolves, reads back and linearizes the depth buffer after a render; in
        software GL that is a quarter of an overlay's cost (measured: 8.9 -> 6.6 ms for a 227x156
        hand region) and the overlay never uses it. The hook wraps pyrender 0.1.45's (pinned) private
        readback and falls back to it whenever depth is wanted or its internals are not as expected.
        """
        inner = getattr(self._renderer, "_renderer", None)
        original = getattr(type(inner), "_read_main_framebuffer", None)
        if original is None or not hasattr(inner, "_main_fb_ms"):
            return
        from OpenGL import GL

        # No strong reference back to the renderers: a cycle would leave their deletion to the cyclic
        # garbage collector, which may run it in the middle of another renderer's draw.
        inner_ref = weakref.ref(inner)
        want_depth = self._want_depth

        def read(scene, flags):
            r = inner_ref()
            if want_depth[0] or not flags & pyrender.RenderFlags.RGBA:
                return original(r, scene, flags)
            width, height = r._main_fb_dims
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, r._main_fb_ms)
            GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, r._main_fb)
            GL.glBlitFramebuffer(
                0, 0, width, height, 0, 0, width, height, GL.GL_COLOR_BUFFER_BIT, GL.GL_LINEAR
            )
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, r._main_fb)
            buf = GL.glReadPixels(0, 0, width, height, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE)
            color = np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 4)
            return np.flip(color, axis=0), None

        inner._read_main_framebuffer = read

    def _release_context(self) -> None:
        """Detach the GL context from the calling thread.

        An EGL context can be current in one thread only, and pyrender's EGL platform never releases it
        (its make_uncurrent is a no-op). Gradio calls handlers from a thread pool, so every render
        releases the context for whichever thread renders next.
        """
        platform = getattr(self._renderer, "_platform", None)
        display = getattr(platform, "_egl_display", None)
        if display is None:
            return
        from OpenGL import EGL

        EGL.eglMakeCurrent(display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, EGL.EGL_NO_CONTEXT)

    def close(self) -> None:
        """Free the GL context (and the EGL display, when no other renderer is left)."""
        with self._lock:
            if self._renderer is not None:
                _delete_offscreen(self._renderer)
                self._renderer = None
        _delete_dropped()

    def __del__(self):  # pragma: no cover - garbage collection
        # The collector may run this in the middle of another renderer's draw on this thread, where
        # switching EGL contexts would break that draw: the context is freed at the next safe point.
        renderer = self.__dict__.get("_renderer")
        if renderer is not None:
            _DROPPED.append(renderer)
            self._renderer = None

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
        _delete_dropped()
        with self._lock:
            if self._renderer is None:
                raise RuntimeError("MeshRenderer was closed")
            cam = self._camera
            cam.fx, cam.fy, cam.cx, cam.cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
            nodes = [self._scene.add(self._mesh_node(v, f, c)) for v, f, c in meshes]
            self._want_depth[0] = depth
            try:
                self._renderer.viewport_width, self._renderer.viewport_height = width, height
                rgba, depth_map = self._renderer.render(self._scene, flags=pyrender.RenderFlags.RGBA)
            finally:
                self._want_depth[0] = True
                self._release_context()
                for node in nodes:
                    self._scene.remove_node(node)
        if depth_map is not None:
            depth_map = np.asarray(depth_map, dtype=np.float32)
        return np.ascontiguousarray(rgba), depth_map

    def region(
        self, meshes: Sequence[Mesh], K: np.ndarray, frame_size: tuple[int, int], margin: int = 6
    ) -> tuple[int, int, int, int] | None:
        """Pixel box (x0, y0, x1, y1) covering the meshes' projection, clipped to the frame; None if off-screen."""
        width, height = frame_size
        pts = [np.asarray(v, dtype=np.float64) for v, _, _ in meshes]
        pts = [p[p[:, 2] > 1e-3] for p in pts]
        pts = [p for p in pts if len(p)]
        if not pts:
            return None
        uv = project(np.concatenate(pts), np.asarray(K, dtype=np.float64))
        x0, y0 = np.floor(uv.min(axis=0)) - margin
        x1, y1 = np.ceil(uv.max(axis=0)) + margin
        x0, y0 = int(max(x0, 0)), int(max(y0, 0))
        x1, y1 = int(min(x1, width)), int(min(y1, height))
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1, y1

    def render_region(
        self,
        meshes: Sequence[Mesh],
        K: np.ndarray,
        frame_size: tuple[int, int],
        margin: int = 6,
        max_render_size: int = 320,
    ) -> tuple[np.ndarray, tuple[int, int]] | None:
        """Render only the meshes' bounding region of a (width, height) frame: (rgba patch, (x0, y0)).

        A region larger than `max_render_size` pixels is rendered at a lower resolution and upsampled:
        software GL (llvmpipe) cost grows with the pixel count, and the 4x MSAA keeps edges clean.
        Returns None when nothing is on screen.
        """
        if not meshes:
            return None
        box = self.region(meshes, K, frame_size, margin)
        if box is None:
            return None
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
        vw = -(-rw // _VIEWPORT_STEP) * _VIEWPORT_STEP
        vh = -(-rh // _VIEWPORT_STEP) * _VIEWPORT_STEP
        rgba, _ = self.render(meshes, K_region, size=(vw, vh), depth=False)
        rgba = rgba[:rh, :rw]
        if (rw, rh) != (w, h):
            rgba = cv2.resize(rgba, (w, h), interpolation=cv2.INTER_LINEAR)
        return rgba, (x0, y0)

    def render_regions(
        self,
        meshes: Sequence[Mesh],
        K: np.ndarray,
        frame_size: tuple[int, int],
        margin: int = 6,
        max_render_size: int = 320,
    ) -> list[tuple[np.ndarray, tuple[int, int]]]:
        """Patches (rgba, (x0, y0)) covering the meshes, one per group of meshes whose regions overlap.

        Two hands apart in the image are rendered as two small regions instead of one large one
        (fewer pixels, and each keeps its full resolution); overlapping ones are rendered together
        so that they occlude each other correctly.
        """
        groups: list[tuple[list, tuple[int, int, int, int]]] = []
        for mesh in meshes:
            box = self.region([mesh], K, frame_size, margin)
            if box is None:
                continue
            members = [mesh]
            merged = True
            while merged:  # absorb every group this box touches, growing the box each time
                merged = False
                for g in groups:
                    gb = g[1]
                    if box[0] < gb[2] and gb[0] < box[2] and box[1] < gb[3] and gb[1] < box[3]:
                        groups.remove(g)
                        members = g[0] + members
                        box = (min(box[0], gb[0]), min(box[1], gb[1]), max(box[2], gb[2]), max(box[3], gb[3]))
                        merged = True
                        break
            groups.append((members, box))
        patches = []
        for members, _ in groups:
            patch = self.render_region(members, K, frame_size, margin, max_render_size)
            if patch is not None:
                patches.append(patch)
        return patches

    def overlay(
        self,
        frame: np.ndarray,
        meshes: Sequence[Mesh],
        K: np.ndarray,
        opacity: float = 0.85,
        margin: int = 6,
        max_render_size: int = 320,
    ) -> np.ndarray:
        """Composite the meshes over an RGB frame (a new array), rendering only the hands' regions.

        Returns `frame` itself when no mesh is on screen.
        """
        height, width = frame.shape[:2]
        out = frame
        for rgba, offset in self.render_regions(meshes, K, (width, height), margin, max_render_size):
            out = composite(out, rgba, offset, opacity)
        return out


# pyrender renderers of MeshRenderers that were garbage-collected, freed at the next safe point
_DROPPED: list = []


def _delete_dropped() -> None:
    """Free the GL contexts of collected renderers (called where no other draw is in progress)."""
    while _DROPPED:
        try:
            _delete_offscreen(_DROPPED.pop())
        except Exception:  # a context that cannot be made current any more: nothing left to free
            pass


def _delete_offscreen(renderer) -> None:
    """Delete a pyrender OffscreenRenderer; the EGL display is terminated only by the last one alive."""
    with MeshRenderer._alive_lock:
        MeshRenderer._alive -= 1
        last = MeshRenderer._alive == 0
        platform = getattr(renderer, "_platform", None)
        if not last and getattr(platform, "_egl_display", None) is not None:
            platform.delete_context = lambda: _destroy_context_only(platform)
        renderer.delete()


def _destroy_context_only(platform) -> None:
    """pyrender's EGL delete_context without its eglTerminate (other renderers still use the display)."""
    from OpenGL import EGL

    if platform._egl_context is not None:
        EGL.eglMakeCurrent(platform._egl_display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, EGL.EGL_NO_CONTEXT)
        EGL.eglDestroyContext(platform._egl_display, platform._egl_context)
        platform._egl_context = None
    platform._egl_display = None


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
