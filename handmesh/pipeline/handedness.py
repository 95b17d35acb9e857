"""Which hand is it? A left/right decision from the fit of both sides, not from the detector's label alone.

MediaPipe's handedness label is a guess from appearance and is often wrong on renders of the hand model
(palm and back confused). The landmarks themselves carry better evidence: a right hand's 21 keypoints
are the mirror image of a left hand's, and the hand model fits its own side's keypoints closely but the
other side's only with strained joints. So both sides are fitted and compared; the side whose fit
misses the landmarks by clearly less wins, and a hand whose two fits are about as good is "uncertain"
(None) rather than guessed. Measured on mirrored synthetic renders by `handmesh bench handedness`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from handmesh.pipeline.detector import HandDetection

# A side wins when the other side's fit error is at least this much larger (relative): below it the
# two fits are too close to call. On rendered hands MediaPipe's 3D landmarks mostly take the side its
# label names, so wrong decisions occur at every margin (bench/results/handedness_cpu.json); the margin
# only thins them out, and agreement with the detector is no independent check there.
MIN_MARGIN = 0.15
# Fit errors below this (metres) are all "a close fit": margins are taken relative to at least it, so two
# near-perfect fits 0.01 mm apart do not count as a clear decision.
ERROR_FLOOR = 0.002


@dataclasses.dataclass
class SideDecision:
    """One hand's side: `side` "left"|"right", or None when the evidence is too close to call."""

    side: str | None
    fit_side: str  # the side whose fit is closer, decided or not
    margin: float  # (worse fit error - better fit error) / max(better fit error, ERROR_FLOOR)
    errors: dict[str, float]  # fit error per side (metres of 3D joint error + normalized 2D error)
    detector_side: str
    detector_score: float

    @property
    def certain(self) -> bool:
        """Whether a side was decided."""
        return self.side is not None


def fit_error(error3d: np.ndarray, reprojection_px: np.ndarray, box_side: np.ndarray) -> np.ndarray:
    """One number per hand: 3D joint error (m) plus the 2D reprojection error as a fraction of the box.

    The 2D term is scaled so that 10 % of the box side counts like 1 cm in 3D.
    """
    repro = np.nan_to_num(np.asarray(reprojection_px, dtype=np.float64), nan=0.0)
    return np.asarray(error3d, dtype=np.float64) + 0.1 * repro / np.maximum(box_side, 1.0)


def decide_sides(
    detections: list[HandDetection],
    K: np.ndarray,
    min_margin: float = MIN_MARGIN,
    hand_model=None,
    fit_config=None,
) -> list[SideDecision]:
    """Fit every detection as a right and as a left hand (one batch) and decide each one's side.

    Detections need MediaPipe-style landmarks (keypoints3d and keypoints2d); K is the frame's camera.
    """
    from handmesh.fit import fit_keypoints

    if not detections:
        return []
    if any(d.keypoints3d is None or d.keypoints2d is None for d in detections):
        raise ValueError("decide_sides needs detections with 3D and 2D landmarks")
    n = len(detections)
    j3 = np.stack([d.keypoints3d for d in detections]).astype(np.float64)
    j2 = np.stack([d.keypoints2d for d in detections]).astype(np.float64)
    K = np.asarray(K, dtype=np.float64)
    fit = fit_keypoints(
        np.concatenate([j3, j3]),
        np.concatenate([j2, j2]),
        np.repeat(K[None], 2 * n, axis=0),
        side=["right"] * n + ["left"] * n,
        hand_model=hand_model,
        config=fit_config,
    )
    sides = np.array([np.ptp(d.keypoints2d, axis=0).max() for d in detections] * 2)
    err = fit_error(np.asarray(fit.error), np.asarray(fit.reprojection), sides)
    out = []
    for i, d in enumerate(detections):
        right, left = float(err[i]), float(err[n + i])
        best, worst = (("right", right), left) if right <= left else (("left", left), right)
        margin = (worst - best[1]) / max(best[1], ERROR_FLOOR)
        out.append(
            SideDecision(
                side=best[0] if margin >= min_margin else None,
                fit_side=best[0],
                margin=float(margin),
                errors={"right": right, "left": left},
                detector_side=d.handedness,
                detector_score=float(d.score),
            )
        )
    return out
