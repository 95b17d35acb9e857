"""Real-time pipeline: hand detection, crops, inference runtimes, tracking, smoothing, rendering."""

from handmesh.pipeline.crop import Crop, crop_hand, default_intrinsics, square_box
from handmesh.pipeline.detector import (
    Detector,
    HandDetection,
    MediaPipeDetector,
    StaticDetector,
    parse_detector_spec,
)
from handmesh.pipeline.estimator import HandEstimate, LandmarkFitEstimator, MeshEstimator, ModelEstimator
from handmesh.pipeline.factory import build_estimator, build_pipeline
from handmesh.pipeline.pipeline import HandMeshPipeline, PipelineConfig, PipelineResult, result_to_dict
from handmesh.pipeline.runtime import OnnxRuntimeModel, TorchRuntimeModel, load_runtime
from handmesh.pipeline.smoothing import OneEuroFilter, SmoothingConfig, TrackSmoother

__all__ = [
    "Crop",
    "crop_hand",
    "default_intrinsics",
    "square_box",
    "Detector",
    "HandDetection",
    "MediaPipeDetector",
    "StaticDetector",
    "parse_detector_spec",
    "HandEstimate",
    "LandmarkFitEstimator",
    "MeshEstimator",
    "ModelEstimator",
    "build_estimator",
    "build_pipeline",
    "HandMeshPipeline",
    "PipelineConfig",
    "PipelineResult",
    "result_to_dict",
    "OnnxRuntimeModel",
    "TorchRuntimeModel",
    "load_runtime",
    "OneEuroFilter",
    "SmoothingConfig",
    "TrackSmoother",
]
