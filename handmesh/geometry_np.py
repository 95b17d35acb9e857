"""Native numpy geometry (float64, no torch): rotations, projection, crop intrinsics, similarity alignment.

The torch versions in `handmesh.geometry` serve training and the torch model; these serve the per-hand
paths that hold numpy arrays already (the ONNX runtime pipeline, the landmark fitter, data loading and
synthesis), where one or two hands per call make per-operation overhead the whole cost and a round
trip through torch costs more than the arithmetic. This module must not import torch: synth's render
workers and an ONNX-only deployment load it. Functions are batched over leading dims.
"""

from __future__ import annotations

import numpy as np

# v @ _SKEW, reshaped to 3x3, is the cross-product matrix [v]x: one small matmul, several times
# cheaper than assembling its nine entries.
_SKEW = np.zeros((3, 9))
_SKEW[0, 5], _SKEW[0, 7], _SKEW[1, 2], _SKEW[1, 6], _SKEW[2, 1], _SKEW[2, 3] = -1, 1, 1, -1, -1, 1
_EYE9 = np.eye(3).reshape(9)


def skew_np(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices (...,3,3) of vectors (...,3)."""
    return (v @ _SKEW).reshape(v.shape[:-1] + (3, 3))


def axis_angle_to_matrix_np(aa: np.ndarray) -> np.ndarray:
    """Axis-angle (...,3) -> rotation matrices (...,3,3): cos I + sin [n]x + (1 - cos) n n^T."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.sqrt((aa * aa).sum(-1, keepdims=True))
    # At angle 0 the axis is 0 and R = I exactly; below ~1e-8 rad the formula's error is below 1e-16.
    n = aa / np.maximum(angle, 1e-300)
    cos = np.cos(angle)
    out = ((1 - cos)[..., None] * (n[..., :, None] * n[..., None, :])).reshape(aa.shape[:-1] + (9,))
    out += (np.sin(angle) * n) @ _SKEW + cos * _EYE9
    return out.reshape(aa.shape[:-1] + (3, 3))


def matrix_to_axis_angle_np(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (...,3,3) -> axis-angle (...,3), angle in [0, pi], stable at 0 and near pi."""
    R = np.asarray(R, dtype=np.float64)
    w = 0.5 * np.stack(
        [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1
    )
    sin = np.linalg.norm(w, axis=-1)
    cos = 0.5 * (np.trace(R, axis1=-2, axis2=-1) - 1)
    angle = np.arctan2(sin, cos)
    small = sin < 1e-8
    aa = w * np.where(small, 1.0 + angle**2 / 6, angle / np.where(small, 1.0, sin))[..., None]
    near_pi = cos < -0.9
    if near_pi.any():
        # sin(angle) loses the axis near pi; the symmetric part R + R^T = 2 cos I + 2 (1 - cos) a a^T keeps it.
        sym = (R + np.swapaxes(R, -1, -2)) / 2 - cos[..., None, None] * np.eye(3)
        col = np.take_along_axis(
            sym, np.argmax(np.diagonal(sym, axis1=-2, axis2=-1), -1)[..., None, None], -1
        )
        axis = col[..., 0] / np.linalg.norm(col[..., 0], axis=-1, keepdims=True).clip(min=1e-12)
        axis = axis * np.where((axis * w).sum(-1) < 0, -1.0, 1.0)[..., None]
        aa = np.where(near_pi[..., None], axis * angle[..., None], aa)
    return aa


def right_jacobian_np(aa: np.ndarray) -> np.ndarray:
    """SO(3) right Jacobian (...,3,3): exp(aa + d) ~= exp(aa) exp(Jr(aa) d)."""
    t2 = (aa * aa).sum(-1)[..., None, None]
    small = t2 < 1e-8
    s2 = np.where(small, 1.0, t2)
    t = np.sqrt(s2)
    # (1 - cos t)/t^2 and (t - sin t)/t^3, by their series near t = 0
    b = np.where(small, 0.5 - t2 / 24, (1 - np.cos(t)) / s2)
    c = np.where(small, 1 / 6 - t2 / 120, (t - np.sin(t)) / (s2 * t))
    k = skew_np(aa)
    return np.eye(3) - b * k + c * (k @ k)


def project_points_np(points: np.ndarray, K: np.ndarray, min_depth: float = 1e-6) -> np.ndarray:
    """Perspective projection of camera-space points (...,N,3) with intrinsics (...,3,3) -> pixels (...,N,2).

    Depths are clamped to `min_depth` so points at or behind the camera give large but finite pixels.
    """
    p = np.asarray(points, dtype=np.float64) @ np.swapaxes(np.asarray(K, dtype=np.float64), -1, -2)
    return p[..., :2] / np.maximum(p[..., 2:3], min_depth)


def crop_affine_np(box: np.ndarray, out_size: int) -> np.ndarray:
    """The (...,3,3) pixel map of a crop: box [x0,y0,x1,y1] (...,4) resized to out_size x out_size.

    Warp the image with exactly this map (e.g. cv2.warpAffine with its first two rows) so images and
    `crop_intrinsics_np` agree: u' = (u - x0) * out_size / (x1 - x0), likewise for v.
    """
    box = np.asarray(box, dtype=np.float64)
    x0, y0, x1, y1 = np.moveaxis(box, -1, 0)
    sx, sy = out_size / (x1 - x0), out_size / (y1 - y0)
    o, one = np.zeros_like(sx), np.ones_like(sx)
    rows = [sx, o, -x0 * sx, o, sy, -y0 * sy, o, o, one]
    return np.stack(rows, axis=-1).reshape(box.shape[:-1] + (3, 3))


def crop_intrinsics_np(K: np.ndarray, box: np.ndarray, out_size: int) -> np.ndarray:
    """Intrinsics (...,3,3) of the crop `box` [x0,y0,x1,y1] (...,4) resized to out_size square pixels."""
    return crop_affine_np(box, out_size) @ np.asarray(K, dtype=np.float64)


def similarity_align_np(pred: np.ndarray, gt: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Align pred (...,N,3) onto gt (...,N,3) by the official FreiHAND similarity (reflections allowed).

    Both are centred and divided by their Frobenius norm (+eps, as the official script), rotated by the
    orthogonal Procrustes solution (det may be -1), scaled by the sum of singular values, then mapped
    back into gt's scale and position.
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    t_gt, t_pred = gt.mean(-2, keepdims=True), pred.mean(-2, keepdims=True)
    g, p = gt - t_gt, pred - t_pred
    s_gt = np.linalg.norm(g, axis=(-2, -1), keepdims=True) + eps
    s_pred = np.linalg.norm(p, axis=(-2, -1), keepdims=True) + eps
    g, p = g / s_gt, p / s_pred
    # Procrustes: R minimising ||g R - p|| is U V^T for g^T p = U S V^T; pred is mapped by R^T.
    u, s, vt = np.linalg.svd(np.swapaxes(g, -1, -2) @ p)
    rot = u @ vt
    scale = s.sum(-1)[..., None, None]
    return (p @ np.swapaxes(rot, -1, -2)) * scale * s_gt + t_gt


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V,3) (smooth shading), following the faces' winding."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    # bincount sums per vertex several times faster than np.add.at (the render mesh has 25k faces)
    idx = np.asarray(faces).T.ravel()
    normals = np.stack(
        [np.bincount(idx, np.tile(face_n[:, c], 3), minlength=len(vertices)) for c in range(3)], 1
    ).astype(vertices.dtype, copy=False)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(norm, 1e-12)
