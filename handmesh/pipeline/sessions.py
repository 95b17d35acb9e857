"""Serving several clients: named mesh sources loaded once, and one pipeline state per client.

A stream's state — tracks, smoothing filters, warm starts, MediaPipe's tracking graph, the pipelined
live feed — belongs to one camera. A server that shared one pipeline between browser tabs would hand
one user's track to another and reset everybody's stream whenever anyone uploaded a video. So
`MeshSources` loads the heavy, stateless parts once (the model runtime, the hand model, the GL
renderer) and builds a fresh pipeline on demand; `SessionPool` keeps one `ClientSession` (a pipeline
per mesh source and job, and a live feed) per client key, bounded in number and closed when the
client leaves, is evicted, or stays idle too long.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from handmesh.errors import HandmeshError
from handmesh.pipeline.estimator import LandmarkFitEstimator, MeshEstimator, ModelEstimator
from handmesh.pipeline.pipeline import HandMeshPipeline, PipelineConfig, PipelineResult
from handmesh.pipeline.predictor import SourceConfig, build_detector, load_runtime
from handmesh.pipeline.stream import LiveFeed

LANDMARK_FIT = "Landmark fit (MediaPipe landmarks + hand model)"


def model_training_note(path: str | Path) -> str:
    """What a model file says about its training (`model_file.training_note`); an ONNX export records none."""
    if Path(path).suffix.lower() == ".onnx":
        return "an ONNX export: its training data is not recorded in it"
    from handmesh.checkpoint import load_checkpoint
    from handmesh.models.model_file import training_note

    return training_note(load_checkpoint(path))


JOBS = ("live", "video", "image")


class MeshSources:
    """The mesh sources a server offers, by display name: a model file (if `source` names one) and the
    landmark fit.

    Each `pipeline(name)` call builds a new pipeline with its own state around the shared runtime, hand
    model and renderer; the detector is built anew from `detector` (its tracking graph is state too).
    """

    def __init__(self, source: SourceConfig | None = None, threads: int | None = None):
        from handmesh.render import MeshRenderer

        source = source or SourceConfig()
        build_detector(source.detector)  # a wrong spec fails here, at start-up, not at the first frame
        self.detector, self.search = source.detector, source.search
        self.renderer = MeshRenderer(64, 64)
        self._estimators: dict[str, Callable[[], MeshEstimator]] = {}
        self._about: dict[str, str] = {}
        if source.model is not None:
            rt = load_runtime(source.model, source.runtime, threads=threads)
            self._estimators[f"Model: {rt.name}"] = lambda: ModelEstimator(rt, crop_scale=source.crop_scale)
            self._about[f"Model: {rt.name}"] = model_training_note(source.model)
        fit = LandmarkFitEstimator()
        self._estimators[LANDMARK_FIT] = lambda: LandmarkFitEstimator(fit.hand, fit.config)
        self._about[LANDMARK_FIT] = (
            f"the {fit.hand.kind} hand model fitted to MediaPipe's 21 landmarks of each hand (no training)"
        )
        self._templates = {name: make() for name, make in self._estimators.items()}

    @property
    def names(self) -> list[str]:
        """Display names, the default (the model when there is one) first."""
        return list(self._estimators)

    @property
    def default(self) -> str:
        """The mesh source used when a client names none."""
        return self.names[0]

    def about(self, name: str | None) -> str:
        """What source `name` is in a sentence: for a model, what it was trained on."""
        return self._about[self._resolve(name)]

    def model_name(self, name: str) -> str:
        """What produces the meshes of source `name`, in words."""
        return self._templates[self._resolve(name)].name

    def _resolve(self, name: str | None) -> str:
        return name if name in self._estimators else self.default

    def pipeline(self, name: str | None, config: PipelineConfig | None = None) -> HandMeshPipeline:
        """A fresh pipeline of mesh source `name` (unknown names: the default source)."""
        config = config or PipelineConfig()
        estimator = self._estimators[self._resolve(name)]()
        detector = build_detector(self.detector, config.max_hands, self.search)
        return HandMeshPipeline(estimator, detector, config, renderer=self.renderer)

    def warm_up(self) -> None:
        """Pay the one-off costs (GL context, first model call) before the first visitor does."""
        tri = (np.array([[0, 0, 0.5], [0.01, 0, 0.5], [0, 0.01, 0.5]]), np.array([[0, 1, 2]]), (1, 1, 1, 1))
        self.renderer.render([tri], np.array([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]), size=(64, 64))
        for est in self._templates.values():
            runtime = getattr(est, "runtime", None)
            if runtime is not None:
                runtime(np.zeros((1, runtime.input_size, runtime.input_size, 3), np.uint8))


class ClientSession:
    """One client's state: a pipeline per (mesh source, job), its live feed and frame-rate statistics.

    Jobs keep separate pipelines so that a video upload does not reset the same client's webcam stream.
    """

    def __init__(self, make_pipeline: Callable[[str | None], HandMeshPipeline]):
        self._make = make_pipeline
        self._pipelines: dict[tuple[str | None, str], HandMeshPipeline] = {}
        self._settings: dict[tuple[str | None, str], dict[str, Any]] = {}  # last applied, per pipeline
        self.feed = LiveFeed()
        self._stamps: collections.deque[float] = collections.deque(maxlen=30)
        self._timings: dict[str, float] = {}
        self._call_ms = 0.0
        self._stats_at = -1e9
        self._lock = threading.Lock()
        self.used = time.monotonic()

    def pipeline(self, source: str | None, job: str, **settings: Any) -> HandMeshPipeline:
        """The pipeline of `source` for `job` ("live", "video" or "image") with the page's settings, which
        are applied only when they differ from the last ones (the page sends them with every webcam frame,
        and applying waits for the frame in flight)."""
        if job not in JOBS:
            raise HandmeshError(f"unknown job {job!r}: one of {', '.join(JOBS)}")
        key = (source, job)
        with self._lock:
            pipe = self._pipelines.get(key)
            if pipe is None:
                pipe = self._pipelines[key] = self._make(source)
            changed = bool(settings) and self._settings.get(key) != settings
        if changed:
            pipe.update_config(**settings)
            with self._lock:
                self._settings[key] = dict(settings)
        return pipe

    def live(self, pipe: HandMeshPipeline, frame: np.ndarray) -> tuple[PipelineResult, float, dict]:
        """Feed a webcam frame: the newest result, the delivered frame rate and smoothed stage times."""
        result = self.feed(pipe, frame)
        now = time.perf_counter()
        with self._lock:
            self._stamps.append(now)
            for k, v in result.timings.items():
                self._timings[k] = 0.8 * self._timings.get(k, v) + 0.2 * v
            span = self._stamps[-1] - self._stamps[0]
            fps = (len(self._stamps) - 1) / span if span > 0 else 0.0
            return result, fps, dict(self._timings)

    def note_call(self, ms: float) -> float:
        """Record how long the server spent on one webcam frame; returns the smoothed figure."""
        with self._lock:
            self._call_ms = ms if self._call_ms == 0.0 else 0.8 * self._call_ms + 0.2 * ms
            return self._call_ms

    def stats_due(self, period_s: float) -> bool:
        """True at most once per `period_s` seconds (when the stream's statistics should be shown again)."""
        now = time.monotonic()
        with self._lock:
            if now - self._stats_at < period_s:
                return False
            self._stats_at = now
            return True

    def close(self) -> None:
        """Stop the live feed's threads and release the detectors' graphs."""
        self.feed.close()
        with self._lock:
            pipes, self._pipelines, self._settings = list(self._pipelines.values()), {}, {}
        for pipe in pipes:
            close = getattr(pipe.detector, "close", None)
            if close is not None:
                close()


class SessionPool:
    """Client sessions by key (e.g. the browser session's hash): at most `max_sessions` (the least
    recently used is closed first) and none idle for longer than `idle_s`."""

    def __init__(
        self,
        make_session: Callable[[], ClientSession],
        max_sessions: int = 16,
        idle_s: float = 1800.0,
    ):
        if max_sessions < 1:
            raise HandmeshError("max_sessions must be at least 1")
        self._make = make_session
        self.max_sessions = int(max_sessions)
        self.idle_s = float(idle_s)
        self._sessions: collections.OrderedDict[str, ClientSession] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def get(self, key: str | None) -> ClientSession:
        """The session of `key`, created on first use (None: a shared anonymous session)."""
        key = key or "anonymous"
        now = time.monotonic()
        with self._lock:
            session = self._sessions.pop(key, None)
            stale = [k for k, s in self._sessions.items() if now - s.used > self.idle_s]
            doomed = [self._sessions.pop(k) for k in stale]
            while len(self._sessions) >= self.max_sessions:
                doomed.append(self._sessions.popitem(last=False)[1])
            if session is None:
                session = self._make()
            session.used = now
            self._sessions[key] = session  # most recently used last
        for old in doomed:  # outside the lock: closing joins a feed's threads
            old.close()
        return session

    def drop(self, key: str | None) -> None:
        """Close and forget the session of `key` (the client left)."""
        with self._lock:
            session = self._sessions.pop(key or "anonymous", None)
        if session is not None:
            session.close()

    def close(self) -> None:
        """Close every session."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), collections.OrderedDict()
        for session in sessions:
            session.close()
