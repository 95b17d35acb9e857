"""The demo server's settings (`AppConfig`, one option each) and what its page's handlers share (`DemoState`)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import field

from handmesh.config import option
from handmesh.demo_files import FrameFiles, GradioCache, OutputFolder
from handmesh.errors import HandmeshError, one_line
from handmesh.pipeline.predictor import SourceConfig
from handmesh.pipeline.runtime import LIVE_THREADS, set_stage_threads


@dataclasses.dataclass
class AppConfig:
    """How the demo server runs (each field is an option of demo_app.py: help and choices live here)."""

    host: str = field(
        default="127.0.0.1", metadata=option("interface to bind (127.0.0.1: this machine only)")
    )
    port: int = field(default=7860, metadata=option("port"))
    share: bool = field(default=False, metadata=option("also create a public gradio.live link"))
    source: SourceConfig = field(
        # uploads get one detector pass unless --search asks for more (the page answers quickly)
        default_factory=lambda: SourceConfig(search=None),
        metadata=option("the model file, its runtime, the detector, the still-image search", inline=True),
    )
    max_upload_mb: int = field(default=50, metadata=option("largest upload accepted, MB"))
    max_video_seconds: float = field(default=60.0, metadata=option("longer videos are cut to this length"))
    max_video_frames: int = field(
        default=1800,  # 60 s at 30 fps: a 240 fps clip's 60 s would hold a one-worker queue for minutes
        metadata=option("videos are also cut to this many frames", bounds=(1, 1_000_000)),
    )
    max_output_mb: int = field(
        default=1024, metadata=option("the app's result files are pruned, oldest first, beyond this many MB")
    )
    max_cache_mb: int = field(
        default=1024,
        metadata=option(
            "Gradio's cache of this app (uploads, copies of results) is pruned, oldest first, beyond this"
            " many MB",
            bounds=(1, 10_000_000),
        ),
    )
    stream_every: float = field(
        default=0.03,  # up to ~33 FPS
        metadata=option("seconds between webcam frames sent to the server"),
    )
    threads: int = field(
        default=LIVE_THREADS,
        metadata=option(
            "threads per library (ONNX Runtime, torch, OpenCV, the GL rasterizer); the pipeline's stages already"
            " run in parallel, and more per stage fought them and the browser for the cores"
        ),
    )
    max_sessions: int = field(
        default=16,
        metadata=option("browser sessions with their own stream state (tracks, smoothing); the idlest goes"),
    )
    # a mirrored (selfie) view: colours and labels then follow the person's own hands
    mirror: bool = field(default=True, metadata=option("mirror the webcam view (selfie)"))


class DemoState:
    """What the page's handlers share: the mesh sources, one state per browser session, the app's files."""

    def __init__(self, cfg: AppConfig):
        from handmesh.pipeline.sessions import ClientSession, MeshSources, SessionPool

        self.cfg = cfg
        if cfg.threads < 1:
            raise HandmeshError(f"--threads must be at least 1, got {cfg.threads}")
        set_stage_threads(cfg.threads)  # before the renderer's GL context starts its rasterizer threads
        self.sources = MeshSources(cfg.source, threads=cfg.threads)
        self.notes: list[str] = []
        if cfg.source.detector.startswith("static:"):
            self.notes.append(
                f"Test detector in use: `{cfg.source.detector}` (fixed boxes, not a real detector)."
            )
        self.sources.warm_up()
        self.sessions = SessionPool(lambda: ClientSession(self.sources.pipeline), cfg.max_sessions)
        # Gradio's cache is a folder of the app's own, capped in bytes (made before any component)
        self.cache = GradioCache(cfg.max_cache_mb * 2**20)
        # downloads live an hour; streamed frames go inside Gradio's cache folder, which Gradio serves as is
        self.outputs = OutputFolder(max_age_s=3600.0, max_bytes=cfg.max_output_mb * 2**20)
        self.frames = FrameFiles(self.cache.path / f"handmesh-stream-{os.getpid()}")
        self.cache.keep_names.add(self.frames.folder.name)  # it bounds itself; a sweep would break the stream
        self.cache.start()
        self.examples = self._render_examples()

    def _render_examples(self) -> tuple[str, str] | None:
        """Example inputs rendered from the hand model (a sub-folder: the output pruning skips it)."""
        from handmesh.pipeline.synthetic import write_examples

        try:
            image, video = write_examples(self.outputs.path / "examples")
        except Exception as exc:  # an example is a nicety: a machine that cannot render still serves
            self.notes.append(f"No example inputs ({type(exc).__name__}: {one_line(exc)}).")
            return None
        return str(image), str(video)

    def session(self, request):
        """The `ClientSession` of the browser session a Gradio request comes from."""
        return self.sessions.get(getattr(request, "session_hash", None) if request is not None else None)

    def close(self) -> None:
        """Remove the app's files (output folder, Gradio's cache with its uploads, copies and streamed
        frames): on exit."""
        self.frames.close()
        self.cache.close()
        self.outputs.close()
