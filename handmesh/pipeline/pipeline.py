"""The frame-to-meshes pipeline: detect -> crop -> model -> camera -> smooth -> render -> composite."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import numpy as np

from handmesh.config import option, replace_paths
from handmesh.data.io import check_image_size
from handmesh.errors import HandmeshError
from handmesh.geometry_np import project_points_np
from handmesh.pipeline.crop import check_view_options, default_intrinsics
from handmesh.pipeline.detector import Detector, HandDetection, flip_handedness
from handmesh.pipeline.estimator import HandEstimate, MeshEstimator
from handmesh.pipeline.plausibility import score_hands
from handmesh.pipeline.smoothing import SmoothingConfig, TrackSmoother
from handmesh.pipeline.tracking import IoUTracker, TrackSides
from handmesh.render.overlay import (
    IMPLAUSIBLE_COLOR,
    LEFT_COLOR,
    RIGHT_COLOR,
    draw_side_tag,
    draw_skeleton,
)

STAGES = ("detect", "crop", "model", "hand_model", "smooth", "render", "composite")
# A still image (static=True) renders its hand regions at the image's own resolution up to this side:
# `max_render_size` trades sharpness for the live frame rate, which a photo does not need (a 640 px hand
# rendered at 160 px and upsampled has soft, stepped outlines).
STILL_RENDER_SIZE = 2048


@dataclasses.dataclass
class PipelineConfig:
    """Settings of the real-time pipeline, all adjustable between frames (what is fixed when a pipeline is
    built, the model and its runtime, the detector and the crop, is `predictor.SourceConfig`)."""

    max_hands: int = dataclasses.field(default=2, metadata=option("most hands detected per frame"))
    smoothing: SmoothingConfig = dataclasses.field(default_factory=SmoothingConfig)  # of each track
    skeleton: bool = dataclasses.field(default=False, metadata=option("draw the 21 joints and bones"))
    opacity: float = dataclasses.field(
        default=0.85, metadata=option("mesh opacity in the composite", bounds=(0, 1))
    )
    fov: float = dataclasses.field(
        default=60.0, metadata=option("horizontal field of view (degrees) of an uncalibrated camera")
    )
    right_color: tuple[float, ...] = dataclasses.field(
        default=RIGHT_COLOR, metadata=option("RGBA 0..1", bounds=(0, 1))
    )
    left_color: tuple[float, ...] = dataclasses.field(
        default=LEFT_COLOR, metadata=option("RGBA 0..1", bounds=(0, 1))
    )
    max_render_size: int = dataclasses.field(
        default=160,  # 200 cost 7 % of the live frame rate (bench/results/pipeline_cpu.json, "compare")
        metadata=option(
            "video and webcam: larger hand regions render at lower resolution and are upsampled (llvmpipe "
            "cost); still images render at full resolution"
        ),
    )
    min_score: float = dataclasses.field(
        default=0.0, metadata=option("detections below this handedness score are dropped", bounds=(0, 1))
    )
    selfie: bool = dataclasses.field(
        default=False,
        metadata=option("frames are a mirrored selfie view: colours/labels name the person's own hand"),
    )
    tags: bool = dataclasses.field(default=True, metadata=option('draw an "L"/"R" tag by each hand'))
    plausibility: bool = dataclasses.field(
        default=True,
        metadata=option("lower the score of implausible hands (size, depth, joint limits, 2D fit)"),
    )
    min_plausibility: float = dataclasses.field(
        # 0 by measurement: any threshold that removes bad hands also drops good ones, and a bad hand the
        # checks see is drawn grey with "?" anyway (docs/benchmarks.md, handmesh bench plausibility)
        default=0.0,
        metadata=option("drop hands whose plausibility factor is below this, 0-1 (0: keep all, flagged)"),
    )
    side_votes: bool = dataclasses.field(
        default=True,
        metadata=option("video/live: a tracked hand's side is voted over its frames (with hysteresis)"),
    )

    def __post_init__(self) -> None:
        check_view_options(self.fov, self.max_hands)


@dataclasses.dataclass
class FrameJob:
    """A frame on its way through the stages (what one stage hands the next)."""

    frame: np.ndarray
    K: np.ndarray
    timestamp: float
    static: bool
    timings: dict[str, float]
    detections: list[HandDetection] = dataclasses.field(default_factory=list)
    hands: list[HandEstimate] = dataclasses.field(default_factory=list)
    live_ids: set[int] | None = None  # the tracks alive after this frame (None: a single image)
    submitted: float = 0.0  # perf_counter() when a stream took the frame in (for its latency)


@dataclasses.dataclass
class PipelineResult:
    """One processed frame: the composite, each hand's mesh, and per-stage times in milliseconds."""

    frame: np.ndarray
    hands: list[HandEstimate]
    timings: dict[str, float]
    K: np.ndarray
    model: str
    detections: list[HandDetection] = dataclasses.field(default_factory=list)


