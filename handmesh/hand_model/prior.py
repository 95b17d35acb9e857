"""A simple articulation prior: joint limits, named poses and a sampler of plausible hand poses.

Everything here is the 45-D articulation (15 joints x axis-angle, MANO joint order without the wrist)
*as seen from the flat hand*, i.e. hands_mean + hand_pose of a flat_hand_mean=False model. It is
written in MANO's right-hand frame (fingers along -x, palm facing -y, thumb on the +z side), where
finger flexion is a positive rotation about z and spreading is a rotation about y; the same numbers
pose the stand-in and MANO alike (MANO's own joint axes are only roughly aligned with these, so
treat the poses as approximate on MANO).
"""

from __future__ import annotations

import numpy as np

from handmesh.errors import HandmeshError
from handmesh.hand_model.joints import FINGER_MANO_JOINTS, NUM_POSE

# Rows of the (15,3) articulation per finger (MANO joint id - 1).
ROWS: dict[str, tuple[int, int, int]] = {
    f: tuple(j - 1 for j in ids) for f, ids in FINGER_MANO_JOINTS.items()
}
LONG_FINGERS = ("index", "middle", "ring", "pinky")

# The flat hand's thumb direction in MANO's right-hand frame (from the base of the thumb outwards).
THUMB_DIRECTION = np.array([-0.70, -0.20, 0.69]) / np.linalg.norm([-0.70, -0.20, 0.69])
_PALMAR = np.array([0.0, -1.0, 0.0])
_ULNAR = np.array([0.0, 0.0, -1.0])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _axis_moving(direction: np.ndarray, move: np.ndarray) -> np.ndarray:
    """Rotation axis that moves `direction` toward `move` for a positive angle."""
    move = move - direction * (move @ direction)
    return _unit(np.cross(direction, move))


FLEX = np.array([0.0, 0.0, 1.0])  # long fingers: positive = toward the palm
SPREAD = np.array([0.0, 1.0, 0.0])  # long fingers: positive = toward the thumb side (twist is about x)
THUMB_FLEX = _axis_moving(THUMB_DIRECTION, _PALMAR + 0.5 * _ULNAR)  # curls the thumb into the palm
THUMB_OPPOSE = _axis_moving(THUMB_DIRECTION, _PALMAR)  # swings the thumb in front of the palm
THUMB_ABDUCT = _axis_moving(THUMB_DIRECTION, -_ULNAR)  # swings the thumb away from the index

# Joint limits (15,3), generous enough to contain MANO's mean hand and FreiHAND's poses with margin.
_finger_lo = np.array([[-0.60, -0.50, -0.50], [-0.60, -0.30, -0.25], [-0.60, -0.30, -0.35]])
_finger_hi = np.array([[0.60, 0.50, 1.75], [0.60, 0.30, 2.00], [0.60, 0.30, 1.60]])
_thumb_lo = np.array([[-0.80, -1.20, -1.00], [-1.30, -0.90, -0.90], [-0.70, -0.80, -0.70]])
_thumb_hi = np.array([[2.00, 0.90, 1.20], [1.00, 0.90, 1.00], [1.60, 0.80, 1.30]])
JOINT_LIMITS_LOWER = np.zeros((15, 3))
JOINT_LIMITS_UPPER = np.zeros((15, 3))
for _finger in LONG_FINGERS:
    JOINT_LIMITS_LOWER[list(ROWS[_finger])] = _finger_lo
    JOINT_LIMITS_UPPER[list(ROWS[_finger])] = _finger_hi
JOINT_LIMITS_LOWER[list(ROWS["thumb"])] = _thumb_lo
JOINT_LIMITS_UPPER[list(ROWS["thumb"])] = _thumb_hi
JOINT_LIMITS_LOWER.setflags(write=False)
JOINT_LIMITS_UPPER.setflags(write=False)
# How far each axis strays from a named pose in the pose sampler, relative to its flexion: real fingers
# bend freely, spread less and barely twist about their own bone (iid noise made corkscrew fingers).
NOISE_SCALE = np.zeros((15, 3))
for _finger in LONG_FINGERS:
    NOISE_SCALE[list(ROWS[_finger])] = [0.25, 0.5, 1.0]  # twist (x), spread (y), flexion (z)
