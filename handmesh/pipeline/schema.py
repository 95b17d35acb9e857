"""The one description of a processed frame and its hands, whatever the mesh source.

`handmesh predict`'s JSON, the demo's JSON downloads and `result_to_dict` in Python all come from here,
so the model and the landmark fit give the same fields (docs/demo.md, "Output schema"). Parameters are
MANO-style: `global_orient` (3) and `hand_pose` (45) axis-angle, the articulation relative to the mean
hand (FreiHAND's convention, MANO's `flat_hand_mean=False`), `betas` (10) and `transl` (3, metres), for
the hand model named in `hand_model` (its kind and side). Parameters of the stand-in hand are not MANO
parameters: they pose the stand-in only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handmesh.geometry_np import project_points_np
from handmesh.pipeline.estimator import HandEstimate

SCHEMA = "handmesh-hands/1"


def _floats(x, digits: int = 6) -> list:
    return np.round(np.asarray(x, dtype=np.float64), digits).tolist()


def _optional(params: dict, key: str, digits: int = 6) -> Any:
    return _floats(params[key], digits) if key in params else None


def hand_to_dict(hand: HandEstimate, K: np.ndarray | None = None, include_mesh: bool = False) -> dict:
    """A JSON-safe description of one hand: side, scores, hand model and its parameters, crop, joints."""
    p = hand.params
    d: dict[str, Any] = {
        "handedness": hand.handedness,
        "side_confidence": round(float(hand.side_confidence), 4),
        "body_side": hand.body_side,
        "score": float(hand.score),
        "plausibility": float(p["plausibility"]) if "plausibility" in p else None,
        "implausible": [str(r) for r in np.atleast_1d(p.get("implausible", []))],
        "track_id": int(hand.track_id),
        "source": hand.source,
        "hand_model": {"kind": hand.hand_model, "side": hand.handedness},
        "params": {k: _floats(v) for k, v in hand.model_params().items()},
        "box": _floats(hand.box, 2),
        "crop": {
            "box": _optional(p, "crop_box", 2),
            "mirrored": bool(p.get("mirrored", False)),
            "cam": _optional(p, "cam"),
        },
        "fit_error_m": float(p["fit_error_m"]) if "fit_error_m" in p else None,
        "joints3d": _floats(hand.joints),
    }
    if K is not None:
        d["joints2d"] = _floats(project_points_np(hand.joints, K), 2)
    if include_mesh:
        d["vertices"] = _floats(hand.vertices)
    return d


def result_to_dict(result, include_mesh: bool = False) -> dict:
    """A JSON-safe description of a processed frame (a PipelineResult)."""
    return {
        "schema": SCHEMA,
        "model": result.model,
        "K": np.asarray(result.K).tolist(),
        "image_size": [int(result.frame.shape[1]), int(result.frame.shape[0])],
        "timings_ms": {k: round(float(v), 3) for k, v in result.timings.items()},
        "hands": [hand_to_dict(h, result.K, include_mesh) for h in result.hands],
    }


def hands_summary(hands: list[dict]) -> str:
    """Schema hands in words, as the CLI and the demo say it: "2 hand(s), 1 implausible"."""
    bad = sum(1 for h in hands if h["implausible"])
    return f"{len(hands)} hand(s)" + (f", {bad} implausible" if bad else "")
