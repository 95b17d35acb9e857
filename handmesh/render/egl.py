"""Every workaround handmesh needs for pyrender 0.1.45 (pinned) on headless EGL, in one place.

`Offscreen` is what `pyrender.OffscreenRenderer` would be if pyrender (a) released its EGL context after
rendering, (b) could skip the depth readback, (c) did not terminate the process-wide EGL display when one
renderer is deleted, and (d) let a renderer choose its multisampling (pyrender hard-codes 4x). When
pyrender fixes these, `Offscreen` shrinks to the plain renderer and this module (with `preload_triton`)
can go.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import weakref

# pyrender picks its GL platform when it is imported; EGL is the one that works headless here.
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def preload_triton() -> None:
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


preload_triton()

import numpy as np  # noqa: E402
import pyrender  # noqa: E402


class Offscreen:
    """A pyrender offscreen renderer that any thread may use, that can skip the depth readback, and
    whose deletion leaves other renderers working. Callers serialize `render` calls themselves."""

    # pyrender's EGL platform calls eglTerminate on the process-wide EGL display when a renderer is
    # deleted, which kills every other renderer's context; only the last one alive may do that.
    _alive = 0
    _alive_lock = threading.Lock()

    def __init__(self, width: int, height: int, samples: int = 4) -> None:
        delete_dropped()
        self._renderer = pyrender.OffscreenRenderer(int(width), int(height))
        with Offscreen._alive_lock:
            Offscreen._alive += 1
        self._want_depth = [True]  # a list: shared with the readback hook without a reference cycle
        self._install_color_only_readback()
        if int(samples) != 4:
            self._install_samples(int(samples))
        self._release_context()

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._renderer is None

    def render(
        self, scene: pyrender.Scene, size: tuple[int, int], depth: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Render `scene` at size (width, height): (rgba, depth or None when `depth` is False)."""
        delete_dropped()
        self._want_depth[0] = depth
        try:
            self._renderer.viewport_width, self._renderer.viewport_height = size
            return self._renderer.render(scene, flags=pyrender.RenderFlags.RGBA)
        finally:
            self._want_depth[0] = True
            self._release_context()

    def _install_color_only_readback(self) -> None:
        """Let renders that need no depth skip pyrender's depth readback.

        pyrender always resolves, reads back and linearizes the depth buffer after a render, which
        software GL pays for on every overlay although the overlay never uses it. The hook wraps pyrender 0.1.45's private readback
        and falls back to it whenever depth is wanted or its internals are not as expected.
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

    def _install_samples(self, samples: int) -> None:
        """Give the render target `samples` samples per pixel instead of pyrender's fixed 4 (1: none).

        llvmpipe rasterises every sample: on a finely subdivided hand 4x multisampling was about a third
        of a synthetic picture's CPU time. pyrender 0.1.45 creates its multisampled target lazily, on the
        first render and after a size change; the hook re-specifies that target's storage each time.
        """
        inner = getattr(self._renderer, "_renderer", None)
        original = getattr(type(inner), "_configure_main_framebuffer", None)
        if original is None or not hasattr(inner, "_main_cb_ms"):
            return
        from OpenGL import GL

        inner_ref = weakref.ref(inner)  # no cycle, as in the readback hook

        def configure():
            r = inner_ref()
            # (GL may hand out a deleted buffer's id again, so compare sizes, not ids)
            stale = r._main_fb is None or r._main_fb_dims != (r.viewport_width, r.viewport_height)
            original(r)
            if not stale or r._main_cb_ms is None:
                return
            width, height = r._main_fb_dims
            for buffer, fmt in ((r._main_cb_ms, GL.GL_RGBA), (r._main_db_ms, GL.GL_DEPTH_COMPONENT24)):
                GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, buffer)
                GL.glRenderbufferStorageMultisample(
                    GL.GL_RENDERBUFFER, samples if samples > 1 else 0, fmt, width, height
                )

        inner._configure_main_framebuffer = configure

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
        if self._renderer is not None:
            _delete_offscreen(self._renderer)
            self._renderer = None
        delete_dropped()

    def __del__(self):  # pragma: no cover - garbage collection
        # The collector may run this in the middle of another renderer's draw on this thread, where
        # switching EGL contexts would break that draw: the context is freed at the next safe point.
        renderer = self.__dict__.get("_renderer")
        if renderer is not None:
            _DROPPED.append(renderer)
            self._renderer = None


# pyrender renderers of Offscreens that were garbage-collected, freed at the next safe point
_DROPPED: list = []


def delete_dropped() -> None:
    """Free the GL contexts of collected renderers (called where no other draw is in progress)."""
    while _DROPPED:
        try:
            _delete_offscreen(_DROPPED.pop())
        except Exception:  # a context that cannot be made current any more: nothing left to free
            pass


def _delete_offscreen(renderer) -> None:
    """Delete a pyrender OffscreenRenderer; the EGL display is terminated only by the last one alive."""
    with Offscreen._alive_lock:
        Offscreen._alive -= 1
        last = Offscreen._alive == 0
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
