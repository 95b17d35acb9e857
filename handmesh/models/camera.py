"""The crop camera of the regressor and its conversion to a perspective camera (crop or full image).

The head predicts a weak-perspective camera ``cam = (s, tx, ty)`` in normalized crop coordinates
(-1 .. 1 across the crop, x right, y down): a point X of the hand model's frame (no translation) lands at

    u = S/2 * (1 + s * (X_x + tx)),   v = S/2 * (1 + s * (X_y + ty))        (S = crop size in pixels)

``s`` is in 1/metres (about 2 / hand extent when the hand fills the crop). The equivalent perspective
translation for a crop camera K_crop = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] keeps the pixel scale of
the hand (pixels per metre at the hand's depth) and the pixel where the model frame's origin lands:

    Tz = 2 f / (S s)  with f = (fx + fy) / 2,   Tx = (u0 - cx) Tz / fx,   Ty = (v0 - cy) Tz / fy,
    (u0, v0) = (S/2 (1 + s tx), S/2 (1 + s ty)).

For the nominal camera (fx = fy = focal, cx = cy = S/2) this is the usual T = (tx, ty, 2 focal / (S s)).
The model's ``joints2d`` are the perspective projection of ``joints + T`` with the nominal camera, so
training supervises the same projection that inference uses; weak and perspective differ only by the
hand's depth relief (|dZ| / Tz, a few per cent).

Crop to full image: the crop is a pixel-space affine map of the image (``geometry.crop_intrinsics``),
so the camera frame is unchanged. With ``K_crop = crop_intrinsics(K_image, box, S)``, ``vertices + T``
are camera-space points of the full image and project with ``K_image`` to image pixels. A left hand is
predicted on the mirrored crop (``np.fliplr``): see `crop_to_camera`.
"""

from __future__ import annotations

import numpy as np
import torch

from handmesh.mirror import flip_intrinsics, mirror_vertices


def nominal_K(img_size: int, focal: float, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Intrinsics (3,3) of the nominal crop camera: focal in pixels, principal point at the crop centre."""
    c = img_size / 2.0
    return torch.tensor([[focal, 0.0, c], [0.0, focal, c], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def weak_perspective_project(points: torch.Tensor, cam: torch.Tensor, img_size: int) -> torch.Tensor:
    """Crop pixels (B,N,2) of hand-frame points (B,N,3) under the weak-perspective camera (B,3)."""
    s = cam[:, None, 0:1]
    return img_size / 2.0 * (1.0 + s * (points[..., :2] + cam[:, None, 1:3]))


def _intrinsics_like(K, x):
    """fx, fy, cx, cy of K (...,3,3) (or (3,3) for every row), as x's kind of array."""
    K = K.to(x) if isinstance(x, torch.Tensor) else np.asarray(K, dtype=np.float64)
    return K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]


def _stack_last(parts: list, like):
    return torch.stack(parts, dim=-1) if isinstance(like, torch.Tensor) else np.stack(parts, axis=-1)


def cam_to_translation(cam, K_crop, img_size: int):
    """Translation (B,3) metres that puts hand-frame points into the camera of K_crop (B,3,3) or (3,3).

    Torch tensors (training, evaluation) or float64 numpy arrays (the ONNX Runtime pipeline) alike.
    """
    fx, fy, cx, cy = _intrinsics_like(K_crop, cam)
    s, tx, ty = cam[..., 0], cam[..., 1], cam[..., 2]
    half = img_size / 2.0
    tz = (fx + fy) / (img_size * s)
    u0 = half * (1.0 + s * tx)
    v0 = half * (1.0 + s * ty)
    return _stack_last([(u0 - cx) * tz / fx, (v0 - cy) * tz / fy, tz], cam)


def translation_to_cam(transl: torch.Tensor, K_crop: torch.Tensor, img_size: int) -> torch.Tensor:
    """Inverse of `cam_to_translation`: the weak-perspective camera (B,3) of a translation (B,3)."""
    K = K_crop.to(transl).expand(transl.shape[0], 3, 3)
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    tx, ty, tz = transl.unbind(-1)
    half = img_size / 2.0
    s = (fx + fy) / (img_size * tz)
    u0 = cx + fx * tx / tz
    v0 = cy + fy * ty / tz
    return torch.stack([s, (u0 / half - 1.0) / s, (v0 / half - 1.0) / s], dim=-1)


def crop_to_camera(points, cam, K_crop, img_size: int, mirrored: bool = False):
    """Camera-space points (B,N,3) of hand-frame model outputs (B,N,3) for a crop with intrinsics K_crop.

    K_crop is the intrinsics of the crop as cut from the image (``crop_intrinsics(K, box, S)``). With
    ``mirrored`` the network saw ``np.fliplr(crop)`` (a left hand predicted as a right hand): the points
    are placed in the mirrored world of the flipped crop and mirrored back (x negated); the caller
    reverses the face winding (``mirror.mirror_faces``). Torch tensors or numpy arrays alike.
    """
    if not mirrored:
        return points + cam_to_translation(cam, K_crop, img_size)[:, None, :]
    placed = points + cam_to_translation(cam, flip_intrinsics(K_crop, img_size), img_size)[:, None, :]
    return mirror_vertices(placed)


@torch.no_grad()
def predict_camera_space(
    model: torch.nn.Module, images: torch.Tensor, K: torch.Tensor, img_size: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Joints (B,21,3) and vertices (B,778,3) in the crop camera K (metres), plus the raw model output."""
    out = model(images)
    transl = cam_to_translation(out["cam"].float(), K.float(), img_size)[:, None, :]
    return out["joints"].float() + transl, out["vertices"].float() + transl, out
