"""Rotation conversions, pinhole projection, crop intrinsics and similarity (Procrustes) alignment.

Torch functions are batched over any leading dims, keep the input dtype, and are autograd-safe
(finite gradients at zero rotation). Their numpy twins end in `_np`: native float64 numpy written in
`handmesh.geometry_np` (importable without torch) and re-exported here.
"""

from __future__ import annotations

import torch

from handmesh.geometry_np import (  # noqa: F401 - the numpy twins, re-exported
    axis_angle_to_matrix_np,
    crop_affine_np,
    crop_intrinsics_np,
    matrix_to_axis_angle_np,
    project_points_np,
    similarity_align_np,
)

# Below this squared angle the Taylor series is used: its x^6 remainder is far below float64 eps,
# and the closed forms (no cancellation, see _rodrigues_coeffs) are exact enough above it.
_SMALL_ANGLE2 = 1e-6


def _skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix [v]x of (...,3) vectors -> (...,3,3)."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(v.shape[:-1] + (3, 3))


def _rodrigues_coeffs(angle2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sin(t)/t and (1-cos t)/t^2 from t^2, with safe values and gradients at t = 0."""
    small = angle2 < _SMALL_ANGLE2
    # sqrt only sees safe values so its gradient never becomes inf at 0.
    t = torch.sqrt(torch.where(small, torch.ones_like(angle2), angle2))
    a = torch.where(small, 1 - angle2 / 6 + angle2 * angle2 / 120, torch.sin(t) / t)
    # (1 - cos t) / t^2 written as 2 sin^2(t/2) / t^2 to avoid cancellation for small t.
    half = torch.sin(t / 2) / t
    b = torch.where(small, 0.5 - angle2 / 24 + angle2 * angle2 / 720, 2 * half * half)
    return a, b


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle (...,3) -> rotation matrices (...,3,3) (Rodrigues)."""
    angle2 = (aa * aa).sum(-1)
    a, b = _rodrigues_coeffs(angle2)
    k = _skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (...,3,3) -> unit quaternions (...,4) as (w, x, y, z) with w >= 0."""
    r00, r01, r02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    r10, r11, r12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    r20, r21, r22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # 4 * squared components; the largest one (>= 1) gives a well-conditioned division (Shepperd).
    sq = torch.stack(
        [1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22], dim=-1
    )
    best = sq.argmax(-1, keepdim=True)
    # Clamping only touches candidates that are not chosen (the chosen one has sq >= 1).
    two_q = torch.sqrt(sq.clamp(min=0.1))  # 2|q_i| per candidate
    dx, dy, dz = r21 - r12, r02 - r20, r10 - r01
    s01, s02, s12 = r01 + r10, r02 + r20, r12 + r21
    cands = torch.stack(
        [
            torch.stack([two_q[..., 0] ** 2, dx, dy, dz], -1) / (2 * two_q[..., 0:1]),
            torch.stack([dx, two_q[..., 1] ** 2, s01, s02], -1) / (2 * two_q[..., 1:2]),
            torch.stack([dy, s01, two_q[..., 2] ** 2, s12], -1) / (2 * two_q[..., 2:3]),
            torch.stack([dz, s02, s12, two_q[..., 3] ** 2], -1) / (2 * two_q[..., 3:4]),
        ],
        dim=-2,
    )
    q = torch.gather(cands, -2, best[..., None].expand(best.shape[:-1] + (1, 4))).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Quaternions (...,4) (w, x, y, z) -> axis-angle (...,3) with angle in [0, pi]."""
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    n2 = (v * v).sum(-1)
    small = n2 < _SMALL_ANGLE2
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    # angle / |v| -> 2/w as |v| -> 0 (series of 2 atan(n/w)/n in n).
    w_safe = torch.where(small, w, torch.ones_like(w))
    series = 2 / w_safe - 2 * n2 / (3 * w_safe**3)
    factor = torch.where(small, series, 2 * torch.atan2(n, w) / n)
    return v * factor[..., None]


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (...,3,3) -> axis-angle (...,3), angle in [0, pi]; robust near 0 and pi."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """Continuous 6D (...,6) = [col0, col1] -> rotation matrices (...,3,3) by Gram-Schmidt."""
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = torch.nn.functional.normalize(a1, dim=-1, eps=1e-8)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = torch.nn.functional.normalize(b2, dim=-1, eps=1e-8)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (...,3,3) -> 6D (...,6): the first column, then the second."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def project_points(points: torch.Tensor, K: torch.Tensor, min_depth: float = 1e-6) -> torch.Tensor:
    """Perspective projection of camera-space points (...,N,3) with intrinsics (...,3,3) -> pixels (...,N,2).

    Depths are clamped to `min_depth` so points at or behind the camera give large but finite pixels.
    """
    p = points @ K.transpose(-1, -2)
    return p[..., :2] / p[..., 2:3].clamp(min=min_depth)


def crop_affine(box: torch.Tensor, out_size: int) -> torch.Tensor:
    """The (...,3,3) pixel map of a crop: box [x0,y0,x1,y1] (...,4) resized to out_size x out_size.

    Use exactly this map when warping the image (e.g. cv2.warpAffine with its first two rows) so that
    images and `crop_intrinsics` agree: u' = (u - x0) * out_size / (x1 - x0), likewise for v.
    """
    x0, y0, x1, y1 = box.unbind(-1)
    sx = out_size / (x1 - x0)
    sy = out_size / (y1 - y0)
    o, one = torch.zeros_like(sx), torch.ones_like(sx)
    rows = [sx, o, -x0 * sx, o, sy, -y0 * sy, o, o, one]
    return torch.stack(rows, dim=-1).reshape(box.shape[:-1] + (3, 3))


def crop_intrinsics(K: torch.Tensor, box: torch.Tensor, out_size: int) -> torch.Tensor:
    """Intrinsics (...,3,3) of the crop `box` [x0,y0,x1,y1] (...,4) resized to out_size square pixels."""
    return crop_affine(box.to(K.dtype), out_size) @ K


def similarity_align(pred: torch.Tensor, gt: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Align pred (...,N,3) onto gt (...,N,3) by the official FreiHAND similarity (reflections allowed).

    Both are centred and divided by their Frobenius norm (+eps, as the official script), rotated by the
    orthogonal Procrustes solution (det may be -1), scaled by the sum of singular values, then mapped
    back into gt's scale and position.
    """
    t_gt = gt.mean(-2, keepdim=True)
    t_pred = pred.mean(-2, keepdim=True)
    g = gt - t_gt
    p = pred - t_pred
    s_gt = torch.linalg.norm(g, dim=(-2, -1), keepdim=True) + eps
    s_pred = torch.linalg.norm(p, dim=(-2, -1), keepdim=True) + eps
    g = g / s_gt
    p = p / s_pred
    # Procrustes: R minimising ||g R - p|| is U V^T for g^T p = U S V^T; pred is mapped by R^T.
    u, s, vt = torch.linalg.svd(g.transpose(-1, -2) @ p)
    rot = u @ vt
    scale = s.sum(-1)[..., None, None]
    return (p @ rot.transpose(-1, -2)) * scale * s_gt + t_gt
