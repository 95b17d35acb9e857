"""The array schema smplx's MANO reads, its validation, and mirroring a right hand into a left one."""

from __future__ import annotations

import numpy as np

from handmesh.errors import HandmeshError
from handmesh.hand_model.joints import MANO_PARENTS, NUM_MANO_JOINTS, NUM_POSE
from handmesh.mirror import MIRROR_SIGNS, mirror_faces, mirror_pose

# key -> expected shape (None: any length along that axis); the names are MANO's pickle keys.
SCHEMA: dict[str, tuple[int | None, ...]] = {
    "v_template": (None, 3),
    "shapedirs": (None, 3, None),
    "posedirs": (None, 3, (NUM_MANO_JOINTS - 1) * 9),
    "J_regressor": (NUM_MANO_JOINTS, None),
    "weights": (None, NUM_MANO_JOINTS),
    "kintree_table": (2, NUM_MANO_JOINTS),
    "f": (None, 3),
    "hands_components": (NUM_POSE, NUM_POSE),
    "hands_mean": (NUM_POSE,),
}
INT_KEYS = ("kintree_table", "f")


def validate_arrays(data: dict, source: str = "hand model") -> dict[str, np.ndarray]:
    """Check a hand-model dict against SCHEMA and return clean numpy arrays (float64 / int64)."""
    missing = [k for k in SCHEMA if k not in data]
    if missing:
        raise HandmeshError(f"{source}: missing key(s) {missing}; found {sorted(data)}")
    out: dict[str, np.ndarray] = {}
    for key, shape in SCHEMA.items():
        value = data[key]
        if hasattr(value, "toarray"):  # scipy.sparse (MANO ships J_regressor sparse)
            value = value.toarray()
        arr = np.asarray(value, dtype=np.int64 if key in INT_KEYS else np.float64)
        ok = arr.ndim == len(shape) and all(
            s is None or s == n for s, n in zip(shape, arr.shape, strict=False)
        )
        if not ok:
            raise HandmeshError(f"{source}: {key} has shape {arr.shape}, expected {shape}")
        out[key] = arr
    num_verts = out["v_template"].shape[0]
    for key, axis in (("shapedirs", 0), ("posedirs", 0), ("weights", 0), ("J_regressor", 1)):
        if out[key].shape[axis] != num_verts:
            raise HandmeshError(f"{source}: {key} has shape {out[key].shape}, but {num_verts} vertices")
    if out["shapedirs"].shape[2] < 10:
        raise HandmeshError(f"{source}: shapedirs has {out['shapedirs'].shape[2]} directions, need 10")
    out["shapedirs"] = out["shapedirs"][:, :, :10]
    parents = out["kintree_table"][0].copy()
    parents[0] = -1
    if tuple(int(p) for p in parents) != MANO_PARENTS:
        raise HandmeshError(f"{source}: kinematic tree {parents.tolist()} is not MANO's {list(MANO_PARENTS)}")
    if out["f"].min() < 0 or out["f"].max() >= num_verts:
        raise HandmeshError(f"{source}: faces index outside 0..{num_verts - 1}")
    return out


def _pose_feature_signs() -> np.ndarray:
    # posedirs multiply (R_j - I) flattened row-major; mirroring conjugates R by diag(-1,1,1),
    # which flips entry (r, c) by s_r * s_c.
    entry = np.outer(MIRROR_SIGNS, MIRROR_SIGNS).reshape(9)
    return np.tile(entry, NUM_MANO_JOINTS - 1)


def mirror_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The left hand made by mirroring a right hand (x -> -x), with MANO's left pose convention."""
    out = {k: np.array(v, copy=True) for k, v in arrays.items()}
    out["v_template"] = arrays["v_template"] * MIRROR_SIGNS
    out["shapedirs"] = arrays["shapedirs"] * MIRROR_SIGNS[None, :, None]
    out["posedirs"] = arrays["posedirs"] * MIRROR_SIGNS[None, :, None] * _pose_feature_signs()[None, None, :]
    out["f"] = mirror_faces(arrays["f"])
    if "render_f" in arrays:
        out["render_f"] = mirror_faces(arrays["render_f"])
    out["hands_mean"] = mirror_pose(arrays["hands_mean"])
    out["hands_components"] = mirror_pose(arrays["hands_components"])
    return out
