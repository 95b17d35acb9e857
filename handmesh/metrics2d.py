"""2D keypoint scores on labelled images: PCK at fractions of the hand's size, its AUC, median distance.

The hand's size (`hand_size`) is the longer side of the tight box around the hand's labelled 2D
keypoints, in the same pixels as the keypoints. It depends on neither the image size, the crop nor a
labelled box's padding, so a distance divided by it means the same on a 224 px FreiHAND crop and on a
phone photo. A keypoint is correct at threshold t when its distance to the label is <= t x hand size.

Every labelled hand counts: a hand the mesh source did not find (no detection, no landmarks) has every
keypoint wrong at every threshold in the `pck_*` / `auc` figures, which therefore measure finding and
placing together; `found` is the share of hands found, and the `*_found` figures and the medians are over
the keypoints of found hands only.
"""

from __future__ import annotations

import numpy as np

from handmesh.errors import HandmeshError

PCK_FRACTIONS = (0.05, 0.1, 0.2)
AUC_MAX = 0.2  # the AUC integrates PCK over thresholds 0 .. AUC_MAX of the hand's size
AUC_STEPS = 100
MIN_SIZE_PX = 1.0  # a hand whose labelled keypoints span less than this cannot be scored
SCORE_KEYS_2D = (
    "pck_0.05",
    "pck_0.1",
    "pck_0.2",
    "auc_0_0.2",
    "pck_0.05_found",
    "pck_0.1_found",
    "pck_0.2_found",
    "auc_0_0.2_found",
    "median_error_hand",
    "median_error_px",
    "found",
    "num_hands",
    "num_found",
    "num_keypoints",
)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed trapz


def hand_size(keypoints2d: np.ndarray, conf: np.ndarray | None = None, divisor: bool = False) -> float:
    """Longer side (px) of the tight box around the labelled (conf > 0) keypoints; NaN with fewer than 2.

    `divisor=True`: at least MIN_SIZE_PX, for dividing a distance by it (a hand whose keypoints coincide
    would divide by zero)."""
    kp = np.asarray(keypoints2d, np.float64).reshape(-1, 2)
    sel = np.ones(len(kp), bool) if conf is None else np.asarray(conf).reshape(-1) > 0
    if sel.sum() < 2:
        return float("nan")
    pts = kp[sel]
    size = float((pts.max(0) - pts.min(0)).max())
    return max(size, MIN_SIZE_PX) if divisor else size


def normalized_errors(
    pred: np.ndarray, gt: np.ndarray, conf: np.ndarray, found: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per keypoint (N,21): distance / hand size (inf where the hand was not found, NaN where unlabelled),
    distance in pixels (NaN where not found or unlabelled), and each hand's size (N,)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    conf, found = np.asarray(conf, np.float64), np.asarray(found, bool)
    if pred.shape != gt.shape or gt.ndim != 3 or gt.shape[2] != 2 or conf.shape != gt.shape[:2]:
        raise HandmeshError(f"keypoint scores: shapes {pred.shape}, {gt.shape}, {conf.shape} do not match")
    sizes = np.array([hand_size(g, c) for g, c in zip(gt, conf, strict=True)])
    px = np.linalg.norm(pred - gt, axis=-1)
    px[~found] = np.nan
    labelled = (conf > 0) & (sizes[:, None] >= MIN_SIZE_PX)
    px[~labelled] = np.nan
    norm = px / sizes[:, None]
    norm[~found[:, None] & labelled] = np.inf
    return norm, px, sizes


def pck(norm: np.ndarray, fraction: float) -> float:
    """Share of labelled keypoints (finite or inf entries of `norm`) within `fraction` of the hand's size."""
    vals = norm[~np.isnan(norm)]
    return float((vals <= fraction).mean()) if vals.size else float("nan")


def pck_auc(norm: np.ndarray, upper: float = AUC_MAX, steps: int = AUC_STEPS) -> float:
    """Area under the PCK curve for thresholds 0 .. `upper` (trapezoid rule), divided by `upper`: 0..1."""
    vals = norm[~np.isnan(norm)]
    if not vals.size:
        return float("nan")
    thresholds = np.linspace(0.0, upper, steps)
    curve = (vals[None, :] <= thresholds[:, None]).mean(1)
    return float(_trapezoid(curve, thresholds) / upper)


def score_keypoints(pred: np.ndarray, gt: np.ndarray, conf: np.ndarray, found: np.ndarray) -> dict:
    """The 2D scores (keys SCORE_KEYS_2D) of predicted keypoints (N,21,2) against labels (N,21,2) with
    per-keypoint label confidence (N,21; 0 = unlabelled) and whether each hand was found (N,)."""
    norm, px, _ = normalized_errors(pred, gt, conf, found)
    found = np.asarray(found, bool)
    scorable = (~np.isnan(norm)).any(axis=1)
    if not scorable.any():
        raise HandmeshError("no hand with at least 2 labelled 2D keypoints to score")
    kept = norm[scorable]
    found_kept = found[scorable]
    out: dict = {}
    for f in PCK_FRACTIONS:
        out[f"pck_{f:g}"] = pck(kept, f)
    out[f"auc_0_{AUC_MAX:g}"] = pck_auc(kept)
    for f in PCK_FRACTIONS:
        out[f"pck_{f:g}_found"] = pck(kept[found_kept], f)
    out[f"auc_0_{AUC_MAX:g}_found"] = pck_auc(kept[found_kept])
    finite = kept[np.isfinite(kept)]
    out["median_error_hand"] = float(np.median(finite)) if finite.size else float("nan")
    px_kept = px[scorable]
    px_vals = px_kept[~np.isnan(px_kept)]
    out["median_error_px"] = float(np.median(px_vals)) if px_vals.size else float("nan")
    out["found"] = float(found_kept.mean())
    out["num_hands"] = int(scorable.sum())
    out["num_found"] = int(found_kept.sum())
    out["num_keypoints"] = int((~np.isnan(kept)).sum())
    assert tuple(out) == SCORE_KEYS_2D
    return out


def format_table_2d(scores: dict) -> str:
    """A plain-text table of the 2D scores."""

    def cell(key: str) -> str:
        v = scores.get(key)
        return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"

    lines = [
        f"2D keypoints, {scores['num_hands']} labelled hands, found {scores['num_found']} "
        f"({100 * scores['found']:.0f} %); distances as a share of the hand's size",
        f"{'metric':<24}  {'all hands':>10}  {'found hands':>11}",
    ]
    for f in PCK_FRACTIONS:
        lines.append(f"{f'PCK @ {f:g}':<24}  {cell(f'pck_{f:g}'):>10}  {cell(f'pck_{f:g}_found'):>11}")
    lines.append(f"{f'AUC 0-{AUC_MAX:g}':<24}  {cell('auc_0_0.2'):>10}  {cell('auc_0_0.2_found'):>11}")
    lines.append(f"{'median distance (hand)':<24}  {'':>10}  {cell('median_error_hand'):>11}")
    lines.append(f"{'median distance (px)':<24}  {'':>10}  {scores['median_error_px']:>11.1f}")
    return "\n".join(lines)
