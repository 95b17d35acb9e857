"""The open stand-in hand: a MANO-schema right hand generated deterministically by this module.

MANO is licence-gated, so handmesh ships its own hand built here from a few dozen numbers: a lofted
palm whose knuckle end branches into four finger tubes, a thumb growing out of the palm's radial
side, rounded fingertips and a capped wrist - one closed, consistently oriented mesh of exactly 778
vertices. It uses MANO's right-hand frame (wrist at +x, fingers toward -x, palm facing -y, thumb on
the +z side), MANO's 16-joint tree and order, and puts the five fingertips at FreiHAND's tip vertex
ids. Shape directions are derivatives of the generator with respect to ten design parameters; the pose
PCA basis comes from the articulation prior's sampler; pose correctives are zero.

Why this frame: MANO's right-hand template has its wrist joint at about (0.096, 0.006, 0.006) (the
offset many codebases hard-code; the left hand's is mirrored in x) with the fingers extending toward -x,
and the positive z components of its mean pose curl the fingers, which (fingers along -x, flexion about
+z) puts the palm on the -y side and, for a right hand, the thumb on +z. Matching it keeps global
orientations, translations and pose priors interchangeable between MANO and the stand-in.

`standin_arrays()` returns the shipped `handmesh/assets/standin_right.npz` (what `build_standin()`
makes; a test rebuilds it and compares) and falls back to building it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handmesh.hand_model.joints import (
    FINGER_MANO_JOINTS,
    FINGER_TIP_VERTEX,
    MANO_PARENTS,
    NUM_BETAS,
    NUM_MANO_JOINTS,
    NUM_VERTICES,
)
from handmesh.hand_model.prior import THUMB_DIRECTION, named_pose, sample_poses

ASSET = Path(__file__).resolve().parent.parent / "assets" / "standin_right.npz"

LONG = ("index", "middle", "ring", "pinky")  # sector order on the knuckle line, thumb side first
PALM_RINGS = 8  # wrist ring ... knuckle (branch) ring
PALM_COLS = 40  # vertices around a palm ring: 5 dorsal + 5 palmar per finger sector
SECTOR = 5
FINGER_K = 2 * SECTOR
THUMB_K = 14
# Intermediate rings per segment (proximal, middle, distal); each finger also has a ring at its two
# interphalangeal joints and two tip-cap rings: 9 + 10 + 9 + 8 finger rings and 7 thumb rings of 14.
FINGER_SEGMENT_RINGS = {"index": (2, 1, 2), "middle": (2, 2, 2), "ring": (2, 1, 2), "pinky": (2, 1, 1)}
THUMB_SEGMENT_RINGS = (1, 1, 1)
# The thumb leaves the palm through a hole cut in palm rings 1..5, columns 37..0 (palmar-radial edge):
# a 14-vertex loop; the 6 palm vertices inside it are left out.
HOLE_RINGS = (1, 5)
HOLE_COLS = (37, 38, 39, 0)


@dataclass(frozen=True)
class FingerSpec:
    """One long finger: knuckle position (x, y, z), direction angle, segment lengths, base radii."""

    mcp: tuple[float, float, float]
    angle_deg: float  # from -x toward +z (thumb side)
    lengths: tuple[float, float, float]  # MCP->PIP, PIP->DIP, DIP->tip
    radius: tuple[float, float]  # half-width, half-height at the base


# Adult right hand, metres, MANO frame. Wrist to middle fingertip is about 0.188 m.
FINGERS = {
    "index": FingerSpec((0.009, 0.000, 0.0245), 5.0, (0.0405, 0.0245, 0.0215), (0.0100, 0.0089)),
    "middle": FingerSpec((0.000, 0.002, 0.0045), 0.0, (0.0445, 0.0275, 0.0225), (0.0103, 0.0092)),
    "ring": FingerSpec((0.005, 0.000, -0.0145), -5.0, (0.0415, 0.0265, 0.0220), (0.0097, 0.0086)),
    "pinky": FingerSpec((0.015, -0.003, -0.0315), -11.0, (0.0325, 0.0195, 0.0195), (0.0085, 0.0076)),
}
WRIST = (0.094, 0.004, 0.002)
THUMB_BASE = (0.068, -0.009, 0.0215)
THUMB_LENGTHS = (0.040, 0.031, 0.0265)
THUMB_RADIUS = (0.0112, 0.0102)  # at the metacarpophalangeal joint

# Design parameters the ten shape directions move, with the change one unit of beta makes.
SHAPE_PARAMS = (
    ("scale", 0.06),  # overall size
    ("finger_length", 0.05),
    ("thickness", 0.08),  # finger and palm thickness
    ("palm_width", 0.06),
    ("palm_length", 0.05),
    ("thumb_length", 0.07),
    ("index_vs_ring", 0.04),  # index longer, ring shorter
    ("pinky_length", 0.07),
    ("palm_thickness", 0.10),
    ("tip_taper", 0.10),  # fingertips slimmer
)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _spow(c, e: float):
    """Signed power: the superellipse profile."""
    return np.sign(c) * np.abs(c) ** e


def _smoothstep(u):
    t = np.clip((np.asarray(u, dtype=np.float64) + 1.0) / 2.0, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _sector_angles(k: int) -> np.ndarray:
    # Ring vertex j sits at angle pi (j + 0.5) / (k/2): dorsal half first from the +lateral side,
    # then the palmar half back; no vertex lies exactly on the lateral extremes.
    return np.pi * (np.arange(k) + 0.5) / (k // 2)


class _Builder:
    """Accumulates vertices with their part labels and quads/triangles."""

    def __init__(self) -> None:
        self.verts: list[np.ndarray] = []
        self.faces: list[tuple[int, int, int]] = []

    def add(self, points: np.ndarray) -> np.ndarray:
        start = sum(len(v) for v in self.verts)
        self.verts.append(np.atleast_2d(points))
        return np.arange(start, start + len(np.atleast_2d(points)))

    def quad(self, a: int, b: int, c: int, d: int) -> None:
        self.faces += [(a, b, c), (a, c, d)]

    def strip(self, ring_a, ring_b) -> None:
        n = len(ring_a)
        for j in range(n):
            self.quad(ring_a[j], ring_a[(j + 1) % n], ring_b[(j + 1) % n], ring_b[j])

    def fan(self, ring, apex: int) -> None:
        n = len(ring)
        for j in range(n):
            self.faces.append((ring[j], ring[(j + 1) % n], apex))


def _design(beta: np.ndarray) -> dict:
    """Joint positions, finger frames and sizes for shape parameters `beta` (10,)."""
    p = {name: 1.0 + step * b for (name, step), b in zip(SHAPE_PARAMS, beta, strict=True)}
    wrist = np.array(WRIST) * [p["palm_length"], 1.0, p["palm_width"]]
    fingers = {}
    for name, spec in FINGERS.items():
        mcp = np.array(spec.mcp) * [p["palm_length"], 1.0, p["palm_width"]]
        a = np.radians(spec.angle_deg)
        d = np.array([-np.cos(a), 0.0, np.sin(a)])
        lateral = np.array([np.sin(a), 0.0, np.cos(a)])  # toward the thumb side
        scale = p["finger_length"]
        if name == "index":
            scale *= p["index_vs_ring"]
        elif name == "ring":
            scale /= p["index_vs_ring"]
        elif name == "pinky":
            scale *= p["pinky_length"]
        lengths = np.array(spec.lengths) * scale
        stations = np.concatenate([[0.0], np.cumsum(lengths)])
        fingers[name] = dict(
            mcp=mcp,
            d=d,
            lateral=lateral,
            lengths=lengths,
            joints=mcp + stations[1:3, None] * d,
            end=mcp + stations[3] * d,
            radius=np.array(spec.radius) * p["thickness"],
        )
    t_base = np.array(THUMB_BASE) * [p["palm_length"], 1.0, p["palm_width"]]
    t_len = np.array(THUMB_LENGTHS) * p["thumb_length"]
    d_t = THUMB_DIRECTION
    thumb = dict(
        base=t_base,
        d=d_t,
        lengths=t_len,
        joints=t_base + np.cumsum(t_len)[:2, None] * d_t,
        end=t_base + t_len.sum() * d_t,
        radius=np.array(THUMB_RADIUS) * p["thickness"],
    )
    return dict(p=p, wrist=wrist, fingers=fingers, thumb=thumb)


def _finger_stations(lengths: np.ndarray, counts: tuple[int, int, int], start: float, tip_r: float):
    """Ring stations (arc length from the base joint) and which of them sit on the two joints."""
    s1, s2, s3 = np.cumsum(lengths)
    equator = s3 - tip_r
    out = list(start + (s1 - start) * np.arange(1, counts[0] + 1) / (counts[0] + 1))
    out.append(s1)
    out += list(s1 + (s2 - s1) * np.arange(1, counts[1] + 1) / (counts[1] + 1))
    out.append(s2)
    out += list(s2 + (equator - s2) * np.arange(1, counts[2] + 1) / counts[2])
    caps = [s3 - tip_r * (1 - np.sin(np.radians(phi))) for phi in (45.0, 72.0)]
    rad = [1.0] * (len(out)) + [np.cos(np.radians(45.0)), np.cos(np.radians(72.0))]
    return np.array(out + caps), np.array(rad), (counts[0], counts[0] + 1 + counts[1])


def _generate(beta: np.ndarray) -> dict:
    """Build the mesh for shape parameters `beta`; topology never depends on beta."""
    des = _design(beta)
    p = des["p"]
    b = _Builder()
    info: dict = {"palm": [], "finger_rings": {}, "thumb_rings": [], "stations": {}}

    # --- palm: loft from the wrist ring to the branch (knuckle) ring, column k <-> column k.
    cols = np.arange(PALM_COLS)
    theta = _sector_angles(PALM_COLS)
    half_w = 0.029 * p["palm_width"]
    half_t = 0.0150 * p["palm_thickness"] * p["thickness"]
    wrist_c = des["wrist"] + [0.010, 0.0, 0.0]
    wrist_ring = wrist_c + np.stack(
        [np.zeros(PALM_COLS), half_t * _spow(np.sin(theta), 0.9), half_w * _spow(np.cos(theta), 0.9)], 1
    )
    branch = np.zeros((PALM_COLS, 3))
    sector_of_col = np.zeros(PALM_COLS, dtype=int)
    ang = _sector_angles(FINGER_K)
    for f, name in enumerate(LONG):
        fin = des["fingers"][name]
        spacing = [0.0200, 0.0195, 0.0180, 0.0170][f] * p["palm_width"]
        centre = fin["mcp"] + 0.009 * fin["d"] + [0.0, -0.001, 0.0]
        hh = 0.0122 * p["palm_thickness"] * p["thickness"]
        ring = (
            centre
            + (spacing / 2) * _spow(np.cos(ang), 0.6)[:, None] * fin["lateral"]
            + hh * _spow(np.sin(ang), 0.7)[:, None] * np.array([0.0, 1.0, 0.0])
        )
        dorsal = SECTOR * f + np.arange(SECTOR)
        palmar = 2 * SECTOR * len(LONG) // 2 + SECTOR * (len(LONG) - 1 - f) + np.arange(SECTOR)
        branch[dorsal], branch[palmar] = ring[:SECTOR], ring[SECTOR:]
        sector_of_col[dorsal] = f
        sector_of_col[palmar] = f
    palm_ids = np.zeros((PALM_RINGS, PALM_COLS), dtype=int) - 1
    hole_interior = {(i, c) for i in range(HOLE_RINGS[0] + 1, HOLE_RINGS[1]) for c in HOLE_COLS[1:-1]}
    radial = np.clip(np.cos(theta), 0.0, None) ** 2  # 1 at the thumb-side edge, 0 past the middle
    # The knuckle ring dips between fingers; the palm should not carry those grooves down to the
    # wrist, so it is lofted toward a flattened knuckle ring and the dips fade in near the end.
    flat_branch = branch.copy()
    inner = np.ones(PALM_COLS, dtype=bool)
    inner[[0, PALM_COLS - 1, SECTOR * len(LONG) - 1, SECTOR * len(LONG)]] = False  # palm's outer edges
    centre_y = branch[:, 1].mean()
    hh_flat = 0.0122 * p["palm_thickness"] * p["thickness"]
    flat_branch[inner, 1] = centre_y + np.where(np.sin(theta[inner]) > 0, 1.0, -1.0) * hh_flat * 0.97
    for i in range(PALM_RINGS):
        t = i / (PALM_RINGS - 1)
        ring = (1 - t) * wrist_ring + t * flat_branch + t**4 * (branch - flat_branch)
        mid_y = (1 - t) * wrist_c[1] + t * branch[:, 1].mean()
        # Fleshy palm: thenar/hypothenar pads on the palmar side, a gentle dorsal arch.
        bulge = np.sin(np.pi * t) * np.where(ring[:, 1] < mid_y, 0.30, 0.12)
        bulge = bulge + np.where(ring[:, 1] < mid_y, 0.35, 0.0) * radial * np.sin(np.pi * min(1.0, 1.6 * t))
        ring[:, 1] = mid_y + (ring[:, 1] - mid_y) * (1 + bulge)
        ring[:, 2] += 0.004 * np.sin(np.pi * t) * np.sign(ring[:, 2] - ring[:, 2].mean())
        for c in cols:
            if (i, c) not in hole_interior:
                palm_ids[i, c] = b.add(ring[c])[0]
    for i in range(PALM_RINGS - 1):
        for j in range(PALM_COLS):
            j2 = (j + 1) % PALM_COLS
            in_hole = HOLE_RINGS[0] <= i < HOLE_RINGS[1] and j in HOLE_COLS[:-1]
            if not in_hole:
                b.quad(palm_ids[i, j], palm_ids[i, j2], palm_ids[i + 1, j2], palm_ids[i + 1, j])
    wrist_centre = b.add(wrist_ring.mean(0) + [0.002, 0.0, 0.0])[0]
    b.fan(palm_ids[0][::-1], wrist_centre)
    info["palm"] = palm_ids
    info["wrist_centre"] = wrist_centre

    # --- webs between neighbouring fingers on the knuckle ring.
    last = palm_ids[-1]
    for f in range(len(LONG) - 1):
        d_end = SECTOR * f + SECTOR - 1
        d_next = SECTOR * (f + 1)
        p_next_end = SECTOR * len(LONG) + SECTOR * (len(LONG) - 2 - f) + SECTOR - 1
        p_start = SECTOR * len(LONG) + SECTOR * (len(LONG) - 1 - f)
        b.quad(last[d_end], last[d_next], last[p_next_end], last[p_start])

    # --- long fingers: tubes starting at their knuckle-ring sector.
    for f, name in enumerate(LONG):
        fin = des["fingers"][name]
        dorsal = SECTOR * f + np.arange(SECTOR)
        palmar = SECTOR * len(LONG) + SECTOR * (len(LONG) - 1 - f) + np.arange(SECTOR)
        prev = np.concatenate([last[dorsal], last[palmar]])
        base_r = fin["radius"]
        tip_r = 0.5 * base_r.sum() * 0.80 / p["tip_taper"]
        stations, cap_scale, joint_idx = _finger_stations(
            fin["lengths"], FINGER_SEGMENT_RINGS[name], 0.009, tip_r
        )
        rings = []
        for r, (s, cs) in enumerate(zip(stations, cap_scale, strict=True)):
            frac = min(s / fin["lengths"].sum(), 1.0)
            taper = 1.0 - 0.2 * frac
            if frac > 0.7:
                taper = taper / (1 + (p["tip_taper"] - 1) * (frac - 0.7) / 0.3)
            knuckle = 1.05 if r in joint_idx else 1.0
            rw, rh = base_r * taper * knuckle * cs
            pad = np.where(np.sin(ang) < 0, 1.12, 0.95)  # fuller palmar pad, flatter nail side
            pts = (
                fin["mcp"]
                + s * fin["d"]
                + rw * _spow(np.cos(ang), 0.85)[:, None] * fin["lateral"]
                + (rh * pad * _spow(np.sin(ang), 0.9))[:, None] * np.array([0.0, 1.0, 0.0])
            )
            ids = b.add(pts)
            b.strip(prev, ids)
            rings.append(ids)
            prev = ids
        apex = b.add(fin["end"])[0]
        b.fan(prev, apex)
        info["finger_rings"][name] = rings
        info["stations"][name] = stations
        info[f"apex_{name}"] = apex

    # --- thumb: grows out of the hole loop on the palm's radial side.
    i0, i1 = HOLE_RINGS
    c0, c1, c2, c3 = HOLE_COLS
    loop = [
        palm_ids[i0, c0],
        palm_ids[i0, c1],
        palm_ids[i0, c2],
        palm_ids[i0, c3],
        *[palm_ids[i, c3] for i in range(i0 + 1, i1)],
        palm_ids[i1, c3],
        palm_ids[i1, c2],
        palm_ids[i1, c1],
        palm_ids[i1, c0],
        *[palm_ids[i, c0] for i in range(i1 - 1, i0, -1)],
    ]
    loop = np.array(loop)
    verts_so_far = np.concatenate(b.verts)
    th = des["thumb"]
    d_t = th["d"]
    e1 = _unit(np.cross(d_t, [0.0, 1.0, 0.0]))
    e2 = np.cross(e1, d_t)
    rel = verts_so_far[loop] - th["base"]
    loop_ang = np.unwrap(np.arctan2(rel @ e2, rel @ e1))
    direction = np.sign(loop_ang[-1] - loop_ang[0])
    uniform = loop_ang[0] + direction * 2 * np.pi * np.arange(THUMB_K) / THUMB_K
    uniform += np.mean(loop_ang - uniform)
    s_hole = float(np.mean(rel @ d_t))
    t_r = th["radius"]
    tip_r = 0.5 * t_r.sum() * 0.92 / p["tip_taper"]
    stations, cap_scale, joint_idx = _finger_stations(th["lengths"], THUMB_SEGMENT_RINGS, s_hole, tip_r)
    prev = loop
    rings = []
    loop_pts = verts_so_far[loop]
    for r, (s, cs) in enumerate(zip(stations, cap_scale, strict=True)):
        frac = (s - s_hole) / (th["lengths"].sum() - s_hole)
        knuckle = 1.05 if r in joint_idx else 1.0
        thenar = (1.45, 1.25, 1.1)[r] if r < 3 else 1.0  # the fleshy base of the thumb
        rw, rh = t_r * (1.0 - 0.12 * frac) * knuckle * thenar * cs
        ideal = (
            th["base"] + s * d_t + (rw * np.cos(uniform))[:, None] * e1 + (rh * np.sin(uniform))[:, None] * e2
        )
        # The first rings move each hole vertex part way toward its round ring, so the thumb grows
        # out of the oblique hole without folding back on itself.
        follow = (0.5, 0.2)[r] if r < 2 else 0.0
        pts = follow * loop_pts + (1 - follow) * ideal
        ids = b.add(pts)
        b.strip(prev, ids)
        rings.append(ids)
        prev = ids
    apex = b.add(th["end"])[0]
    b.fan(prev, apex)
    info["thumb_rings"] = rings
    info["thumb_loop"] = loop
    info["stations"]["thumb"] = stations
    info["apex_thumb"] = apex

    verts = np.concatenate(b.verts)
    joints = np.zeros((NUM_MANO_JOINTS, 3))
    joints[0] = des["wrist"]
    for name in LONG:
        ids = FINGER_MANO_JOINTS[name]
        fin = des["fingers"][name]
        joints[ids[0]] = fin["mcp"]
        joints[ids[1]], joints[ids[2]] = fin["joints"]
    ids = FINGER_MANO_JOINTS["thumb"]
    joints[ids[0]] = th["base"]
    joints[ids[1]], joints[ids[2]] = th["joints"]
    scale = p["scale"]
    return dict(
        verts=verts * scale,
        faces=np.array(b.faces, dtype=np.int64),
        joints=joints * scale,
        info=info,
        des=des,
    )


def _regressor(verts: np.ndarray, subset: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Weights on `subset` closest to uniform whose weighted mean is exactly `target` (affine)."""
    n = len(subset)
    a = np.vstack([verts[subset].T, np.ones(n)])  # (4, n)
    w0 = np.full(n, 1.0 / n)
    rhs = np.append(target, 1.0) - a @ w0
    return w0 + a.T @ np.linalg.solve(a @ a.T, rhs)


