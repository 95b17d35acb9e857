"""The open stand-in hand: a MANO-schema right hand generated deterministically by handmesh.

MANO is licence-gated, so handmesh ships its own hand. `handmesh.hand_model.standin_mesh` generates the
surface (778 vertices, MANO's right-hand frame: wrist at +x, fingers toward -x, palm facing -y, thumb
on the +z side); this module rigs it into the arrays smplx's MANO layer reads: MANO's 16-joint tree and
order, a joint regressor, smooth skinning weights, shape directions (derivatives of the generator with
respect to ten design parameters), a pose PCA basis from the articulation prior's sampler, zero pose
correctives, and the five fingertips renumbered to FreiHAND's tip vertex ids. Beside MANO's keys it
carries `render_f`, the faces pictures draw (with the skin webs; labels and masks use `f`).

`standin_arrays()` returns the shipped `handmesh/assets/standin_right.npz` (what `build_standin()`
makes; a test rebuilds it and compares) and falls back to building it.
"""

from __future__ import annotations

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
from handmesh.hand_model.prior import named_pose, sample_poses
from handmesh.hand_model.standin_mesh import (
    FINGER_SEGMENT_RINGS,
    LONG,
    SECTOR,
    THUMB_SEGMENT_RINGS,
    generate_mesh,
    webbed_faces,
)

ASSET = Path(__file__).resolve().parent.parent / "assets" / "standin_right.npz"


def _smoothstep(u):
    t = np.clip((np.asarray(u, dtype=np.float64) + 1.0) / 2.0, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


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
    mesh = generate_mesh(zero)
    verts = mesh["verts"]
    if len(verts) != NUM_VERTICES:
        raise AssertionError(f"stand-in has {len(verts)} vertices, expected {NUM_VERTICES}")
    faces = _orient(verts, mesh["faces"])
    render_faces = _orient(verts, webbed_faces(mesh))
    delta = 0.05
    shapedirs = np.stack(
        [
            (generate_mesh(zero + delta * e)["verts"] - generate_mesh(zero - delta * e)["verts"])
            / (2 * delta)
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
        "render_f": new_id[render_faces].astype(np.int64),
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
