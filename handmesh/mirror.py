"""Mirroring across the camera's x = 0 plane: how a left hand becomes a right hand and back.

The regressor and the fitter only know right hands: a left hand's crop is flipped left-right, predicted
as a right hand, and its points mirrored back (x negated) with the face winding reversed. Training data
mirrors left-hand records the same way. Points and intrinsics may be numpy arrays or torch tensors;
this module itself imports only numpy (synth workers and data loaders use it).
"""

from __future__ import annotations

import numpy as np

# Sign each axis takes under the mirror x -> -x.
MIRROR_SIGNS = np.array([-1.0, 1.0, 1.0])


def _signs_like(x):
    if isinstance(x, np.ndarray):
        return MIRROR_SIGNS.astype(x.dtype)
    import torch

    return torch.tensor(MIRROR_SIGNS, dtype=x.dtype, device=x.device)


def mirror_vertices(x):
    """Mirror points (..., 3) across the x = 0 plane (numpy array or torch tensor)."""
    return x * _signs_like(x)


def mirror_faces(faces: np.ndarray) -> np.ndarray:
    """Faces of a mirrored mesh: the same triangles with reversed winding."""
    return np.ascontiguousarray(np.asarray(faces)[:, ::-1])


def mirror_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror axis-angle triples (..., 3k) across x: (x, y, z) -> (x, -y, -z), MANO's left convention."""
    pose = np.asarray(pose, dtype=np.float64)
    return pose * np.tile(-MIRROR_SIGNS, pose.shape[-1] // 3)


def mirror_params(params: dict) -> dict:
    """Hand-model parameters of the mirror image: rotations by `mirror_pose`, the translation's x negated.

    A left hand predicted as the right model in the mirrored world becomes the left model's parameters
    (exact for a left model that mirrors the right one: the stand-in; approximate for MANO_LEFT).
    Keys other than global_orient, hand_pose and transl are copied unchanged.
    """
    out = dict(params)
    for key in ("global_orient", "hand_pose"):
        if key in out:
            out[key] = mirror_pose(out[key])
    if "transl" in out:
        out["transl"] = np.asarray(out["transl"], dtype=np.float64) * MIRROR_SIGNS
    return out


def flip_intrinsics(K, width: int):
    """Intrinsics (...,3,3) of an image flipped left-right (pixel u -> width - 1 - u), seen as a mirrored
    world: points mirrored with `mirror_vertices` project to the flipped pixels (numpy or torch)."""
    K = np.array(K, dtype=np.float64) if not hasattr(K, "clone") else K.clone()
    K[..., 0, 2] = (width - 1) - K[..., 0, 2]
    K[..., 0, 1] = -K[..., 0, 1]
    return K
