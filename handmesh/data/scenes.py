"""Backgrounds with the statistics of photographs: what a rendered hand is composited onto.

Natural images have a 1/f amplitude spectrum, occlusion-layered shapes of every size, muted colours and
out-of-focus depth; the procedural generators here give those (dead leaves, 1/f noise, an indoor corner
of wall, table and objects, blurred layers). `BackgroundPool` adds the user's own photos
(`--backgrounds DIR`), cropped and scaled at random, as FreiHAND composited its green-screen hands.
Everything draws from a numpy Generator, so a seed fixes every pixel.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from handmesh.errors import HandmeshError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_BACKGROUNDS = 10_000


def natural_colour(rng: np.random.Generator) -> np.ndarray:
    """A colour as photographs have them: mostly muted, spread in brightness (RGB 0..255 float32)."""
    hsv = np.array(
        [rng.uniform(0, 180), 255 * rng.beta(1.2, 3.0), 255 * rng.uniform(0.12, 0.95)], np.float32
    ).astype(np.uint8)
    return cv2.cvtColor(hsv[None, None], cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def pink_noise(rng: np.random.Generator, h: int, w: int, exponent: float = 1.0) -> np.ndarray:
    """Noise with a 1/f^exponent amplitude spectrum, about 0..1 (h, w) float32."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f**exponent
    spectrum[0, 0] = 0
    out = np.fft.irfft2(spectrum, s=(h, w)).astype(np.float32)
    # mean +- 2.5 standard deviations to 0..1 (percentiles cost a sort of every pixel)
    return np.clip(0.5 + (out - out.mean()) / (5 * max(float(out.std()), 1e-6)), 0, 1)


def _colour_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Two natural colours blended through 1/f noise."""
    n = pink_noise(rng, h, w, rng.uniform(0.9, 1.6))[..., None]
    c0, c1 = natural_colour(rng), natural_colour(rng)
    return c0 + n * (c1 - c0)


def dead_leaves(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Occluding discs and boxes whose sizes follow a power law (the dead-leaves model), each textured."""
    image = _colour_field(rng, h, w)
    side = max(h, w)
    count = int(rng.integers(8, 30))
    # radii ~ r^-3 between 8 % and 70 % of the side: many small shapes, a few large ones
    u = rng.random(count)
    rmin, rmax = 0.08 * side, 0.7 * side
    radii = (rmin**-2 - u * (rmin**-2 - rmax**-2)) ** -0.5
    # one shading texture, tiled 2 x 2 (it wraps around seamlessly); every shape takes its own window
    texture = np.tile(1 + 0.25 * (pink_noise(rng, h, w, 1.8) - 0.5), (2, 2))
    layer = np.zeros((h, w), np.uint8)
    for r in np.sort(radii)[::-1]:
        layer[:] = 0
        cx, cy = rng.uniform(-0.1 * w, 1.1 * w), rng.uniform(-0.1 * h, 1.1 * h)
        if rng.random() < 0.6:
            axes = (max(int(r), 1), max(int(r * rng.uniform(0.4, 1.0)), 1))
            cv2.ellipse(layer, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA)
        else:
            box = ((cx, cy), (2 * r, 2 * r * rng.uniform(0.3, 1.0)), rng.uniform(0, 180))
            cv2.fillPoly(layer, [cv2.boxPoints(box).astype(np.int32)], 255, cv2.LINE_AA)
        colour = natural_colour(rng)
        oy, ox = int(rng.integers(0, h)), int(rng.integers(0, w))
        ys, xs = np.nonzero(layer)
        if not len(ys):
            continue
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1  # blend the shape's box only
        a = (layer[y0:y1, x0:x1].astype(np.float32) / 255)[..., None]
        shade = texture[oy + y0 : oy + y1, ox + x0 : ox + x1, None]
        image[y0:y1, x0:x1] = image[y0:y1, x0:x1] * (1 - a) + a * colour * shade
    return image


