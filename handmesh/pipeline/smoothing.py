"""Temporal smoothing of per-hand outputs: a vectorized One-Euro filter, one set of filters per track.

The One-Euro filter (Casiez et al., CHI 2012) is a low-pass filter whose cutoff rises with speed:
still hands are smoothed hard (no jitter), fast ones barely (little lag). Here it runs on whole arrays
at once; the speed that raises the cutoff is measured per point (the norm over its last axis), so a
point's x, y and z move together and a mesh keeps its shape.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from handmesh.config import option


@dataclasses.dataclass
class SmoothingConfig:
    """One-Euro parameters; cutoffs in Hz, beta in 1/metre (points are in metres)."""

    enabled: bool = dataclasses.field(
        default=True, metadata=option("One-Euro filtering of each track (never applied to single images)")
    )
    min_cutoff: float = dataclasses.field(
        default=1.5, metadata=option("cutoff at rest, Hz: lower = steadier, more lag")
    )
    beta: float = dataclasses.field(
        default=20.0, metadata=option("how fast the cutoff grows with speed: higher = less lag on fast moves")
    )
    d_cutoff: float = dataclasses.field(default=1.0, metadata=option("cutoff of the speed estimate, Hz"))


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over an array of (..., D) points, stepped with timestamps in seconds."""

    def __init__(self, min_cutoff: float = 1.5, beta: float = 20.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter the next sample `x` taken at time `t`; returns the smoothed array."""
        x = np.asarray(x, dtype=np.float64)
        if self.x is None or self.x.shape != x.shape or self.t is None or t <= self.t:
            # first sample, a shape change, or a non-increasing clock: restart from this sample
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self.t
        dx = (x - self.x) / dt
        self.dx = self.dx + _alpha(self.d_cutoff, dt) * (dx - self.dx)
        speed = np.linalg.norm(self.dx, axis=-1, keepdims=True) if x.ndim else np.abs(self.dx)
        a = _alpha(self.min_cutoff + self.beta * speed, dt)
        self.x = self.x + a * (x - self.x)
        self.t = float(t)
        return self.x.copy()


class TrackSmoother:
    """Named One-Euro filters per track id; filters of tracks that disappear are dropped."""

    def __init__(self, config: SmoothingConfig | None = None):
        self.config = config or SmoothingConfig()
        self._filters: dict[int, dict[str, OneEuroFilter]] = {}

    def smooth(self, track_id: int, values: dict[str, np.ndarray], t: float) -> dict[str, np.ndarray]:
        """Smoothed copies of `values` (name -> array) for one track at time t."""
        cfg = self.config
        if not cfg.enabled:
            return values
        filters = self._filters.setdefault(track_id, {})
        out = {}
        for name, x in values.items():
            f = filters.get(name)
            if f is None:
                f = filters[name] = OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
            else:
                f.min_cutoff, f.beta, f.d_cutoff = cfg.min_cutoff, cfg.beta, cfg.d_cutoff
            out[name] = f(x, t)
        return out

    def keep(self, track_ids) -> None:
        """Forget every track not in `track_ids`."""
        live = set(track_ids)
        for tid in list(self._filters):
            if tid not in live:
                del self._filters[tid]

    def reset(self) -> None:
        """Forget all tracks."""
        self._filters.clear()