NOISE_SCALE[list(ROWS["thumb"])] = 0.7  # the thumb's axes mix flexion, opposition and abduction
NOISE_SCALE = NOISE_SCALE.reshape(-1)
NOISE_SCALE.setflags(write=False)


def _finger(pose: np.ndarray, finger: str, flex=(0.0, 0.0, 0.0), spread: float = 0.0) -> None:
    rows = ROWS[finger]
    for row, angle in zip(rows, flex, strict=True):
        pose[row] += angle * FLEX
    pose[rows[0]] += spread * SPREAD


def _thumb(pose: np.ndarray, oppose: float = 0.0, abduct: float = 0.0, flex=(0.0, 0.0, 0.0)) -> None:
    rows = ROWS["thumb"]
    pose[rows[0]] += oppose * THUMB_OPPOSE + abduct * THUMB_ABDUCT
    for row, angle in zip(rows, flex, strict=True):
        pose[row] += angle * THUMB_FLEX


def _build(name: str) -> np.ndarray:
    # Thumb amounts were tuned on the stand-in so the pinch closes and the fist's thumb rests on the
    # middle phalanges (bench/render_standin.py shows them).
    pose = np.zeros((15, 3))
    if name == "flat":
        pass
    elif name == "relaxed":
        for k, finger in enumerate(LONG_FINGERS):
            _finger(
                pose, finger, (0.22 + 0.06 * k, 0.35 + 0.06 * k, 0.20 + 0.03 * k), spread=0.04 * (1.5 - k)
            )
        _thumb(pose, oppose=0.2, abduct=-0.2, flex=(0.05, 0.2, 0.25))
    elif name == "fist":
        for finger in LONG_FINGERS:
            _finger(pose, finger, (1.45, 1.75, 1.05))
        _thumb(pose, abduct=-0.5, flex=(-0.1, 0.5, 1.25))
    elif name == "spread":
        for finger, angle in zip(LONG_FINGERS, (0.30, 0.05, -0.18, -0.40), strict=True):
            _finger(pose, finger, (-0.08, 0.0, 0.0), spread=angle)
        _thumb(pose, abduct=0.45, flex=(0.0, -0.05, -0.05))
    elif name == "pinch":
        _finger(pose, "index", (0.90, 0.93, 0.47), spread=0.14)
        _finger(pose, "middle", (0.35, 0.45, 0.25))
        _finger(pose, "ring", (0.40, 0.50, 0.25), spread=-0.05)
        _finger(pose, "pinky", (0.45, 0.55, 0.30), spread=-0.12)
        _thumb(pose, oppose=0.28, abduct=-0.5, flex=(0.03, 0.12, 0.11))
    elif name == "point":
        _finger(pose, "index", (0.0, 0.0, 0.0), spread=0.05)
        for finger in ("middle", "ring", "pinky"):
            _finger(pose, finger, (1.45, 1.75, 1.05))
        _thumb(pose, abduct=-0.5, flex=(-0.1, 0.5, 1.25))
    elif name == "peace":
        _finger(pose, "index", (0.0, 0.05, 0.0), spread=0.25)
        _finger(pose, "middle", (0.0, 0.05, 0.0), spread=-0.1)
        for finger in ("ring", "pinky"):
            _finger(pose, finger, (1.45, 1.7, 1.0))
        _thumb(pose, abduct=-0.5, flex=(-0.1, 0.5, 1.1))
    elif name == "thumbs_up":
        for finger in LONG_FINGERS:
            _finger(pose, finger, (1.45, 1.75, 1.05))
        _thumb(pose, abduct=0.25, flex=(0.0, -0.1, 0.0))
    elif name == "ok":
        _finger(pose, "index", (0.95, 0.95, 0.5), spread=0.1)
        for k, finger in enumerate(("middle", "ring", "pinky")):
            _finger(pose, finger, (0.1 + 0.05 * k, 0.15, 0.1), spread=-0.1 * k)
        _thumb(pose, oppose=0.3, abduct=-0.45, flex=(0.05, 0.15, 0.15))
    elif name == "grasp":  # a power grasp around a bottle or a handle
        for k, finger in enumerate(LONG_FINGERS):
            _finger(pose, finger, (0.85 + 0.05 * k, 1.05, 0.6))
        _thumb(pose, oppose=0.4, abduct=-0.3, flex=(0.1, 0.3, 0.3))
    elif name == "claw":
        for finger in LONG_FINGERS:
            _finger(pose, finger, (0.25, 1.25, 0.95))
        _thumb(pose, oppose=0.3, abduct=0.1, flex=(0.1, 0.5, 0.6))
    elif name == "three":
        for finger, spread in (("index", 0.2), ("middle", 0.0), ("ring", -0.2)):
            _finger(pose, finger, (0.0, 0.05, 0.0), spread=spread)
        _finger(pose, "pinky", (1.45, 1.7, 1.0))
        _thumb(pose, abduct=-0.5, flex=(-0.1, 0.5, 1.1))
    else:
        raise HandmeshError(f"unknown pose {name!r}; known: {', '.join(NAMED_POSES)}")
    return pose.reshape(NUM_POSE)


