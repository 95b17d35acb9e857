"""What a camera does to a picture: exposure, white balance, vignetting, defocus and motion blur, sensor
noise and JPEG compression, each at a controlled rate (`CameraEffects`), all drawn from a seed."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class CameraEffects:
    """Rates (0..1) and strengths of the camera's effects on a synthetic image."""

    exposure_std: float = 0.25  # stops
    white_balance_std: float = 0.04  # per-channel gain
    vignette_prob: float = 0.4
    blur_prob: float = 0.3  # half defocus, half motion blur
    noise_prob: float = 0.6
    jpeg_prob: float = 0.6  # recompressed at a random quality (40-95) before the file's own JPEG


NO_EFFECTS = CameraEffects(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _disk(radius: float) -> np.ndarray:
    r = max(int(np.ceil(radius)), 1)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    k = (xx**2 + yy**2 <= radius**2 + 0.5).astype(np.float32)
    return k / k.sum()


def _motion(length: float, angle: float) -> np.ndarray:
    n = max(int(np.ceil(length)) | 1, 3)
    k = np.zeros((n, n), np.float32)
    k[n // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), angle, 1.0)
    k = cv2.warpAffine(k, rot, (n, n))
    return k / max(float(k.sum()), 1e-6)


def apply_camera(image: np.ndarray, rng: np.random.Generator, fx: CameraEffects) -> np.ndarray:
    """The picture as a camera would have taken it: RGB float (0..255, linear-ish) in, RGB uint8 out."""
    h, w = image.shape[:2]
    img = image.astype(np.float32)
    scale = max(h, w) / 224.0
    if rng.random() < fx.blur_prob:
        if rng.random() < 0.5:
            img = cv2.filter2D(img, -1, _disk(rng.uniform(0.8, 2.5) * scale))
        else:
            img = cv2.filter2D(img, -1, _motion(rng.uniform(2, 9) * scale, rng.uniform(0, 180)))
    gain = 2 ** rng.normal(0, fx.exposure_std) * np.exp(rng.normal(0, fx.white_balance_std, 3))
    img = img * gain.astype(np.float32)
    if rng.random() < fx.vignette_prob:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (0.5 * max(h, w)) ** 2
        img *= (1 - rng.uniform(0.1, 0.45) * np.clip(r2, 0, 2) / 2)[..., None]
    if rng.random() < fx.noise_prob:
        # shot noise grows with the signal, read noise does not; darker exposures are noisier
        shot = rng.uniform(0.0, 0.6)
        read = rng.uniform(0.5, 4.0)
        sigma = np.sqrt(shot * np.clip(img, 0, 255) + read**2)
        img = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < fx.jpeg_prob:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out
