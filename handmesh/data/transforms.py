"""Crop + augmentation that keeps images, intrinsics and 3D/2D labels consistent, for every dataset.

The crop is a similarity warp of the image. An in-plane rotation of the crop is modelled exactly as
rotating the camera about its optical axis by R_z: 3D labels and the global orientation turn by R_z, and
the warp is the homography K_crop R_z K^-1, which is affine because K, R_z and K_crop all keep the
third coordinate. Left hands are mirrored to right hands before cropping.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from handmesh.data import procedural
from handmesh.data.record import HandRecord
from handmesh.geometry_np import axis_angle_to_matrix_np, matrix_to_axis_angle_np, project_points_np
from handmesh.mirror import flip_intrinsics, mirror_pose, mirror_vertices


@dataclass
class AugmentConfig:
    """Crop and augmentation settings (training jitter applies only when the transform is in train mode)."""

    img_size: int = 224
    crop: str = "auto"  # "image": the whole image; "hand": a box around the labels; "auto": hand if labelled
    hand_pad: float = 1.5  # crop side = longest side of the hand's box x hand_pad
    scale_jitter: float = 0.15  # crop side x uniform(1 - s, 1 + s)
    shift_jitter: float = 0.08  # centre moves by up to this fraction of the crop side
    rotation_deg: float = 30.0  # in-plane rotation uniform(-r, r)
    rotation_prob: float = 0.6
    colour: float = 0.3  # brightness / contrast / saturation strength
    hue: float = 0.03
    blur_prob: float = 0.2
    noise_prob: float = 0.2
    occluder_prob: float = 0.3


def rotation_z(angle: float) -> np.ndarray:
    """Rotation by `angle` radians about the camera's optical (z) axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def intrinsics_inverse(K: np.ndarray) -> np.ndarray:
    """Closed-form inverse of an upper-triangular K (LAPACK's thread start-up costs more than the maths)."""
    fx, s, cx, fy, cy = K[0, 0], K[0, 1], K[0, 2], K[1, 1], K[1, 2]
    return np.array(
        [[1 / fx, -s / (fx * fy), (s * cy - cx * fy) / (fx * fy)], [0.0, 1 / fy, -cy / fy], [0.0, 0.0, 1.0]]
    )


