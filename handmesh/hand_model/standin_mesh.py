"""The stand-in hand's surface: one closed mesh of exactly 778 vertices generated from a few dozen numbers.

A lofted palm whose knuckle end branches into four finger tubes, a thumb growing out of the palm's
radial side, rounded fingertips and a capped wrist. `generate_mesh(beta)` returns the vertices, faces,
joint centres and the ring/part bookkeeping that `handmesh.hand_model.standin` needs to rig the mesh
(joint regressor, skinning weights); the topology never depends on the ten shape parameters.
`webbed_faces(mesh)` is the topology pictures draw over the same vertices: the label mesh's fingers branch
at the knuckles, so in a picture they look too long and the thumb hangs off the palm; the render topology
spans the skin webs between them.

Why this frame: MANO's right-hand template has its wrist joint at about (0.096, 0.006, 0.006) (the
offset many codebases hard-code; the left hand's is mirrored in x) with the fingers extending toward -x,
and the positive z components of its mean pose curl the fingers, which (fingers along -x, flexion about
+z) puts the palm on the -y side and, for a right hand, the thumb on +z. Matching it keeps global
orientations, translations and pose priors interchangeable between MANO and the stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handmesh.hand_model.joints import FINGER_MANO_JOINTS, NUM_MANO_JOINTS
from handmesh.hand_model.prior import THUMB_DIRECTION

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
# Skin webs of the render topology: between long fingers up to their first proximal ring (a third of the
# phalanx, where the palm's digital crease sits), and between thumb and index up to the thumb's MCP ring.
WEB_RINGS = 1
THUMB_WEB_RINGS = 2


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

    def tube_ring(self, prev, points: np.ndarray, rings: list) -> np.ndarray:
        """Add the next ring of a tube, joined to `prev` by quads; appended to `rings`, ids returned."""
        ids = self.add(points)
        self.strip(prev, ids)
        rings.append(ids)
        return ids

    def cap(self, ring, point) -> int:
        """Close `ring` with a fan to one new apex vertex at `point`; returns its id."""
        apex = int(self.add(point)[0])
        self.fan(ring, apex)
        return apex


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


def generate_mesh(beta: np.ndarray) -> dict:
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
    wrist_centre = b.cap(palm_ids[0][::-1], wrist_ring.mean(0) + [0.002, 0.0, 0.0])
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
            prev = b.tube_ring(prev, pts, rings)
        apex = b.cap(prev, fin["end"])
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
        prev = b.tube_ring(prev, pts, rings)
    apex = b.cap(prev, th["end"])
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


def webbed_faces(
    mesh: dict, web_rings: int = WEB_RINGS, thumb_web_rings: int = THUMB_WEB_RINGS
) -> np.ndarray:
    """The render topology of `generate_mesh`'s output: the same vertices, with skin webs spanning the
    gaps between neighbouring fingers and between thumb and index that the label mesh leaves open."""
    info = mesh["info"]
    palm = info["palm"]
    last = palm[-1]
    remove: list[tuple[int, ...]] = []
    add: list[tuple[int, ...]] = []

    def rings_of(f: int) -> list[np.ndarray]:
        dorsal = SECTOR * f + np.arange(SECTOR)
        palmar = SECTOR * len(LONG) + SECTOR * (len(LONG) - 1 - f) + np.arange(SECTOR)
        base = np.concatenate([last[dorsal], last[palmar]])
        return [base, *info["finger_rings"][LONG[f]][:web_rings]]

    # Ring vertex 0 / 9 are a finger's dorsal / palmar vertices on its thumb side, 4 / 5 the far side.
    for f in range(len(LONG) - 1):
        a, b = rings_of(f), rings_of(f + 1)
        remove.append((a[0][4], b[0][0], b[0][9], a[0][5]))  # the label mesh's crotch at the knuckles
        for r in range(1, len(a)):
            remove += [
                (a[r - 1][4], a[r - 1][5], a[r][5], a[r][4]),
                (b[r - 1][9], b[r - 1][0], b[r][0], b[r][9]),
            ]
            add += [
                (a[r - 1][4], a[r][4], b[r][0], b[r - 1][0]),
                (a[r - 1][5], b[r - 1][9], b[r][9], a[r][5]),
            ]
        add.append((a[-1][4], b[-1][0], b[-1][9], a[-1][5]))  # the web's free edge
    if thumb_web_rings:
        # The thumb's loop vertices 7..10 are the top edge of its hole (palm ring 5, columns 0, 39, 38, 37):
        # the side facing the index. The web joins that side of the thumb's first rings to the palm's
        # radial edge up to the index knuckle.
        loop, t = info["thumb_loop"], info["thumb_rings"]
        ring = [loop, *t[:thumb_web_rings]]
        top = HOLE_RINGS[1]
        palmar_col, dorsal_col = HOLE_COLS[0], HOLE_COLS[-1]
        for r in range(1, len(ring)):
            remove += [(ring[r - 1][k], ring[r - 1][k + 1], ring[r][k + 1], ring[r][k]) for k in (7, 8, 9)]
        for i in range(top, PALM_RINGS - 1):
            remove += [
                (palm[i, c], palm[i, (c + 1) % PALM_COLS], palm[i + 1, (c + 1) % PALM_COLS], palm[i + 1, c])
                for c in HOLE_COLS[:-1]
            ]
        # the web's dorsal and palmar sheets: the thumb's side lines to the palm's edge above the hole
        rows = list(range(top, PALM_RINGS))
        dors = [palm[i, dorsal_col] for i in rows]
        palms = [palm[i, palmar_col] for i in rows]
        tdors = [r_[7] for r_ in ring]
        tpalm = [r_[10] for r_ in ring]
        add += _sheet(tdors, dors) + _sheet(palms, tpalm)
        # free edge: the thumb's last web ring (vertices 7..10) to the index knuckle's radial columns
        end = [palm[PALM_RINGS - 1, c] for c in HOLE_COLS[::-1]]
        tr = ring[-1]
        add += [(tr[7 + k], tr[8 + k], end[k + 1], end[k]) for k in range(3)]
    faces = [tuple(int(i) for i in f) for f in mesh["faces"]]
    gone = {frozenset(q) for q in remove}
    kept = [f for f in faces if not any(set(f) <= q for q in gone)]
    if len(faces) - len(kept) != 2 * len(remove):
        raise AssertionError(f"webs removed {len(faces) - len(kept)} faces, expected {2 * len(remove)}")
    tris = []  # winding is made consistent by the caller (standin._orient), as for the label faces
    for q in add:
        tris += [(q[0], q[1], q[2])] if len(q) == 3 else [(q[0], q[1], q[2]), (q[0], q[2], q[3])]
    return np.array(kept + tris, dtype=np.int64)


def _sheet(a: list, b: list) -> list[tuple[int, ...]]:
    """Faces joining two vertex lines that start at the same vertex (a[0] == b[0]) or not."""
    out: list[tuple[int, ...]] = []
    start = 1 if a[0] == b[0] else 0
    if start:
        out.append((a[0], a[1], b[1]))
    for r in range(start, min(len(a), len(b)) - 1):
        out.append((a[r], a[r + 1], b[r + 1], b[r]))
    return out
