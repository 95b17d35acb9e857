"""Landmark fitting: the hand model fitted to 21 keypoints (MediaPipe landmarks, pseudo-labels)."""

from handmesh.fit.fitter import (
    FitConfig,
    FitResult,
    default_hand_model,
    fit_keypoints,
    own_side_params,
    skeleton_of,
)

__all__ = ["FitConfig", "FitResult", "default_hand_model", "fit_keypoints", "own_side_params", "skeleton_of"]