def as_rgb_frame(frame: Any) -> np.ndarray:
    """Validate/convert an image to RGB uint8 (H, W, 3): grey and RGBA are converted, others refused."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise HandmeshError(f"expected an RGB image of shape (H, W, 3), got {frame.shape}")
    # before the detector: MediaPipe's bundled OpenCV aborts the process on a side of 32,767 px
    check_image_size(frame.shape[1], frame.shape[0], source="frame")
    if frame.shape[2] == 4:
        frame = frame[..., :3]
    if frame.dtype != np.uint8:
        if np.issubdtype(frame.dtype, np.floating) and frame.max(initial=0) <= 1.0:
            frame = frame * 255.0
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frame)


class HandMeshPipeline:
    """Frames in, composited frames and hand meshes out; one renderer and one detector reused."""

    def __init__(
        self,
        estimator: MeshEstimator,
        detector: Detector | None = None,
        config: PipelineConfig | None = None,
        renderer=None,
    ):
        self.config = config or PipelineConfig()
        self.estimator = estimator
        if detector is None:
            from handmesh.pipeline.detector import MediaPipeDetector

            detector = MediaPipeDetector(max_hands=self.config.max_hands)
        self.detector = detector
        self._renderer = renderer
        self.tracker = IoUTracker(sides=TrackSides() if self.config.side_votes else None)
        self.smoother = TrackSmoother(self.config.smoothing)
        self._lock = threading.Lock()  # whole frames through `process`, one at a time
        self._stage_locks = (threading.Lock(), threading.Lock(), threading.Lock())

    @property
    def model_name(self) -> str:
        """What produces the meshes, in words (shown in the app)."""
        return self.estimator.name

    @property
    def renderer(self):
        """The offscreen renderer, created on first use (GL context creation is not free)."""
        if self._renderer is None:
            from handmesh.render import MeshRenderer

            self._renderer = MeshRenderer(64, 64)
        return self._renderer

    def update_config(self, **changes) -> None:
        """Change settings between frames (max_hands, skeleton, opacity, ...; a nested setting by its dotted
        path: `update_config(**{"smoothing.enabled": False})`)."""
        with self._lock:
            self.config = replace_paths(self.config, changes)
            self.smoother.config = self.config.smoothing
            if self.config.side_votes != (self.tracker.sides is not None):
                with self._stage_locks[0]:
                    self.tracker.sides = TrackSides() if self.config.side_votes else None
            if hasattr(self.detector, "set_max_hands"):
                self.detector.set_max_hands(self.config.max_hands)

    def reset(self) -> None:
        """Start a new stream: forget tracks, filters and warm starts."""
        with self._lock, self._stage_locks[0], self._stage_locks[1], self._stage_locks[2]:
            self.tracker.reset()
            self.smoother.reset()
            for part in (self.detector, self.estimator):
                if hasattr(part, "reset"):
                    part.reset()

    def display_handedness(self, handedness: str) -> str:
        """The person's hand for an image-space handedness (they differ in a mirrored selfie view)."""
        return flip_handedness(handedness) if self.config.selfie else handedness

    def color_of(self, handedness: str) -> tuple[float, ...]:
        """Mesh colour of a hand (image-space handedness in, colour of the person's hand out)."""
        left = self.display_handedness(handedness) == "left"
        return tuple(self.config.left_color if left else self.config.right_color)

    def hand_color(self, hand: HandEstimate) -> tuple[float, ...]:
        """Mesh colour of a HandEstimate: its side's colour, or grey when it is implausible."""
        return tuple(IMPLAUSIBLE_COLOR) if hand.implausible else self.color_of(hand.handedness)

    def hand_tag(self, hand: HandEstimate) -> str:
        """The tag drawn by a hand: "L" or "R" (the person's side), with "?" when it is implausible."""
        side = "L" if self.display_handedness(hand.handedness) == "left" else "R"
        return side + ("?" if hand.implausible else "")

    def process(
        self,
        frame: np.ndarray,
        K: np.ndarray | None = None,
        timestamp: float | None = None,
        static: bool = False,
    ) -> PipelineResult:
        """Process one RGB frame. `static=True`: an unrelated single image (no tracking, no smoothing).

        A frame without hands comes back untouched (the same array), never as an error.
        """
        with self._lock:
            return self.finish(self.estimate(self.detect(frame, K, timestamp, static)))

    # The three stages below are what `process` runs in turn; `handmesh.pipeline.stream` runs them in
    # three threads so that consecutive frames overlap. Each stage keeps its own state (tracker; model;
    # smoother and renderer) behind its own lock, and frames must pass every stage in the same order.

    def detect(
        self,
        frame: np.ndarray,
        K: np.ndarray | None = None,
        timestamp: float | None = None,
        static: bool = False,
    ) -> FrameJob:
        """Stage 1: validate the frame, find and track its hands."""
        cfg = self.config
        frame = as_rgb_frame(frame)
        h, w = frame.shape[:2]
        K = default_intrinsics(w, h, cfg.fov) if K is None else np.asarray(K, dtype=np.float64)
        t = time.monotonic() if timestamp is None else float(timestamp)
        job = FrameJob(frame=frame, K=K, timestamp=t, static=static, timings=dict.fromkeys(STAGES, 0.0))
        with self._stage_locks[0]:
            t0 = time.perf_counter()
            dets = self.detector.detect(frame, static=static)
            dets = [d for d in dets if d.score >= cfg.min_score]
            dets = sorted(dets, key=lambda d: -d.score)[: cfg.max_hands]
            if static:
                for i, d in enumerate(dets):
                    d.track_id = i
            else:
                self.tracker.update(dets)
                job.live_ids = set(self.tracker.live_ids)
            job.timings["detect"] = (time.perf_counter() - t0) * 1000.0
        job.detections = dets
        return job

    def estimate(self, job: FrameJob) -> FrameJob:
        """Stage 2: crops, the model (all hands in one batch) and the meshes in the frame's camera."""
        if job.detections:
            with self._stage_locks[1]:
                job.hands = self.estimator.estimate(job.frame, job.detections, job.K, job.timings, job.static)
                if self.config.plausibility:
                    mean = getattr(self.estimator, "hands_mean", None)
                    job.hands = score_hands(
                        job.hands, job.detections, job.K, mean, min_factor=self.config.min_plausibility
                    )
            sides = self.tracker.sides
            if not job.static and sides is not None and self.config.plausibility:
                # after stage 2's lock: taking the tracker's lock inside it would invert reset()'s order
                with self._stage_locks[0]:
                    for hand in job.hands:
                        sides.set_quality(hand.track_id, float(hand.params.get("plausibility", 1.0)))
        return job

    def finish(self, job: FrameJob) -> PipelineResult:
        """Stage 3: temporal smoothing, rendering and compositing."""
        cfg = self.config
        frame, K, hands, timings = job.frame, job.K, job.hands, job.timings
        out = frame
        with self._stage_locks[2]:
            t0 = time.perf_counter()
            if not job.static and cfg.smoothing.enabled:
                for hand in hands:
                    sm = self.smoother.smooth(
                        hand.track_id, {"vertices": hand.vertices, "joints": hand.joints}, job.timestamp
                    )
                    hand.vertices = sm["vertices"].astype(np.float32)
                    hand.joints = sm["joints"].astype(np.float32)
            if job.live_ids is not None:
                self.smoother.keep(job.live_ids)
            timings["smooth"] = (time.perf_counter() - t0) * 1000.0

            if hands:
                meshes = [(hd.vertices, hd.faces, self.hand_color(hd)) for hd in hands]
                size = max(cfg.max_render_size, STILL_RENDER_SIZE) if job.static else cfg.max_render_size
                out = self.renderer.overlay(
                    frame, meshes, K, cfg.opacity, max_render_size=size, timings=timings
                )
                if cfg.skeleton:
                    t0 = time.perf_counter()
                    out = out.copy() if out is frame else out
                    for hd in hands:
                        # bones in a darker shade of the mesh colour, so they stay visible on top of it
                        color = tuple(int(140 * c) for c in self.hand_color(hd)[:3])
                        draw_skeleton(out, project_points_np(hd.joints, K), color=color, thickness=2)
                    timings["composite"] += (time.perf_counter() - t0) * 1000.0
                if cfg.tags:
                    t0 = time.perf_counter()
                    out = out.copy() if out is frame else out
                    for hd in hands:
                        color = tuple(int(170 * c) for c in self.hand_color(hd)[:3])
                        draw_side_tag(out, self.hand_tag(hd), hd.box, color)
                    timings["composite"] += (time.perf_counter() - t0) * 1000.0
        timings["total"] = sum(timings[s] for s in STAGES)
        return PipelineResult(
            frame=out, hands=hands, timings=timings, K=K, model=self.model_name, detections=job.detections
        )
