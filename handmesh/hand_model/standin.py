"""The open stand-in hand: a MANO-schema right hand generated deterministically by this module.

Step-1 version: palm and fingers are separate closed tubes (crude); same schema and tip ids as MANO.
"""

from __future__ import annotations

import numpy as np

from handmesh.hand_model.joints import (
    FINGER_TIP_VERTEX,
    MANO_PARENTS,
    NUM_MANO_JOINTS,
    NUM_POSE,
    NUM_VERTICES,
)

# MANO's right-hand frame: wrist at +x, fingers toward -x, palm facing -y (back of the hand +y),
# thumb on the +z side.
WRIST = np.array([0.095, 0.005, 0.005])
# finger -> (MANO joint ids, MCP position, direction in the x-z plane (deg from -x toward +z), lengths)
FINGER_SPECS = {
    "index": ((1, 2, 3), (0.008, 0.0, 0.024), 6.0, (0.040, 0.024, 0.022), 0.0090),
    "middle": ((4, 5, 6), (0.000, 0.002, 0.004), 0.0, (0.044, 0.027, 0.023), 0.0092),
    "ring": ((10, 11, 12), (0.006, 0.0, -0.015), -5.0, (0.041, 0.026, 0.022), 0.0085),
    "pinky": ((7, 8, 9), (0.017, -0.002, -0.032), -11.0, (0.033, 0.019, 0.020), 0.0075),
}
THUMB_BASE = np.array([0.068, -0.010, 0.022])
THUMB_DIR = np.array([-0.62, -0.30, 0.72])
THUMB_LENGTHS = (0.036, 0.031, 0.027)
THUMB_RADIUS = 0.0105


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _tube(points, radii, normal_hint, k, apex=True):
    """Rings of k vertices around the centreline points; faces between rings; an apex at the end."""
    verts, faces = [], []
    n = len(points)
    for i in range(n):
        t = _unit(points[min(i + 1, n - 1)] - points[max(i - 1, 0)])
        a = _unit(np.cross(normal_hint, t))
        b = np.cross(t, a)
        ang = 2 * np.pi * np.arange(k) / k
        ring = points[i] + radii[i][0] * np.cos(ang)[:, None] * a + radii[i][1] * np.sin(ang)[:, None] * b
        verts.append(ring)
    verts = np.concatenate(verts)
    for i in range(n - 1):
        for j in range(k):
            a0, a1 = i * k + j, i * k + (j + 1) % k
            b0, b1 = a0 + k, a1 + k
            faces += [(a0, b0, a1), (a1, b0, b1)]
    start_cap = len(verts)
    tip = points[-1] + _unit(points[-1] - points[-2]) * min(radii[-1]) * 0.9
    verts = np.vstack([verts, points[0][None], tip[None]])
    for j in range(k):
        faces.append((start_cap, j, (j + 1) % k))
        last = (n - 1) * k
        faces.append((last + j, start_cap + 1, last + (j + 1) % k))
    return verts, np.array(faces), start_cap + 1


