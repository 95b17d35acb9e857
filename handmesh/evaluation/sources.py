"""Mesh sources for evaluation: the regressor (a checkpoint or an ONNX file) and the landmark fit.

Each source does two jobs with the same parts `handmesh predict` uses:
- `on_crops(crops, K)`: meshes for hand crops cut around labelled boxes (FreiHAND's protocol), in the
  camera of each crop (K). The regressor runs on the batch and is placed with its own camera through K,
  so its 3D joints projected with K measure the whole model; the landmark fit runs the detector on each
  crop, fits the hand model to the landmarks of the hand it found there (None when it found none) and
  takes the crop's known side (a left hand arrives mirrored, as a right hand, like the model's input).
- `estimator`: the pipeline's mesh estimator, for evaluation with detection (`--detect`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol

import numpy as np

from handmesh.errors import HandmeshError
from handmesh.evaluation.config import SOURCES
from handmesh.pipeline.detector import Detector, HandDetection
from handmesh.pipeline.estimator import LandmarkFitEstimator, MeshEstimator, ModelEstimator

LANDMARK_CROP_SIZE = 224  # the landmark fit's crop: FreiHAND's own image size, MediaPipe's comfort zone

Mesh = tuple[np.ndarray, np.ndarray]  # joints (21,3), vertices (778,3), metres, in the crop's camera


class MeshSource(Protocol):
    """A mesh source as evaluation uses it."""

    kind: str  # "model" | "landmark-fit"
    name: str
    input_size: int  # side of the crops `on_crops` wants
    estimator: MeshEstimator
    hand_kind: str | None  # the hand model its meshes belong to ("mano" / "standin"; None: unknown)

    def on_crops(self, crops: np.ndarray, K: np.ndarray) -> list[Mesh | None]:
        """Meshes for (B,S,S,3) uint8 RGB right-hand crops with intrinsics K (B,3,3); None: no hand found."""
        ...


class ModelSource:
    """The regressor from a model file: `.pt` with torch (on `device`), `.onnx` with ONNX Runtime."""

    kind = "model"

    def __init__(self, path: str | Path, device: str | None = None, crop_scale: float = 1.5):
        from handmesh.pipeline.runtime import OnnxRuntimeModel, TorchRuntimeModel

        path = Path(path)
        if path.suffix.lower() == ".onnx":
            self.runtime = OnnxRuntimeModel(path)
            self.hand_kind = self.runtime.meta.get("hand_model_kind")
        else:
            self.runtime = TorchRuntimeModel(path, device=device)
            self.hand_kind = self.runtime.model.hand_model.kind
        self.name = self.runtime.name
        self.input_size = int(self.runtime.input_size)
        self.estimator = ModelEstimator(self.runtime, crop_scale=crop_scale)

    def on_crops(self, crops: np.ndarray, K: np.ndarray) -> list[Mesh | None]:
        """The regressor on the batch, each hand placed in its crop's camera by the model's camera."""
        from handmesh.models.camera import crop_to_camera

        out = self.runtime(np.ascontiguousarray(crops))
        cam, K = np.asarray(out["cam"], np.float64), np.asarray(K, np.float64)
        joints = crop_to_camera(np.asarray(out["joints"], np.float64), cam, K, self.input_size)
        verts = crop_to_camera(np.asarray(out["vertices"], np.float64), cam, K, self.input_size)
        return list(zip(joints, verts, strict=True))


def main_detection(detections: list[HandDetection], size: int) -> HandDetection | None:
    """The hand a crop is about: of the detections with landmarks, the one whose box centre lies nearest
    the crop's centre (the crop was cut around the labelled hand)."""
    dets = [d for d in detections if d.keypoints2d is not None and d.keypoints3d is not None]
    if not dets:
        return None
    centre = np.array([size / 2.0, size / 2.0])
    return min(dets, key=lambda d: float(np.linalg.norm((d.box[:2] + d.box[2:]) / 2.0 - centre)))


class LandmarkFitSource:
    """MediaPipe's landmarks on each image, the hand model fitted to them (handmesh.fit)."""

    kind = "landmark-fit"
    input_size = LANDMARK_CROP_SIZE

    def __init__(self, detector: Detector):
        self.detector = detector
        self.estimator = LandmarkFitEstimator()
        self.name = self.estimator.name
        self.hand_kind = self.estimator.hand.kind

    def on_crops(self, crops: np.ndarray, K: np.ndarray) -> list[Mesh | None]:
        """Per crop: detect, keep the central hand, fit it as the crop's right hand (None: none found)."""
        out: list[Mesh | None] = []
        for crop, k in zip(crops, np.asarray(K, np.float64), strict=True):
            det = main_detection(self.detector.detect(np.ascontiguousarray(crop), static=True), len(crop))
            if det is None:
                out.append(None)
                continue
            det = dataclasses.replace(det, handedness="right", track_id=-1)
            hand = self.estimator.estimate(crop, [det], k, {}, static=True)[0]
            out.append((np.asarray(hand.joints, np.float64), np.asarray(hand.vertices, np.float64)))
        return out


def build_source(
    kind: str, checkpoint: str | Path | None, detector: Detector | None = None, device: str | None = None
) -> MeshSource:
    """The mesh source asked for: "model" (needs a model file) or "landmark-fit" (needs none; `detector`
    finds the hand on each crop)."""
    if kind not in SOURCES:
        raise HandmeshError(f"unknown mesh source {kind!r}: choose one of {', '.join(SOURCES)}")
    if kind == "landmark-fit":
        if checkpoint is not None:
            raise HandmeshError("--source landmark-fit uses no model file: drop CKPT")
        if detector is None:
            from handmesh.pipeline.predictor import build_detector
            from handmesh.pipeline.search import DEFAULT_SEARCH

            detector = build_detector("mediapipe", 1, DEFAULT_SEARCH)
        return LandmarkFitSource(detector)
    if checkpoint is None:
        raise HandmeshError("--source model needs a model file (CKPT: a .pt checkpoint or an .onnx export)")
    return ModelSource(checkpoint, device=device)