def _joint_sets(mesh: dict) -> dict[int, np.ndarray]:
    info = mesh["info"]
    palm = info["palm"]
    sets = {0: np.concatenate([palm[0], palm[1]])}
    for f, name in enumerate(LONG):
        ids = FINGER_MANO_JOINTS[name]
        rings = info["finger_rings"][name]
        dorsal = SECTOR * f + np.arange(SECTOR)
        palmar = SECTOR * len(LONG) + SECTOR * (len(LONG) - 1 - f) + np.arange(SECTOR)
        sector = np.concatenate([dorsal, palmar])
        sets[ids[0]] = np.concatenate([palm[-2][sector], palm[-1][sector]])
        c1, c2 = (
            FINGER_SEGMENT_RINGS[name][0],
            FINGER_SEGMENT_RINGS[name][0] + 1 + FINGER_SEGMENT_RINGS[name][1],
        )
        sets[ids[1]] = np.concatenate(rings[c1 - 1 : c1 + 2])
        sets[ids[2]] = np.concatenate(rings[c2 - 1 : c2 + 2])
    ids = FINGER_MANO_JOINTS["thumb"]
    rings = info["thumb_rings"]
    c1 = THUMB_SEGMENT_RINGS[0]
    c2 = c1 + 1 + THUMB_SEGMENT_RINGS[1]
    sets[ids[0]] = np.concatenate([info["thumb_loop"], rings[0], rings[1]])
    sets[ids[1]] = np.concatenate(rings[c1 - 1 : c1 + 2])
    sets[ids[2]] = np.concatenate(rings[c2 - 1 : c2 + 2])
    return sets