def crop_transform(
    K: np.ndarray, centre, side: float, out_size: int, angle: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The warp of a square crop (centre, side, in-plane rotation) to out_size pixels.

    Returns (M (2,3) source pixels -> crop pixels, K_crop (3,3), R_z (3,3) camera rotation). With
    angle 0 K_crop equals geometry.crop_intrinsics for the box centred at `centre` with that side.
    """
    K = np.asarray(K, np.float64)
    R = rotation_z(angle)
    zoom = out_size / float(side)
    K_inv = intrinsics_inverse(K)
    ray = R @ K_inv @ np.array([centre[0], centre[1], 1.0])
    K_crop = K.copy()
    K_crop[:2, :2] *= zoom
    K_crop[0, 2] = out_size / 2.0 - (K_crop[0, 0] * ray[0] + K_crop[0, 1] * ray[1])
    K_crop[1, 2] = out_size / 2.0 - K_crop[1, 1] * ray[1]
    H = K_crop @ R @ K_inv
    return H[:2] / H[2, 2], K_crop, R


def apply_affine(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2,3) affine to (N,2) points."""
    return points @ M[:, :2].T + M[:, 2]


def warp_image(image: np.ndarray, M: np.ndarray, out_size: int, border=(0, 0, 0)) -> np.ndarray:
    """Warp with M (source pixel centres -> output pixel centres), pre-shrinking big images to avoid aliasing."""
    zoom = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    if zoom < 0.5:
        # INTER_AREA first; cv2.resize maps pixel centres as u' = (u + 0.5) r - 0.5, folded into M.
        r = min(2.0 * zoom, 1.0)
        h, w = image.shape[:2]
        nw, nh = max(int(round(w * r)), 1), max(int(round(h * r)), 1)
        rx, ry = nw / w, nh / h
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        inv = np.array([[1 / rx, 0, (0.5 / rx) - 0.5], [0, 1 / ry, (0.5 / ry) - 0.5], [0, 0, 1]])
        M = (np.vstack([M, [0, 0, 1]]) @ inv)[:2]
    return cv2.warpAffine(
        image,
        M,
        (out_size, out_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=tuple(int(b) for b in border),
    )


def mirror_record(rec: HandRecord) -> HandRecord:
    """A left hand as a right hand: flip the image, negate camera x, mirror the pose (x,-y,-z)."""
    w = rec.image.shape[1]

    def neg_x(p):
        return None if p is None else mirror_vertices(np.asarray(p, np.float64))

    kp = None
    if rec.keypoints2d is not None:
        kp = np.asarray(rec.keypoints2d, np.float64).copy()
        kp[:, 0] = w - 1 - kp[:, 0]
    box = None
    if rec.box is not None:
        x0, y0, x1, y1 = np.asarray(rec.box, np.float64)
        box = np.array([w - 1 - x1, y0, w - 1 - x0, y1])
    return rec.copy(
        image=np.ascontiguousarray(rec.image[:, ::-1]),
        K=flip_intrinsics(rec.K, w),
        side="right" if rec.side == "left" else "left",
        joints3d=neg_x(rec.joints3d),
        vertices=neg_x(rec.vertices),
        keypoints2d=kp,
        mano_pose=None if rec.mano_pose is None else mirror_pose(rec.mano_pose),
        box=box,
        mask=None if rec.mask is None else np.ascontiguousarray(rec.mask[:, ::-1]),
    )


def keypoints_of(rec: HandRecord) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The hand's 21 2D keypoints in the source image (labels, else the projected 3D joints) and their conf."""
    if rec.keypoints2d is not None:
        conf = rec.keypoints_conf if rec.keypoints_conf is not None else np.ones(21)
        return np.asarray(rec.keypoints2d, np.float64), np.asarray(conf, np.float64)
    if rec.joints3d is not None and not rec.K_estimated:
        return project_points_np(np.asarray(rec.joints3d, np.float64), rec.K), np.ones(21)
    return None, None


def hand_box(rec: HandRecord, keypoints: np.ndarray | None, conf: np.ndarray | None):
    """The (x0,y0,x1,y1) box of the hand: labelled box, else keypoints, vertices or mask; None if unknown."""
    if rec.box is not None:
        return np.asarray(rec.box, np.float64)
    pts = None
    if rec.vertices is not None and not rec.K_estimated:  # the whole hand, palm and finger flesh included
        pts = project_points_np(np.asarray(rec.vertices, np.float64), rec.K)
    elif keypoints is not None and conf is not None and (conf > 0).sum() >= 2:
        pts = keypoints[conf > 0]
    elif rec.mask is not None and rec.mask.any():
        ys, xs = np.nonzero(rec.mask)
        pts = np.stack([xs, ys], 1).astype(np.float64)
    if pts is None:
        return None
    return np.concatenate([pts.min(0), pts.max(0)])


class HandTransform:
    """Turns a `HandRecord` into the training sample dict of the datasets contract."""

    def __init__(self, cfg: AugmentConfig | None = None, train: bool = False, crop: str | None = None):
        self.cfg = cfg or AugmentConfig()
        self.train = train
        # an explicit cfg.crop wins; "auto" takes the dataset's default (FreiHAND: image, custom: hand)
        self.crop = self.cfg.crop if self.cfg.crop != "auto" else (crop or "auto")

    def crop_box(self, rec: HandRecord, keypoints, conf) -> tuple[np.ndarray, float]:
        """Centre and side of the un-jittered square crop."""
        h, w = rec.image.shape[:2]
        box = None if self.crop == "image" else hand_box(rec, keypoints, conf)
        if box is None:
            return np.array([w / 2.0, h / 2.0]), float(max(w, h))
        centre = (box[:2] + box[2:]) / 2.0
        side = float(max(box[2] - box[0], box[3] - box[1], 8.0)) * self.cfg.hand_pad
        return centre, side

    def __call__(self, rec: HandRecord, rng: np.random.Generator | None = None) -> dict:
        """Crop (with jitter in train mode), mirror left hands, augment appearance; return tensors."""
        cfg = self.cfg
        if rng is None:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        mirrored = rec.side == "left"
        if mirrored:
            rec = mirror_record(rec)
        keypoints, conf = keypoints_of(rec)
        centre, side = self.crop_box(rec, keypoints, conf)
        angle = 0.0
        if self.train:
            side *= rng.uniform(1 - cfg.scale_jitter, 1 + cfg.scale_jitter)
            centre = centre + rng.uniform(-cfg.shift_jitter, cfg.shift_jitter, 2) * side
            if rng.random() < cfg.rotation_prob:
                angle = np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))
        S = cfg.img_size
        M, K_crop, R = crop_transform(rec.K, centre, side, S, angle)
        image = warp_image(rec.image, M, S)

        joints2d = None if keypoints is None else apply_affine(M, keypoints)
        if self.train:
            image = self._appearance(image, joints2d, conf, rng)

        sample = {
            # numpy, not torch: in a single-process loader torch's intra-op threads cost more than they save
            "image": torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255)),
            "K": torch.from_numpy(K_crop).float(),
        }
        _put(sample, "joints3d", None if rec.joints3d is None else rec.joints3d @ R.T, (21, 3))
        _put(sample, "vertices", None if rec.vertices is None else rec.vertices @ R.T, (778, 3))
        _put(sample, "joints2d", joints2d, (21, 2))
        sample["joints2d_conf"] = torch.from_numpy(
            np.zeros(21) if conf is None else np.asarray(conf, np.float64)
        ).float()
        pose = None
        if rec.mano_pose is not None and rec.betas is not None:
            pose = np.asarray(rec.mano_pose, np.float64).copy()
            pose[:3] = matrix_to_axis_angle_np(R @ axis_angle_to_matrix_np(pose[:3]))
        _put(sample, "mano_pose", pose, (48,), has="has_mano")
        sample["betas"] = torch.from_numpy(
            np.zeros(10) if pose is None else np.asarray(rec.betas, np.float64)
        ).float()
        sample["weight"] = torch.tensor(float(rec.weight))
        sample["mirrored"] = torch.tensor(float(mirrored))
        sample["index"] = torch.tensor(int(rec.index))
        return sample

    def _appearance(self, image, joints2d, conf, rng) -> np.ndarray:
        cfg = self.cfg
        S = cfg.img_size
        if rng.random() < cfg.occluder_prob:
            region = (0, 0, S, S)
            if joints2d is not None and conf is not None:
                # only labelled, finite points: a NaN keypoint would make the region NaN and crash numpy
                pts = joints2d[(conf > 0) & np.isfinite(joints2d).all(axis=1)]
                if len(pts):
                    region = (*pts.min(0), *pts.max(0))
            image, _ = procedural.add_occluders(image, rng, region)
        image = procedural.colour_jitter(image, rng, cfg.colour, cfg.colour, cfg.colour, cfg.hue)
        if rng.random() < cfg.blur_prob:
            image = procedural.blur(image, rng)
        if rng.random() < cfg.noise_prob:
            image = procedural.sensor_noise(image, rng)
        return image


def _put(sample: dict, key: str, value, shape, has: str | None = None) -> None:
    """Store a label (zeros when absent) and its has_* mask so every sample has the same keys."""
    sample[key] = torch.from_numpy(
        np.zeros(shape) if value is None else np.asarray(value, np.float64)
    ).float()
    sample[has or f"has_{key}"] = torch.tensor(0.0 if value is None else 1.0)
