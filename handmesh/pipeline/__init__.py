"""Real-time pipeline: hand detection, crops, inference runtimes, tracking, smoothing, rendering."""

from handmesh.pipeline.crop import Crop, crop_hand, default_intrinsics, square_box
from handmesh.pipeline.detector import (
    Detector,
    HandDetection,
    MediaPipeDetector,
    StaticDetector,
)
from handmesh.pipeline.estimator import HandEstimate, LandmarkFitEstimator, MeshEstimator, ModelEstimator
from handmesh.pipeline.pipeline import HandMeshPipeline, PipelineConfig, PipelineResult
from handmesh.pipeline.predictor import (
    ImageResult,
    SourceConfig,
    VideoResult,
    build_detector,
    build_estimator,
    build_pipeline,
    load_runtime,
    run_on_image,
    run_on_video,
)
from handmesh.pipeline.runtime import OnnxRuntimeModel, TorchRuntimeModel
from handmesh.pipeline.schema import hand_to_dict, result_to_dict
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
    "build_detector",
    "HandEstimate",
    "LandmarkFitEstimator",
    "MeshEstimator",
    "ModelEstimator",
    "SourceConfig",
    "build_estimator",
    "build_pipeline",
    "run_on_image",
    "run_on_video",
    "ImageResult",
    "VideoResult",
    "HandMeshPipeline",
    "PipelineConfig",
    "PipelineResult",
    "result_to_dict",
    "hand_to_dict",
    "OnnxRuntimeModel",
    "TorchRuntimeModel",
    "load_runtime",
    "OneEuroFilter",
    "SmoothingConfig",
    "TrackSmoother",
]