# the poses `sample_poses` mixes (the stand-in's shipped pose basis is built from its samples: changing
# this list changes that asset)
BASE_POSES: tuple[str, ...] = ("flat", "relaxed", "fist", "spread", "pinch", "point")
NAMED_POSES: tuple[str, ...] = (
    *BASE_POSES,
    "peace",
    "thumbs_up",
    "ok",
    "grasp",
    "claw",
    "three",
)


def named_pose(name: str) -> np.ndarray:
    """A named articulation (45,) flat-relative: one of NAMED_POSES (everyday gestures and grasps)."""
    return clamp_to_limits(_build(name))


def clamp_to_limits(pose):
    """Clamp flat-relative articulation (..., 45) or (..., 15, 3), numpy or torch, to the joint limits."""
    flat = pose.shape[-1] == NUM_POSE
    if not flat and tuple(pose.shape[-2:]) != (15, 3):
        raise HandmeshError(f"pose must be (...,45) or (...,15,3), got {tuple(pose.shape)}")
    lo, hi = JOINT_LIMITS_LOWER, JOINT_LIMITS_UPPER
    if flat:
        lo, hi = lo.reshape(NUM_POSE), hi.reshape(NUM_POSE)
    if isinstance(pose, np.ndarray):
        return np.clip(pose, lo, hi)
    import torch

    return torch.minimum(torch.maximum(pose, pose.new_tensor(lo)), pose.new_tensor(hi))


def sample_poses(n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """n plausible articulations (n,45) flat-relative: blends of the named poses, per-finger curl, noise."""
    rng = np.random.default_rng(rng)
    bases = np.stack([_build(name) for name in BASE_POSES])  # (6,45)
    fist = _build("fist").reshape(15, 3)
    mix = rng.dirichlet(np.full(len(BASE_POSES), 0.6), size=n)  # (n,6)
    pose = (mix @ bases).reshape(n, 15, 3)
    # Each finger curls a bit more or less on its own (fingers move semi-independently).
    for finger in (*LONG_FINGERS, "thumb"):
        rows = list(ROWS[finger])
        extra = rng.normal(0.0, 0.18, size=(n, 1, 1))
        pose[:, rows] += extra * fist[rows]
    pose += rng.normal(0.0, 0.06, size=pose.shape)
    return clamp_to_limits(pose.reshape(n, NUM_POSE))