def _chain_weights(s: np.ndarray, ids: tuple[int, int, int], bounds: np.ndarray, widths) -> np.ndarray:
    """LBS weights along one finger: wrist -> j1 -> j2 -> j3 with smooth hand-overs at `bounds`."""
    w = np.zeros((len(s), NUM_MANO_JOINTS))
    on = [_smoothstep((s - b) / h) for b, h in zip(bounds, widths, strict=True)]
    w[:, 0] = 1 - on[0]
    w[:, ids[0]] = on[0] * (1 - on[1])
    w[:, ids[1]] = on[1] * (1 - on[2])
    w[:, ids[2]] = on[2]
    return w


def _skinning(mesh: dict, faces: np.ndarray) -> np.ndarray:
    verts, info, des = mesh["verts"], mesh["info"], mesh["des"]
    w = np.zeros((len(verts), NUM_MANO_JOINTS))
    palm = info["palm"]
    for f, name in enumerate(LONG):
        fin = des["fingers"][name]
        bounds = np.concatenate([[0.0], np.cumsum(fin["lengths"])[:2]])
        widths = (0.011, 0.0065, 0.0055)
        ids = FINGER_MANO_JOINTS[name]
        dorsal = SECTOR * f + np.arange(SECTOR)
        palmar = SECTOR * len(LONG) + SECTOR * (len(LONG) - 1 - f) + np.arange(SECTOR)
        sector_cols = np.concatenate([dorsal, palmar])
        palm_v = palm[:, sector_cols].ravel()
        palm_v = palm_v[palm_v >= 0]
        w[palm_v] = _chain_weights((verts[palm_v] - fin["mcp"]) @ fin["d"], ids, bounds, widths)
        ring_v = np.concatenate([*info["finger_rings"][name], [info[f"apex_{name}"]]])
        w[ring_v] = _chain_weights((verts[ring_v] - fin["mcp"]) @ fin["d"], ids, bounds, widths)
    th = des["thumb"]
    ids = FINGER_MANO_JOINTS["thumb"]
    bounds = np.concatenate([[0.0], np.cumsum(th["lengths"])[:2]])
    thumb_v = np.concatenate([*info["thumb_rings"], [info["apex_thumb"]]])
    s = (verts[thumb_v] - th["base"]) @ th["d"]
    w[thumb_v] = _chain_weights(s, ids, bounds, (0.012, 0.008, 0.007))
    # The thenar region around the thumb's root follows the thumb's first joint part way.
    palm_all = palm[palm >= 0]
    dist = np.linalg.norm(verts[palm_all] - th["base"], axis=1)
    share = 0.55 * np.clip(1 - dist / 0.032, 0, 1) ** 1.5
    w[palm_all] *= (1 - share)[:, None]
    w[palm_all, ids[0]] += share
    w[info["wrist_centre"], 0] = 1.0
    # A few rounds of smoothing over mesh neighbours soften the remaining seams.
    n = len(verts)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adj = np.zeros((n, n))
    adj[edges[:, 0], edges[:, 1]] = 1
    adj[edges[:, 1], edges[:, 0]] = 1
    adj /= adj.sum(1, keepdims=True)
    for _ in range(3):
        w = 0.5 * w + 0.5 * adj @ w
    w = np.clip(w, 0, None)
    return w / w.sum(1, keepdims=True)


