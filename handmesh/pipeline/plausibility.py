"""Is this mesh a plausible hand? Checks that turn a confident-looking but impossible result into a low score.

A fit or a regressor always returns a mesh, even for a fist read as a giant hand 5 cm from the lens.
Four checks, each a factor in [0, 1] multiplied into the hand's score:
- size: the wrist to middle-knuckle length (adult and child hands: about 6.5-12 cm);
- depth: the wrist's distance from the camera and the hand's own depth extent;
- joint limits: how far the articulation goes beyond the hand model's joint limits;
- reprojection: the mesh's joints projected into the image against the detector's 2D keypoints.
The pipeline multiplies the factor into the hand's score (an impossible hand is then shown with a score
near 0, and dropped when `PipelineConfig.min_plausibility` asks for it); `handmesh label` skips hands
below `PlausibilityConfig.min_factor`. The reasons are kept with the hand (`params["implausible"]`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

WRIST, MIDDLE_MCP = 0, 9


@dataclasses.dataclass
class PlausibilityConfig:
    """Ranges a real hand in front of a camera stays within (metres, radians, fractions of the box)."""

    palm_length: tuple[float, float] = (0.055, 0.135)  # wrist -> middle MCP
    wrist_depth: tuple[float, float] = (0.12, 4.0)  # closer than 12 cm a hand does not fit in the view
    depth_extent: float = 0.25  # a hand spans at most about this much in depth
    limit_excess: float = 0.35  # radians beyond the joint limits (summed) worth a factor exp(-1)
    reprojection: float = 0.15  # mean 2D joint miss / box side worth a factor exp(-1)
    min_factor: float = 0.3  # below it the hand is dropped


@dataclasses.dataclass
class Plausibility:
    """The combined factor, one factor per check, and the names of the checks that failed."""

    factor: float
    checks: dict[str, float]
    reasons: list[str]


def _range_factor(value: float, low: float, high: float, softness: float) -> float:
    """1 inside [low, high], falling off smoothly (Gaussian in units of `softness`) outside."""
    miss = max(low - value, value - high, 0.0)
    return float(np.exp(-((miss / softness) ** 2)))


def limit_excess(flat_pose: np.ndarray) -> float:
    """Radians by which a (45,) articulation, flat-hand relative, goes beyond the joint limits (summed)."""
    from handmesh.hand_model.prior import JOINT_LIMITS_LOWER, JOINT_LIMITS_UPPER

    lower = np.asarray(JOINT_LIMITS_LOWER, dtype=np.float64).reshape(-1)
    upper = np.asarray(JOINT_LIMITS_UPPER, dtype=np.float64).reshape(-1)
    pose = np.asarray(flat_pose, dtype=np.float64).reshape(-1)
    return float((np.clip(lower - pose, 0, None) + np.clip(pose - upper, 0, None)).sum())


def check_hand(
    joints: np.ndarray,
    K: np.ndarray,
    keypoints2d: np.ndarray | None = None,
    box: np.ndarray | None = None,
    flat_pose: np.ndarray | None = None,
    config: PlausibilityConfig | None = None,
) -> Plausibility:
    """Plausibility of one hand: joints (21,3) camera metres (FreiHAND order), the frame's K,
    the detector's 2D keypoints and box (optional), the articulation as flat-relative axis-angle (optional).
    """
    cfg = config or PlausibilityConfig()
    j = np.asarray(joints, dtype=np.float64)
    checks: dict[str, float] = {}
    palm = float(np.linalg.norm(j[MIDDLE_MCP] - j[WRIST]))
    checks["size"] = _range_factor(palm, *cfg.palm_length, softness=0.01)
    wrist_z = float(j[WRIST, 2])
    depth = _range_factor(wrist_z, *cfg.wrist_depth, softness=0.02)
    extent = float(np.ptp(j[:, 2]))
    checks["depth"] = depth * _range_factor(extent, 0.0, cfg.depth_extent, softness=0.05)
    if flat_pose is not None:
        checks["joint_limits"] = float(np.exp(-((limit_excess(flat_pose) / cfg.limit_excess) ** 2)))
    if keypoints2d is not None and wrist_z > 0:
        kp = np.asarray(keypoints2d, dtype=np.float64)
        q = j @ np.asarray(K, dtype=np.float64).T
        uv = q[:, :2] / np.clip(q[:, 2:], 1e-6, None)
        ref = np.asarray(box, dtype=np.float64) if box is not None else np.r_[kp.min(0), kp.max(0)]
        side = max(float(ref[2] - ref[0]), float(ref[3] - ref[1]), 1.0)
        miss = float(np.linalg.norm(uv - kp, axis=1).mean()) / side
        checks["reprojection"] = float(np.exp(-((miss / cfg.reprojection) ** 2)))
    factor = float(np.prod(list(checks.values())))
    reasons = [name for name, f in checks.items() if f < 0.5]
    return Plausibility(factor=factor, checks=checks, reasons=reasons)


def flat_pose_of(params: dict, hands_mean: np.ndarray | None = None) -> np.ndarray | None:
    """The flat-relative (45,) articulation of a HandEstimate's params, if they hold one.

    Every mesh source stores axis-angle relative to the mean hand (handmesh.pipeline.estimator): add
    `hands_mean`.
    """
    pose = params.get("hand_pose")
    if pose is None or hands_mean is None:
        return None
    pose = np.asarray(pose, dtype=np.float64).reshape(-1)
    return pose + np.asarray(hands_mean, dtype=np.float64).reshape(-1)


def score_hands(
    hands: list,
    detections: list,
    K: np.ndarray,
    hands_mean=None,
    config=None,
    min_factor: float | None = None,
) -> list:
    """Multiply each HandEstimate's score by its plausibility; drop hands below `min_factor`
    (default `config.min_factor`; 0 keeps every hand, flagged).

    Each kept hand records `params["plausibility"]` and, when a check failed, `params["implausible"]`
    (the failed checks' names). The detector's 2D keypoints are found by track id.
    """
    cfg = config or PlausibilityConfig()
    floor = cfg.min_factor if min_factor is None else float(min_factor)
    by_track = {d.track_id: d for d in detections}
    kept = []
    for hand in hands:
        det = by_track.get(hand.track_id)
        kp = None if det is None else det.keypoints2d
        check = check_hand(hand.joints, K, kp, hand.box, flat_pose_of(hand.params, hands_mean), config=cfg)
        if check.factor < floor:
            continue
        hand.score = float(hand.score) * check.factor
        hand.params["plausibility"] = np.asarray(check.factor)
        if check.reasons:
            hand.params["implausible"] = np.asarray(check.reasons)
        kept.append(hand)
    return kept