def build_standin() -> dict[str, np.ndarray]:
    """Generate the stand-in right hand's MANO-schema arrays (deterministic)."""
    parts_v, parts_f, parts_w, tips = [], [], [], {}
    offset = 0
    joints = np.zeros((NUM_MANO_JOINTS, 3))
    joints[0] = WRIST
    up = np.array([0.0, 1.0, 0.0])

    def add(verts, faces, weights, tip_local=None, name=None):
        nonlocal offset
        parts_v.append(verts)
        parts_f.append(faces + offset)
        parts_w.append(weights)
        if tip_local is not None:
            tips[name] = offset + tip_local
        offset += len(verts)

    # palm: 8 rings of 41 from the wrist to the knuckles
    xs = np.linspace(WRIST[0], 0.012, 8)
    pts = np.stack([xs, np.full(8, 0.004), np.full(8, -0.002)], 1)
    radii = [(0.040, 0.013)] * 8
    v, f, _ = _tube(pts, radii, up, 41)
    w = np.zeros((len(v), NUM_MANO_JOINTS))
    w[:, 0] = 1
    add(v, f, w)
    for name, (ids, mcp, ang, lengths, rad) in FINGER_SPECS.items():
        d = _unit([-np.cos(np.radians(ang)), 0.0, np.sin(np.radians(ang))])
        mcp = np.asarray(mcp)
        pj = [mcp, mcp + d * lengths[0], mcp + d * (lengths[0] + lengths[1])]
        for jid, p in zip(ids, pj, strict=True):
            joints[jid] = p
        end = mcp + d * sum(lengths)
        s = np.linspace(0, 1, 9)
        cl = mcp[None] + (end - mcp)[None] * s[:, None]
        radii = [(rad * (1 - 0.25 * si), rad * 0.85 * (1 - 0.25 * si)) for si in s]
        v, f, tip = _tube(cl, radii, up, 10)
        w = np.zeros((len(v), NUM_MANO_JOINTS))
        along = np.concatenate([np.repeat(s, 10), [0.0, 1.0]]) * sum(lengths)
        seg = np.searchsorted(np.cumsum(lengths)[:2], along)
        w[np.arange(len(v)), np.array(ids)[seg]] = 1
        add(v, f, w, tip, name)
    jt = [
        THUMB_BASE,
        THUMB_BASE + THUMB_DIR * THUMB_LENGTHS[0],
        THUMB_BASE + THUMB_DIR * sum(THUMB_LENGTHS[:2]),
    ]
    d = _unit(THUMB_DIR)
    jt = [THUMB_BASE, THUMB_BASE + d * THUMB_LENGTHS[0], THUMB_BASE + d * sum(THUMB_LENGTHS[:2])]
    for jid, p in zip((13, 14, 15), jt, strict=True):
        joints[jid] = p
    end = THUMB_BASE + d * sum(THUMB_LENGTHS)
    s = np.linspace(0, 1, 6)
    cl = THUMB_BASE[None] + (end - THUMB_BASE)[None] * s[:, None]
    radii = [(THUMB_RADIUS * (1 - 0.2 * si), THUMB_RADIUS * 0.9 * (1 - 0.2 * si)) for si in s]
    k_thumb = 13
    v, f, tip = _tube(cl, radii, up, k_thumb)
    w = np.zeros((len(v), NUM_MANO_JOINTS))
    along = np.concatenate([np.repeat(s, k_thumb), [0.0, 1.0]]) * sum(THUMB_LENGTHS)
    seg = np.searchsorted(np.cumsum(THUMB_LENGTHS)[:2], along)
    w[np.arange(len(v)), np.array([13, 14, 15])[seg]] = 1
    add(v, f, w, tip, "thumb")

    verts = np.concatenate(parts_v)
    faces = np.concatenate(parts_f)
    weights = np.concatenate(parts_w)
    assert len(verts) == NUM_VERTICES, len(verts)
    # Permute so each tip vertex lands on its FreiHAND id.
    order = np.full(NUM_VERTICES, -1)
    for name, vid in FINGER_TIP_VERTEX.items():
        order[vid] = tips[name]
    rest = [i for i in range(NUM_VERTICES) if i not in set(tips.values())]
    order[order < 0] = rest
    inverse = np.argsort(order)
    verts, weights, faces = verts[order], weights[order], inverse[faces]
    # Joint regressor: each joint is the mean of its nearest vertices' ... crude: exact one-hot not possible,
    # so regress each joint from its 4 nearest vertices with least-squares weights summing to one.
    jreg = np.zeros((NUM_MANO_JOINTS, NUM_VERTICES))
    for j in range(NUM_MANO_JOINTS):
        near = np.argsort(np.linalg.norm(verts - joints[j], axis=1))[:6]
        jreg[j, near] = 1.0 / len(near)
    shapedirs = np.zeros((NUM_VERTICES, 3, 10))
    shapedirs[:, :, 0] = verts * 0.05
    kintree = np.array([[4294967295 if p < 0 else p for p in MANO_PARENTS], list(range(NUM_MANO_JOINTS))])
    hands_mean = np.zeros(NUM_POSE)
    for j in range(12):
        hands_mean[3 * j + 2] = 0.15
    return {
        "v_template": verts,
        "shapedirs": shapedirs,
        "posedirs": np.zeros((NUM_VERTICES, 3, (NUM_MANO_JOINTS - 1) * 9)),
        "J_regressor": jreg,
        "weights": weights,
        "kintree_table": kintree,
        "f": faces.astype(np.int64),
        "hands_components": np.eye(NUM_POSE),
        "hands_mean": hands_mean,
    }


_CACHE: dict[str, np.ndarray] | None = None


def standin_arrays() -> dict[str, np.ndarray]:
    """The stand-in right hand's arrays (generated once per process)."""
    global _CACHE
    if _CACHE is None:
        _CACHE = build_standin()
    return {k: v.copy() for k, v in _CACHE.items()}