def indoor(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A wall and a table (or floor) meeting at a random line, lit by a soft gradient, with a few objects."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    wall = natural_colour(rng) * (0.8 + 0.3 * pink_noise(rng, h, w, 2.2)[..., None])
    table = natural_colour(rng) * (0.8 + 0.3 * pink_noise(rng, h, w, 1.4)[..., None])
    horizon = rng.uniform(0.2, 0.9) * h + (xx - w / 2) * np.tan(rng.normal(0, 0.15))
    image = np.where((yy > horizon)[..., None], table, wall)
    if rng.random() < 0.35:  # a bright window or a door frame on the wall
        x0, x1 = np.sort(rng.uniform(0, w, 2))
        y0, y1 = np.sort(rng.uniform(0, h, 2))
        bright = np.full(3, rng.uniform(200, 255), np.float32) * rng.uniform(0.9, 1.0, 3).astype(np.float32)
        image[int(y0) : int(y1), int(x0) : int(x1)] = bright
    for _ in range(int(rng.integers(0, 5))):
        layer = np.zeros((h, w), np.uint8)
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0.3 * h, h))
        bw, bh = int(rng.uniform(0.05, 0.35) * w), int(rng.uniform(0.05, 0.4) * h)
        cv2.rectangle(layer, (x, y - bh), (x + bw, y), 255, -1)
        image = np.where((layer > 0)[..., None], natural_colour(rng) * (0.85 + 0.3 * rng.random()), image)
    light = 1 + rng.normal(0, 0.3) * (xx / w - 0.5) + rng.normal(0, 0.3) * (yy / h - 0.5)
    return image * np.clip(light, 0.4, 1.6)[..., None]


def noise_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Colour 1/f noise: foliage, gravel, fabric at a distance."""
    out = _colour_field(rng, h, w)
    return out * (0.75 + 0.5 * pink_noise(rng, h, w, 1.0)[..., None])


GENERATORS = (dead_leaves, indoor, noise_field)


def procedural_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A photograph-like procedural background, RGB uint8 (h, w, 3), usually out of focus."""
    image = GENERATORS[int(rng.choice(len(GENERATORS), p=[0.45, 0.35, 0.2]))](rng, h, w)
    if rng.random() < 0.7:  # the hand is in focus, the scene behind it often is not
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 3.5) * max(h, w) / 224)
    return np.clip(image, 0, 255).astype(np.uint8)


class BackgroundPool:
    """The user's own background photos: a folder of images, each checked once; unreadable files are
    skipped with one line each."""

    def __init__(self, folder: str | Path) -> None:
        from handmesh.data.io import probe_image

        root = Path(folder)
        if not root.is_dir():
            raise HandmeshError(f"--backgrounds {folder}: not a folder of images")
        files = sorted(
            p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.is_symlink()
        )[:MAX_BACKGROUNDS]
        self.paths: list[Path] = []
        for path in files:
            try:
                probe_image(path)
            except HandmeshError as exc:
                print(f"handmesh: background skipped: {exc}", file=sys.stderr)
                continue
            self.paths.append(path)
        if not self.paths:
            raise HandmeshError(f"--backgrounds {folder}: no readable images in it ({', '.join(IMAGE_SUFFIXES)})")

    def __len__(self) -> int:
        return len(self.paths)

    def draw(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray | None:
        """A random crop of a random photo, scaled to (h, w) RGB uint8; None if that file broke since."""
        from handmesh.data.io import read_image

        path = self.paths[int(rng.integers(len(self.paths)))]
        try:
            image = read_image(path)
        except HandmeshError as exc:
            print(f"handmesh: background skipped: {exc}", file=sys.stderr)
            return None
        ih, iw = image.shape[:2]
        scale = rng.uniform(0.35, 1.0)
        ch, cw = max(int(ih * scale), 1), max(int(iw * scale), 1)
        side = min(ch, cw * h // max(w, 1))
        ch, cw = max(side, 1), max(side * w // max(h, 1), 1)
        ch, cw = min(ch, ih), min(cw, iw)
        y0, x0 = int(rng.integers(0, ih - ch + 1)), int(rng.integers(0, iw - cw + 1))
        crop = image[y0 : y0 + ch, x0 : x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=cv2.INTER_AREA)
