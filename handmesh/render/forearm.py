"""The arm a rendered hand is attached to: a tapering forearm beyond the wrist, bare or in a sleeve, with a
watch or bracelet sometimes.

Rendering only: the forearm follows the posed hand's wrist (its across and palm directions from the
joints) with a random wrist bend, continues well past the image border as a real arm does, and never
enters the labels (joints, vertices and masks are the hand's). Works for MANO and the stand-in alike:
it needs only the 21 FreiHAND-order joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handmesh.geometry_np import project_points_np

# colours of clothes: mostly muted, sometimes saturated (RGB 0..1)
CLOTH = np.array(
    [
        [0.12, 0.12, 0.14],
        [0.85, 0.85, 0.83],
        [0.22, 0.28, 0.45],
        [0.45, 0.47, 0.5],
        [0.55, 0.12, 0.12],
        [0.2, 0.35, 0.22],
        [0.75, 0.65, 0.5],
        [0.35, 0.22, 0.15],
        [0.6, 0.7, 0.85],
        [0.9, 0.75, 0.2],
    ]
)
RINGS = 28  # stations of the forearm proper; an arm that must reach further gets more beyond it
COLUMNS = 32
# a real arm joins a body that is beside the line of sight, never along it: an arm straight at the camera
# ends in a disc over the hand, one straight away hides behind the hand in dark fringes
MIN_SIGHT_ANGLE = np.deg2rad(30.0)
MAX_REACH = 1.2  # metres past the wrist an arm may need to leave the picture


@dataclass
class ArmLook:
    """How one arm looks: bend at the wrist, thickness, sleeve and wrist band."""

    flex: float  # radians, wrist flexion (+ toward the palm)
    deviation: float  # radians, radial/ulnar deviation
    thickness: float  # scale of the cross-section
    sleeve_from: float | None  # metres from the wrist where the sleeve's cuff is; None: bare arm
    sleeve: np.ndarray  # RGB of the sleeve
    pattern: int  # 0 plain, 1 stripes across, 2 stripes along, 3 checks
    band: np.ndarray | None  # RGB of a watch strap or bracelet; None: no band
    length: float = 0.32  # metres past the wrist


def draw_arm_look(rng: np.random.Generator, sleeve_prob: float = 0.45, band_prob: float = 0.15) -> ArmLook:
    """A random arm."""
    sleeve = CLOTH[int(rng.integers(len(CLOTH)))] * rng.uniform(0.7, 1.15, 3)
    return ArmLook(
        flex=float(np.clip(rng.normal(0, 0.35), -0.9, 0.9)),
        deviation=float(np.clip(rng.normal(0, 0.15), -0.4, 0.4)),
        thickness=float(rng.uniform(0.9, 1.15)),
        sleeve_from=float(rng.uniform(0.03, 0.2)) if rng.random() < sleeve_prob else None,
        sleeve=np.clip(sleeve, 0, 1),
        pattern=int(rng.choice(4, p=[0.55, 0.2, 0.1, 0.15])),
        band=np.clip(
            rng.choice([[0.08, 0.08, 0.08], [0.6, 0.6, 0.62], [0.7, 0.55, 0.3], [0.4, 0.25, 0.15]]), 0, 1
        )
        if rng.random() < band_prob
        else None,
    )


def _rotate(v: np.ndarray, axis: np.ndarray, angle) -> np.ndarray:
    """Rodrigues' rotation of v about a unit axis (by each of several angles, given as a column)."""
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * (axis @ v) * (1 - np.cos(angle))


def off_sight(direction: np.ndarray, wrist: np.ndarray, across: np.ndarray) -> np.ndarray:
    """The arm's direction bent at the wrist (about `across`) by the least angle that takes it at least
    MIN_SIGHT_ANGLE off the camera's line of sight through the wrist (camera frame, camera at the origin)."""
    sight = wrist / np.linalg.norm(wrist)
    limit = np.cos(MIN_SIGHT_ANGLE)
    if abs(direction @ sight) <= limit:
        return direction
    bends = np.linspace(-0.9, 0.9, 181)  # radians of extra flexion or extension, as a wrist allows
    turned = _rotate(direction, across, bends[:, None])
    along = np.abs(turned @ sight)
    fine = along <= limit
    return (
        turned[np.argmin(np.where(fine, np.abs(bends), np.inf))] if fine.any() else turned[np.argmin(along)]
    )


def reach(wrist: np.ndarray, direction: np.ndarray, radius: float, K: np.ndarray, size: int) -> float:
    """Metres along the arm (at most MAX_REACH) until it has left a `size` x `size` picture with
    intrinsics K, counting its radius: where a real arm still is when it leaves a photo."""
    t = np.arange(0.0, MAX_REACH + 1e-9, 0.02)
    centre = wrist + t[:, None] * direction
    z = centre[:, 2]
    f = (K[0, 0] + K[1, 1]) / 2
    near = z < 0.02  # at the camera: the arm passes beside it (off_sight), so it is out of the picture
    uv = project_points_np(centre, K, min_depth=0.02)
    margin = radius * f / np.maximum(z, 0.02)
    out = near | ((uv < -margin[:, None]) | (uv > size + margin[:, None])).any(1)
    return float(t[np.argmax(out)] + 0.02) if out.any() else MAX_REACH


