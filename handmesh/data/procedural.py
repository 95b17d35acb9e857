"""Procedural appearance shared by the synthetic renderer and the augmentations: backgrounds, occluders,
skin tones, colour jitter and blur. Everything draws from a numpy Generator, so results follow the seed."""

from __future__ import annotations

import cv2
import numpy as np

# Reflectance-like skin colours (RGB, 0..1) from very light to very dark; a sample mixes two neighbours.
SKIN_TONES = np.array(
    [
        [0.98, 0.84, 0.74],
        [0.94, 0.76, 0.64],
        [0.88, 0.67, 0.53],
        [0.78, 0.57, 0.42],
        [0.66, 0.45, 0.32],
        [0.52, 0.34, 0.23],
        [0.38, 0.24, 0.16],
        [0.27, 0.17, 0.11],
    ]
)


def skin_tone(rng: np.random.Generator) -> np.ndarray:
    """A random skin colour (RGB 0..1) between two neighbouring palette entries, slightly tinted."""
    i = int(rng.integers(0, len(SKIN_TONES) - 1))
    t = rng.random()
    rgb = (1 - t) * SKIN_TONES[i] + t * SKIN_TONES[i + 1]
    rgb = rgb * rng.uniform(0.92, 1.08, size=3)
    return np.clip(rgb, 0.05, 1.0)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour in 0..255 (float32)."""
    return rng.uniform(0, 255, size=3).astype(np.float32)


def value_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 3) -> np.ndarray:
    """Smooth multi-scale noise in 0..1, shape (h,w): upsampled random grids, coarse to fine."""
    out = np.zeros((h, w), np.float32)
    total = 0.0
    cells = int(rng.integers(2, 6))
    amp = 1.0
    for _ in range(octaves):
        grid = rng.random((cells, cells)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        cells *= 2
        amp *= 0.5
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xx * np.float32(np.cos(angle)) + yy * np.float32(np.sin(angle))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = random_colour(rng), random_colour(rng)
    return c0 + t[..., None] * (c1 - c0)


def _noise_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    n = value_noise(rng, h, w, octaves=int(rng.integers(2, 5)))[..., None]
    c0, c1 = random_colour(rng), random_colour(rng)
    return c0 + n * (c1 - c0)


def _stripes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    angle = rng.uniform(0, np.pi)
    period = np.float32(rng.uniform(6, 40))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (xx * np.float32(np.cos(angle)) + yy * np.float32(np.sin(angle))) / period
    if rng.random() < 0.5:
        s = (np.floor(t) % 2)[..., None]
    else:
        s = (0.5 + 0.5 * np.sin(np.float32(2 * np.pi) * t))[..., None]
    c0, c1 = random_colour(rng), random_colour(rng)
    return c0 + s * (c1 - c0)


def draw_shapes(image: np.ndarray, rng: np.random.Generator, count: int, region=None) -> np.ndarray:
    """Draw `count` random filled shapes (ellipses, rectangles, polygons, thick lines) onto a float image
    in place; with `region` (x0,y0,x1,y1) the shapes are centred inside it. Returns their union mask."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = (float(v) for v in region) if region is not None else (0.0, 0.0, w, h)
    if not all(np.isfinite((x0, y0, x1, y1))) or x1 < x0 or y1 < y0:
        x0, y0, x1, y1 = 0.0, 0.0, w, h  # an unusable region (e.g. hand off the image): anywhere
    x0, x1 = np.clip((x0, x1), -w, 2 * w)  # far-off points would overflow the uniform draw's range
    y0, y1 = np.clip((y0, y1), -h, 2 * h)
    for _ in range(count):
        layer = np.zeros((h, w), np.uint8)
        # not rng.uniform(x0, x1): it rejects an empty range whose width is -0.0 (all points at x=0)
        cx, cy = x0 + (x1 - x0) * rng.random(), y0 + (y1 - y0) * rng.random()
        size = rng.uniform(0.08, 0.35) * max(x1 - x0, y1 - y0, 8)
        kind = int(rng.integers(0, 4))
        centre = (int(cx), int(cy))
        if kind == 0:
            axes = (max(int(size * rng.uniform(0.3, 1.0)), 1), max(int(size * rng.uniform(0.3, 1.0)), 1))
            cv2.ellipse(layer, centre, axes, rng.uniform(0, 180), 0, 360, 255, -1)
        elif kind == 1:
            a = rng.uniform(0, np.pi)
            half = np.array([size * rng.uniform(0.3, 1.0), size * rng.uniform(0.2, 0.8)])
            corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            pts = (corners @ rot.T + [cx, cy]).astype(np.int32)
            cv2.fillPoly(layer, [pts], 255)
        elif kind == 2:
            n = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = size * rng.uniform(0.4, 1.0, n)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
            cv2.fillPoly(layer, [pts], 255)
        else:
            a = rng.uniform(0, np.pi)
            d = np.array([np.cos(a), np.sin(a)]) * size
            p0 = (int(cx - d[0]), int(cy - d[1]))
            p1 = (int(cx + d[0]), int(cy + d[1]))
            cv2.line(layer, p0, p1, 255, max(int(size * rng.uniform(0.1, 0.35)), 2))
        sel = layer > 0
        if rng.random() < 0.5:
            image[sel] = random_colour(rng)
        else:
            ys, xs = np.nonzero(sel)
            if len(ys):  # texture only the shape's bounding box
                top, left = ys.min(), xs.min()  # new names: x0/y0 are the region of the next shapes
                tex = _noise_texture(rng, int(ys.max() - top + 1), int(xs.max() - left + 1))
                image[ys, xs] = tex[ys - top, xs - left]
        mask |= layer
    return mask > 0