def _orient(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Make the face winding consistent and outward (positive volume)."""
    import trimesh

    mesh = trimesh.Trimesh(verts, faces, process=False)
    trimesh.repair.fix_winding(mesh)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if trimesh.Trimesh(verts, faces, process=False).volume < 0:
        faces = faces[:, ::-1].copy()
    return faces


def _pose_basis() -> np.ndarray:
    """45 orthonormal pose directions, ordered by variance of the prior's sampler (PCA)."""
    samples = sample_poses(4000, np.random.default_rng(20240917))
    centred = samples - samples.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=True)
    # Fix each component's sign so the result does not depend on the LAPACK build.
    idx = np.abs(vt).argmax(1)
    vt *= np.sign(vt[np.arange(len(vt)), idx])[:, None]
    return vt


def build_standin() -> dict[str, np.ndarray]:
    """Generate the stand-in right hand's MANO-schema arrays (deterministic)."""
    zero = np.zeros(NUM_BETAS)
    mesh = _generate(zero)
    verts = mesh["verts"]
    if len(verts) != NUM_VERTICES:
        raise AssertionError(f"stand-in has {len(verts)} vertices, expected {NUM_VERTICES}")
    faces = _orient(verts, mesh["faces"])
    delta = 0.05
    shapedirs = np.stack(
        [
            (_generate(zero + delta * e)["verts"] - _generate(zero - delta * e)["verts"]) / (2 * delta)
            for e in np.eye(NUM_BETAS)
        ],
        axis=-1,
    )
    jreg = np.zeros((NUM_MANO_JOINTS, NUM_VERTICES))
    for j, subset in _joint_sets(mesh).items():
        jreg[j, subset] = _regressor(verts, subset, mesh["joints"][j])
    weights = _skinning(mesh, faces)

    # Renumber so each fingertip apex lands on its FreiHAND id; the rest keep their order.
    tips = {name: mesh["info"][f"apex_{name}"] for name in FINGER_TIP_VERTEX}
    order = np.full(NUM_VERTICES, -1)
    for name, vid in FINGER_TIP_VERTEX.items():
        order[vid] = tips[name]
    taken = set(tips.values())
    order[order < 0] = [i for i in range(NUM_VERTICES) if i not in taken]
    new_id = np.argsort(order)
    kintree = np.array([[2**32 - 1 if p < 0 else p for p in MANO_PARENTS], list(range(NUM_MANO_JOINTS))])
    return {
        "v_template": verts[order],
        "shapedirs": shapedirs[order],
        "posedirs": np.zeros((NUM_VERTICES, 3, (NUM_MANO_JOINTS - 1) * 9)),
        "J_regressor": jreg[:, order],
        "weights": weights[order],
        "kintree_table": kintree.astype(np.int64),
        "f": new_id[faces].astype(np.int64),
        "hands_components": _pose_basis(),
        "hands_mean": named_pose("relaxed").astype(np.float64),
    }


def save_asset(path: str | Path = ASSET) -> Path:
    """Write the generated stand-in to `path` (the shipped asset by default)."""
    arrays = build_standin()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


_CACHE: dict[str, np.ndarray] | None = None


def standin_arrays() -> dict[str, np.ndarray]:
    """The stand-in right hand's arrays: the shipped asset, or generated when it is missing."""
    global _CACHE
    if _CACHE is None:
        if ASSET.is_file():
            with np.load(ASSET, allow_pickle=False) as npz:
                _CACHE = {k: npz[k] for k in npz.files}
        else:
            _CACHE = build_standin()
    return {k: v.copy() for k, v in _CACHE.items()}


if __name__ == "__main__":
    print(save_asset())