def forearm_mesh(
    joints: np.ndarray,
    side: str,
    arm: ArmLook,
    skin: np.ndarray,
    palm_skin: np.ndarray,
    K: np.ndarray | None = None,
    size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The forearm of a posed hand (21 FreiHAND-order joints, camera frame): vertices, faces (outward
    winding for the given side), per-vertex RGB. With the camera (K, size) it reaches past the picture."""
    wrist, index_mcp, middle_mcp, pinky_mcp = joints[0], joints[5], joints[9], joints[17]
    up = middle_mcp - wrist
    hand_len = float(np.linalg.norm(up))
    up /= hand_len
    across = index_mcp - pinky_mcp
    span = float(np.linalg.norm(across))
    across = across - up * (across @ up)
    across /= np.linalg.norm(across)
    palmar = np.cross(across, up) * (1.0 if side == "right" else -1.0)
    # the arm leaves the wrist opposite the fingers, bent at the wrist
    direction = _rotate(-up, across, -arm.flex * (1.0 if side == "right" else -1.0))
    direction = off_sight(_rotate(direction, palmar, arm.deviation), wrist, across)
    side_dir = np.cross(direction, palmar)
    side_dir /= np.linalg.norm(side_dir)
    normal = np.cross(side_dir, direction)

    # stations along the arm: from inside the palm (hides the joint) to past the image
    half_w = 0.42 * span * arm.thickness
    far = reach(wrist, direction, 1.8 * half_w, K, size) if K is not None and size else arm.length
    beyond = np.arange(arm.length + 0.05, far + 0.05, 0.05)  # the arm on to the picture's edge
    s = np.concatenate(
        [[-0.35 * hand_len, -0.15 * hand_len], np.linspace(0.0, arm.length, RINGS - 2), beyond]
    )
    rings = len(s)
    half_t = 0.62 * half_w
    # the forearm widens from the wrist toward the elbow's muscles, then narrows a little
    grow = 1 + 0.35 * np.clip(s / 0.14, 0, 1) - 0.1 * np.clip((s - 0.2) / 0.12, 0, 1)
    grow[:2] = (0.9, 0.97)
    radius_scale = np.ones_like(s)
    if arm.band is not None:
        radius_scale *= 1 + 0.09 * ((s > 0.018) & (s < 0.04))
    if arm.sleeve_from is not None:
        radius_scale *= 1 + 0.3 * np.clip((s - arm.sleeve_from) / 0.01, 0, 1)
    theta = np.linspace(0, 2 * np.pi, COLUMNS, endpoint=False)
    centre = wrist + s[:, None] * direction  # the first stations: bent back along the hand
    centre[:2] = wrist + s[:2, None] * (-up)
    ring_w = (half_w * grow * radius_scale)[:, None]
    ring_t = (half_t * grow * radius_scale)[:, None]
    # a rounded-rectangle cross-section (a superellipse): flatter than an ellipse, like a wrist
    c, sn = np.cos(theta), np.sin(theta)
    cx = np.sign(c) * np.abs(c) ** 0.8
    sy = np.sign(sn) * np.abs(sn) ** 0.8
    verts = (
        centre[:, None, :]
        + ring_w[..., None] * cx[None, :, None] * side_dir
        + ring_t[..., None] * sy[None, :, None] * normal
    )
    verts = verts.reshape(-1, 3)
    faces = []
    for r in range(rings - 1):
        a = r * COLUMNS + np.arange(COLUMNS)
        b = r * COLUMNS + (np.arange(COLUMNS) + 1) % COLUMNS
        faces += [np.stack([a, b, b + COLUMNS], 1), np.stack([a, b + COLUMNS, a + COLUMNS], 1)]
    cap = len(verts)
    verts = np.vstack([verts, centre[-1]])
    last = (rings - 1) * COLUMNS + np.arange(COLUMNS)
    following = (rings - 1) * COLUMNS + (np.arange(COLUMNS) + 1) % COLUMNS
    faces.append(np.stack([last, following, np.full(COLUMNS, cap)], 1))
    faces = np.concatenate(faces)
    # keep the winding outward: test one face against the direction from the axis
    tri = verts[faces[COLUMNS * 4]]
    n = np.cross(tri[1] - tri[0], tri[2] - tri[0])
    if n @ (tri.mean(0) - centre[2]) < 0:
        faces = faces[:, ::-1]

    # colours: skin, paler on the inner (palm-side) forearm, then the band and the sleeve
    ang = np.tile(theta, rings)
    along = np.repeat(s, COLUMNS)
    inner = np.clip(np.tile(sy, rings) * 1.5, 0, 1)[:, None]  # normal side = palm side
    colour = skin + 0.5 * inner * (palm_skin - skin)
    if arm.band is not None:
        colour[(along > 0.018) & (along < 0.04)] = arm.band
    if arm.sleeve_from is not None:
        cloth = np.tile(arm.sleeve, (len(along), 1))
        if arm.pattern == 1:
            cloth *= (0.75 + 0.25 * (np.sin(along * 180) > 0))[:, None]
        elif arm.pattern == 2:
            cloth *= (0.75 + 0.25 * (np.sin(ang * 6) > 0))[:, None]
        elif arm.pattern == 3:
            cloth *= (0.7 + 0.3 * ((np.sin(along * 150) > 0) ^ (np.sin(ang * 8) > 0)))[:, None]
        sleeve = (along >= arm.sleeve_from)[:, None]
        colour = np.where(sleeve, cloth, colour)
    colour = np.vstack([colour, colour[-1]])
    return verts.astype(np.float32), faces.astype(np.int64), np.clip(colour, 0, 1).astype(np.float32)