def random_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A procedural background (gradient, noise, stripes, plus random shapes), RGB uint8 (h,w,3)."""
    kind = int(rng.integers(0, 3))
    base = (_gradient, _noise_texture, _stripes)[kind](rng, h, w).astype(np.float32)
    if rng.random() < 0.5:
        # a second layer blended through smooth noise mixes two textures into one scene
        other = (_gradient, _noise_texture, _stripes)[int(rng.integers(0, 3))](rng, h, w)
        a = value_noise(rng, h, w, octaves=2)[..., None]
        base = base + a * (other - base)
    draw_shapes(base, rng, int(rng.integers(0, 8)))
    return np.clip(base, 0, 255).astype(np.uint8)


def add_occluders(
    image: np.ndarray, rng: np.random.Generator, region, max_count: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Paint 1..max_count random shapes over `region` (x0,y0,x1,y1) of an RGB uint8 image.

    Returns the new image and the bool mask of occluded pixels."""
    out = image.astype(np.float32)
    mask = draw_shapes(out, rng, int(rng.integers(1, max_count + 1)), region=region)
    return np.clip(out, 0, 255).astype(np.uint8), mask


def colour_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.3,
    contrast: float = 0.3,
    saturation: float = 0.3,
    hue: float = 0.03,
) -> np.ndarray:
    """Random brightness, contrast, saturation and hue (fraction of a turn) changes of an RGB uint8 image."""
    img = image.astype(np.float32)
    img *= rng.uniform(1 - brightness, 1 + brightness)
    mean = img.mean()
    img = (img - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
    img = grey[..., None] + (img - grey[..., None]) * rng.uniform(1 - saturation, 1 + saturation)
    img = np.clip(img, 0, 255).astype(np.uint8)
    shift = rng.uniform(-hue, hue)
    if abs(shift) > 1e-4:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        # OpenCV's 8-bit hue runs 0..179
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(shift * 180))) % 180).astype(np.uint8)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return img


def blur(image: np.ndarray, rng: np.random.Generator, max_sigma: float = 1.5) -> np.ndarray:
    """Gaussian or short motion blur of random strength."""
    if rng.random() < 0.5:
        sigma = rng.uniform(0.3, max_sigma)
        return cv2.GaussianBlur(image, (0, 0), sigma)
    length = int(rng.integers(3, 8))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel /= max(float(kernel.sum()), 1e-6)
    return cv2.filter2D(image, -1, kernel)


def sensor_noise(image: np.ndarray, rng: np.random.Generator, max_std: float = 6.0) -> np.ndarray:
    """Additive Gaussian pixel noise."""
    std = rng.uniform(0, max_std)
    noisy = image.astype(np.float32) + np.float32(std) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)
