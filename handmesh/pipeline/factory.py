"""Assemble a pipeline from command-line style choices: model files, detector spec, mode."""

from __future__ import annotations

import tempfile
from pathlib import Path

from handmesh.errors import HandmeshError, MissingFileError
from handmesh.pipeline.detector import Detector, parse_detector_spec
from handmesh.pipeline.estimator import LandmarkFitEstimator, MeshEstimator, ModelEstimator
from handmesh.pipeline.pipeline import HandMeshPipeline, PipelineConfig
from handmesh.pipeline.runtime import OnnxRuntimeModel, TorchRuntimeModel

MODES = ("auto", "model", "landmark-fit")
RUNTIMES = ("auto", "onnx", "torch")


def landmark_fit_available() -> bool:
    """Whether the landmark-fit mode (handmesh.fit) is installed in this tree."""
    try:
        import handmesh.fit  # noqa: F401
    except ImportError:
        return False
    return True


def checkpoint_runtime(checkpoint: str | Path, runtime: str = "auto"):
    """A .pt checkpoint as a runtime: torch on a GPU; on CPU exported to ONNX (temp file) for ONNX Runtime.

    runtime: "auto" (as described), "torch" or "onnx" to force one.
    """
    import torch

    if runtime not in RUNTIMES:
        raise HandmeshError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch" or (runtime == "auto" and torch.cuda.is_available()):
        return TorchRuntimeModel(checkpoint)
    from handmesh.export import export_onnx
    from handmesh.models import load_model

    path = Path(checkpoint)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}")
    folder = Path(tempfile.mkdtemp(prefix="handmesh-onnx-"))
    # ONNX Runtime runs the fused model 2-3x faster than torch on a CPU (DESIGN.md: t8 4.5 vs 9-15 ms)
    onnx_path = export_onnx(load_model(path), folder / (path.stem + ".onnx"), verify=False)
    rt = OnnxRuntimeModel(onnx_path)
    rt.name = f"{rt.name.split(' (')[0]} ({path.name}, ONNX Runtime)"
    return rt


def build_estimator(
    checkpoint: str | Path | None = None,
    onnx: str | Path | None = None,
    mode: str = "auto",
    runtime: str = "auto",
    crop_scale: float = 1.5,
) -> MeshEstimator:
    """The mesh source: the regressor when a model file is given (or mode="model"), else landmark fit."""
    if mode not in MODES:
        raise HandmeshError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    has_model = checkpoint is not None or onnx is not None
    if mode == "model" or (mode == "auto" and has_model):
        if not has_model:
            raise HandmeshError("mode 'model' needs --checkpoint CKPT or --onnx FILE")
        if onnx is not None or str(checkpoint).endswith(".onnx"):
            rt = OnnxRuntimeModel(onnx if onnx is not None else checkpoint)
        else:
            rt = checkpoint_runtime(checkpoint, runtime)
        return ModelEstimator(rt, crop_scale=crop_scale)
    if not landmark_fit_available():
        raise HandmeshError(
            "no model: pass --checkpoint CKPT or --onnx FILE (landmark-fit mode is not installed)"
        )
    return LandmarkFitEstimator()


def build_pipeline(
    checkpoint: str | Path | None = None,
    onnx: str | Path | None = None,
    mode: str = "auto",
    detector: str | Detector = "mediapipe",
    config: PipelineConfig | None = None,
) -> HandMeshPipeline:
    """A ready pipeline: model or landmark-fit mesh source, detector from a spec or an instance."""
    config = config or PipelineConfig()
    estimator = build_estimator(checkpoint, onnx, mode, config.runtime, config.crop_scale)
    if isinstance(detector, str):
        if detector.startswith("mediapipe"):
            from handmesh.pipeline.detector import MediaPipeDetector

            detector = MediaPipeDetector(
                max_hands=config.max_hands, model_complexity=1 if detector == "mediapipe-full" else 0
            )
        else:
            detector = parse_detector_spec(detector)
    return HandMeshPipeline(estimator, detector=detector, config=config)
