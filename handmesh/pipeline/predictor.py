"""The one predictor under every front-end: build a pipeline from command-line style choices, run it on
a still image or a video.

The Gradio app (`handmesh.app`), `handmesh predict` and `handmesh label` differ only in what they do with
the answers (widgets, files, a dataset), so everything up to the answer lives here: the detector spec
(`build_detector`), model files as runtimes (`load_runtime`), what is fixed when a pipeline is built
(`SourceConfig`), the mesh source (`build_estimator`), the whole pipeline (`build_pipeline`), and the
two jobs, `run_on_image` and `run_on_video`.

Why in `handmesh/pipeline/` and not at the package top: it is the pipeline package's front door. It
only assembles and drives pipeline parts (detector, estimator, runtimes, media, the pipelined stream),
so `from handmesh.pipeline import build_pipeline` stays the one import for front-ends and for users'
scripts, and nothing in the package has to reach upwards into a front-end.

State: a still image starts fresh (`static=True`: no tracks, no smoothing, no warm start from an
earlier image, MediaPipe's still-image graph), so its answer does not depend on what came before.
Only a stream carries state: `run_on_video` resets the pipeline first, and a server keeps one pipeline
per client (`handmesh.pipeline.sessions`).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from handmesh.config import option
from handmesh.errors import HandmeshError, MissingFileError
from handmesh.pipeline.detector import Detector, HandDetection, StaticDetector
from handmesh.pipeline.estimator import LandmarkFitEstimator, MeshEstimator, ModelEstimator
from handmesh.pipeline.pipeline import HandMeshPipeline, PipelineConfig, PipelineResult
from handmesh.pipeline.runtime import OnnxRuntimeModel, Runtime, TorchRuntimeModel
from handmesh.pipeline.schema import SCHEMA, result_to_dict
from handmesh.pipeline.search import DEFAULT_SEARCH, SEARCHES

MODES = ("auto", "model", "landmark-fit")
RUNTIMES = ("auto", "onnx", "torch")
# "mediapipe-lite" is accepted as another name for the default (lite) landmark model
MEDIAPIPE_SPECS = ("mediapipe", "mediapipe-lite", "mediapipe-full")
DETECTOR_HELP = "mediapipe | mediapipe-full | static:X0,Y0,X1,Y1[,left|right][;...] (fixed boxes, tests)"

Image = np.ndarray | str | Path
Mesh = tuple[np.ndarray, np.ndarray, tuple[float, ...]]


def detector_field() -> Any:
    """The `detector` option of every config that builds a detector (`build_detector` reads it)."""
    return dataclasses.field(default="mediapipe", metadata=option(DETECTOR_HELP, metavar="SPEC"))


def search_field(what: str) -> Any:
    """The `search` option of every config that searches pictures for hands: fast, thorough or none."""
    return dataclasses.field(
        default=DEFAULT_SEARCH,
        metadata=option(
            f"how hard {what} are searched for hands: fast, thorough (several times slower, body-guided) "
            "or none (one pass of the detector)",
            choices=(None, *SEARCHES),
            metavar="{fast,thorough,none}",
        ),
    )


@dataclasses.dataclass
class SourceConfig:
    """Where a pipeline's meshes come from, fixed when it is built (each field is an option of `handmesh
    predict` and demo_app.py); `PipelineConfig` holds what may change between frames."""

    checkpoint: str | None = dataclasses.field(
        default=None, metadata=option("trained model file (.pt); see --runtime", metavar="CKPT")
    )
    onnx: str | None = dataclasses.field(
        default=None,
        metadata=option("exported model (.onnx + its .json sidecar), run with ONNX Runtime", metavar="FILE"),
    )
    runtime: str = dataclasses.field(
        default="auto",
        metadata=option(
            "how --checkpoint runs: auto (torch on a GPU, else exported to ONNX Runtime), onnx or torch",
            choices=RUNTIMES,
        ),
    )
    detector: str = detector_field()
    search: str | None = search_field("still images (MediaPipe detectors; videos are tracked)")
    crop_scale: float = dataclasses.field(
        default=1.5, metadata=option("crop side = this x the hand box's longer side")
    )

    def __post_init__(self) -> None:
        if self.checkpoint is not None and self.onnx is not None:
            raise HandmeshError("give --checkpoint or --onnx, not both")

    @property
    def model(self) -> str | None:
        """The model file, if any (the ONNX one or the checkpoint)."""
        return self.onnx if self.onnx is not None else self.checkpoint


def build_detector(spec: str, max_hands: int = 2, search: str | None = None) -> Detector:
    """The detector named by a command-line spec: MediaPipe (lite or full landmark model) or fixed boxes.

    "static:X0,Y0,X1,Y1[,left|right][;X0,...]" replays the same boxes on every frame (tests, benchmarks,
    the browser test); `max_hands` limits MediaPipe (the pipeline's own limit applies to both).
    `search` ("fast" | "thorough", `handmesh.pipeline.search`): still images are searched over several
    views with the full landmark model, video frames are tracked by the spec's MediaPipe as before.
    """
    spec = str(spec).strip()
    if spec in MEDIAPIPE_SPECS:
        from handmesh.pipeline.detector import MediaPipeDetector

        tracker = MediaPipeDetector(
            max_hands=max_hands, model_complexity=1 if spec == "mediapipe-full" else 0
        )
        if search is None:
            return tracker
        from handmesh.pipeline.search import StillImageDetector

        return StillImageDetector(max_hands=max_hands, search=search, video=tracker)
    if spec.startswith("static:"):
        return StaticDetector.from_spec(spec[len("static:") :])
    raise HandmeshError(f"unknown detector {spec!r}: use {DETECTOR_HELP.split(' (')[0]}")


def load_runtime(
    model: str | Path, runtime: str = "auto", threads: int | None = None, device: str | None = None
) -> Runtime:
    """A model file as a runtime: `.onnx` -> ONNX Runtime; a `.pt` checkpoint -> torch on a GPU (or
    `runtime="torch"`), else exported to a temporary ONNX file and run by ONNX Runtime, which runs the
    fused model faster than torch does on a CPU (`handmesh bench model`, bench/results/model_cpu.json)."""
    if runtime not in RUNTIMES:
        raise HandmeshError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        if runtime == "torch":
            raise HandmeshError(f"{path}: an ONNX file runs with ONNX Runtime only (drop --runtime torch)")
        return OnnxRuntimeModel(path, threads=threads)
    import torch

    if runtime == "torch" or (runtime == "auto" and torch.cuda.is_available()):
        return TorchRuntimeModel(path, device=device)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path} (train one with train_freihand.py)")
    from handmesh.export import export_onnx
    from handmesh.models import load_model

    folder = Path(tempfile.mkdtemp(prefix="handmesh-onnx-"))
    try:
        onnx_path = export_onnx(load_model(path), folder / (path.stem + ".onnx"), verify=False)
        rt = OnnxRuntimeModel(onnx_path, threads=threads)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the session holds the model: no file left behind
    rt.name = f"{rt.name.split(' (')[0]} ({path.name}, ONNX Runtime)"
    return rt


def build_estimator(source: SourceConfig, mode: str = "auto") -> MeshEstimator:
    """The mesh source: the regressor when a model file is given (or mode="model"), else landmark fit."""
    if mode not in MODES:
        raise HandmeshError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "landmark-fit" or (mode == "auto" and source.model is None):
        return LandmarkFitEstimator()
    if source.model is None:
        raise HandmeshError("mode 'model' needs --checkpoint CKPT or --onnx FILE")
    return ModelEstimator(load_runtime(source.model, source.runtime), crop_scale=source.crop_scale)


def build_pipeline(
    source: SourceConfig | None = None,
    mode: str = "auto",
    config: PipelineConfig | None = None,
    renderer: Any = None,
    detector: Detector | None = None,
) -> HandMeshPipeline:
    """A ready pipeline: model or landmark-fit mesh source, the source's detector (with its still-image
    search, see `build_detector`), or `detector` instead."""
    source = source or SourceConfig()
    config = config or PipelineConfig()
    estimator = build_estimator(source, mode)
    if detector is None:
        detector = build_detector(source.detector, config.max_hands, source.search)
    return HandMeshPipeline(estimator, detector=detector, config=config, renderer=renderer)


@dataclasses.dataclass
class ImageResult:
    """A still image's answer: the pipeline's result, each hand's mesh in its colour, and its JSON form."""

    result: PipelineResult
    meshes: list[Mesh]
    data: dict

    @property
    def frame(self) -> np.ndarray:
        """The composited overlay (the input itself when no hand was found)."""
        return self.result.frame


def run_on_image(pipeline: HandMeshPipeline, image: Image) -> ImageResult:
    """Meshes for one still image (an RGB array or an image file), independent of anything seen before."""
    if isinstance(image, (str, Path)):
        from handmesh.pipeline.media import read_image

        image = read_image(image)
    result = pipeline.process(image, static=True)
    meshes = [(h.vertices, h.faces, pipeline.hand_color(h)) for h in result.hands]
    return ImageResult(result=result, meshes=meshes, data=result_to_dict(result))


@dataclasses.dataclass
class VideoResult:
    """A processed video: per-frame hands (JSON-safe), the overlay file if one was written, and timing."""

    source: str
    model: str
    fps: float
    size: tuple[int, int]
    frames: list[dict]
    total_frames: int  # what the file's header announces (0: unknown)
    limit: int | None  # the most frames that were to be read (None: all)
    K: list | None
    overlay: Path | None
    elapsed_s: float
    meshes: Path | None = None  # the per-frame mesh NPZ (handmesh.pipeline.mesh_sequence), if asked for

    @property
    def truncated(self) -> bool:
        """Whether the limit stopped the video before its end."""
        return self.limit is not None and len(self.frames) >= self.limit and self.total_frames > self.limit

    @property
    def processing_fps(self) -> float | None:
        """Frames processed per second of wall time."""
        return round(len(self.frames) / self.elapsed_s, 2) if self.elapsed_s > 0 else None

    def to_dict(self) -> dict:
        """The JSON written beside the overlay: model, camera and rate once, then one entry per frame."""
        return {
            "schema": SCHEMA,
            "input": self.source,
            "model": self.model,
            "fps": self.fps,
            "K": self.K,
            "frames": self.frames,
            "overlay": self.overlay.name if self.overlay is not None else None,
            "processing_fps": self.processing_fps,
        }


def iter_on_video(
    pipeline: HandMeshPipeline, source: str | Path, fps: float, max_frames: int | None = None
) -> Iterator[PipelineResult]:
    """Results of a video's frames in order, stages overlapped; the pipeline starts a fresh stream."""
    from handmesh.pipeline.media import iter_video
    from handmesh.pipeline.stream import process_stream

    pipeline.reset()  # tracks, smoothing and warm starts carry over between this video's frames only
    frames = ((frame, None, i / fps) for i, frame in enumerate(iter_video(source, max_frames)))
    yield from process_stream(pipeline, frames)


def run_on_video(
    pipeline: HandMeshPipeline,
    source: str | Path,
    overlay: str | Path | None = None,
    max_frames: int | None = None,
    max_seconds: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    meshes: str | Path | None = None,
) -> VideoResult:
    """Process a video file: per-frame hands, the overlay video written to `overlay` (when given).

    At most `max_frames` frames or `max_seconds` of video are read; `progress(done, expected)` is called
    after each frame. `meshes`: also write every frame's meshes to this NPZ (`MeshSequence`).
    """
    from handmesh.pipeline.media import VideoWriter, video_info
    from handmesh.pipeline.mesh_sequence import MeshSequence

    fps, total, size = video_info(source)
    limits = [n for n in (max_frames, int(max_seconds * fps) if max_seconds is not None else None) if n]
    limit = min(limits) if limits else None
    expected = min(total, limit) if total and limit else (total or limit or 0)
    frames: list[dict] = []
    K = None
    sequence = MeshSequence() if meshes is not None else None
    t0 = time.perf_counter()
    with VideoWriter(overlay, fps, size) if overlay is not None else nullcontext() as writer:
        for i, result in enumerate(iter_on_video(pipeline, source, fps, limit)):
            if writer is not None:
                writer.write(result.frame)
            entry = result_to_dict(result)
            K = entry.pop("K")
            del entry["model"], entry["schema"]  # the same for every frame: stated once in VideoResult
            entry["frame"] = i
            frames.append(entry)
            if sequence is not None:
                sequence.add(result.hands)
            if progress is not None:
                progress(i + 1, expected)
    return VideoResult(
        source=str(source),
        model=pipeline.model_name,
        fps=fps,
        size=size,
        frames=frames,
        total_frames=total,
        limit=limit,
        K=K,
        overlay=Path(overlay) if overlay is not None else None,
        elapsed_s=time.perf_counter() - t0,
        meshes=sequence.save(meshes, fps) if sequence is not None else None,
    )


@dataclasses.dataclass
class LandmarkFit:
    """The hand model fitted to one image's detected landmarks (what `handmesh label` writes out)."""

    detections: list[HandDetection]  # the hands that carry 2D and 3D landmarks, in fit order
    fit: Any  # handmesh.fit.FitResult: params, joints, sides, error (m), reprojection (px)
    own: dict[str, np.ndarray]  # MANO parameters in the convention of each hand's own side
    ms_per_hand: float


def fit_landmarks(
    detector: Detector, image: np.ndarray, K: np.ndarray, handedness: str = "detector", static: bool = True
) -> LandmarkFit | None:
    """Detect hands and fit the hand model to their landmarks, cold-started (None: no hand with landmarks).

    `handedness="detector"` trusts the detector's left/right; "fit" keeps whichever side fits better.
    `static=False` lets a video's frames use the detector's tracking.
    """
    from handmesh.fit import fit_keypoints, own_side_params

    if handedness not in ("detector", "fit"):
        raise HandmeshError(f"handedness must be 'detector' or 'fit', got {handedness!r}")
    dets = [
        d
        for d in detector.detect(image, static=static)
        if d.keypoints2d is not None and d.keypoints3d is not None
    ]
    if not dets:
        return None
    t0 = time.perf_counter()
    fit = fit_keypoints(
        np.stack([d.keypoints3d for d in dets]),
        np.stack([d.keypoints2d for d in dets]),
        K,
        side=[d.handedness for d in dets] if handedness == "detector" else "auto",
    )
    ms = (time.perf_counter() - t0) * 1000 / len(dets)
    return LandmarkFit(detections=dets, fit=fit, own=own_side_params(fit.params, fit.sides), ms_per_hand=ms)
