"""The official FreiHAND metrics, vectorized: PA-MPJPE/MPVPE, PCK AUC over 0-50 mm, F-scores at 5/15 mm.

Definitions follow the official evaluation script (lmb-freiburg/freihand `eval.py`): per-sample
similarity alignment that allows reflections (`geometry.similarity_align`), joints and vertices aligned
separately; AUC per keypoint (PCK counts errors <= threshold at 100 thresholds from 0 to 50 mm, trapezoid
rule normalized by the range) then averaged over keypoints; F-score from nearest-neighbour distances both
ways, counting distances strictly below the threshold. Everything is computed in metres and float64;
only the reported mean errors are converted to millimetres.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from scipy.spatial import cKDTree

from handmesh.errors import HandmeshError, MissingFileError
from handmesh.geometry import similarity_align

NUM_JOINTS = 21
NUM_VERTS = 778
PCK_THRESHOLDS_M = np.linspace(0.0, 0.05, 100)
F_THRESHOLDS_M = (0.005, 0.015)
SCORE_KEYS = (
    "mpjpe_mm",
    "pa_mpjpe_mm",
    "mpvpe_mm",
    "pa_mpvpe_mm",
    "auc_joints",
    "pa_auc_joints",
    "auc_verts",
    "pa_auc_verts",
    "f5",
    "f15",
    "pa_f5",
    "pa_f15",
    "num_samples",
)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed trapz


def _as_tensor(x) -> torch.Tensor:
    """Any array-like (numpy, torch, nested lists) as a float64 CPU tensor without autograd."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64)
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def check_points(arr, num_points: int, field: str, source: str = "input") -> np.ndarray:
    """Validate an (N, num_points, 3) finite array; raise a one-line HandmeshError naming sample and field."""
    a = arr.detach().cpu().numpy() if isinstance(arr, torch.Tensor) else arr
    try:
        a = np.asarray(a, dtype=np.float64)
    except (ValueError, TypeError):
        a = None
    if a is None or a.ndim != 3 or a.shape[1:] != (num_points, 3):
        _raise_first_bad_sample(arr, num_points, field, source)
    bad = ~np.isfinite(a).all(axis=(1, 2))
    if bad.any():
        i = int(np.argmax(bad))
        raise HandmeshError(f"{source}: sample {i}, field {field}: contains NaN or inf")
    return a


def _raise_first_bad_sample(arr, num_points: int, field: str, source: str) -> None:
    """Find the first sample whose shape is not (num_points, 3) and raise a one-line error about it."""
    if isinstance(arr, (str, bytes, dict)) or not hasattr(arr, "__len__"):
        raise HandmeshError(f"{source}: field {field}: expected a list of {num_points}x3 arrays")
    for i, sample in enumerate(arr):
        try:
            s = np.asarray(sample, dtype=np.float64)
        except (ValueError, TypeError):
            raise HandmeshError(
                f"{source}: sample {i}, field {field}: expected {num_points}x3 numbers, got a ragged "
                "or non-numeric entry"
            ) from None
        if s.shape != (num_points, 3):
            raise HandmeshError(
                f"{source}: sample {i}, field {field}: expected shape ({num_points}, 3), got {s.shape}"
            )
    raise HandmeshError(f"{source}: field {field}: expected shape (N, {num_points}, 3)")


def point_errors(pred, gt) -> np.ndarray:
    """Euclidean distance per point (N,P) between pred and gt (N,P,3), metres."""
    return torch.linalg.norm(_as_tensor(pred) - _as_tensor(gt), dim=-1).numpy()


def pa_errors(pred, gt) -> np.ndarray:
    """Per-point distance (N,P) after the official per-sample similarity alignment of pred onto gt."""
    gt_t = _as_tensor(gt)
    aligned = similarity_align(_as_tensor(pred), gt_t)
    return torch.linalg.norm(aligned - gt_t, dim=-1).numpy()


def pck_curve(errors, thresholds: np.ndarray = PCK_THRESHOLDS_M) -> np.ndarray:
    """Per-keypoint PCK (P, T): fraction of samples with error <= threshold, errors (N,P) in metres."""
    err = _as_tensor(errors).numpy()
    thr = np.asarray(thresholds, dtype=np.float64)
    n, p = err.shape
    # Index of the first threshold >= each error: the error counts at that threshold and all above,
    # which is exactly the official `error <= threshold` test without comparing every pair.
    first = np.searchsorted(thr, err, side="left")
    hist = np.bincount((np.arange(p) * (thr.size + 1) + first).ravel(), minlength=p * (thr.size + 1))
    return np.cumsum(hist.reshape(p, thr.size + 1)[:, : thr.size], axis=1) / n


def auc(errors, thresholds: np.ndarray = PCK_THRESHOLDS_M) -> float:
    """Area under the per-keypoint PCK curve normalized by the threshold range, averaged over keypoints."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    curves = pck_curve(errors, thresholds)
    norm = _trapezoid(np.ones_like(thresholds), thresholds)
    return float(np.mean(_trapezoid(curves, thresholds, axis=-1) / norm))


def _tree(points: np.ndarray) -> cKDTree:
    """KD-tree of one sample's points (P,3); leaves of 32 measured fastest for 778-vertex hands."""
    return cKDTree(points, leafsize=32, balanced_tree=False, compact_nodes=False)


def _per_sample(fn, n: int) -> None:
    """Run fn(i) for every sample on a thread pool (cKDTree builds and queries release the GIL)."""
    workers = max(1, min(os.cpu_count() or 1, torch.get_num_threads()))
    chunks = [range(s, min(s + 64, n)) for s in range(0, n, 64)]
    if workers == 1 or len(chunks) == 1:
        for i in range(n):
            fn(i)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda chunk: [fn(i) for i in chunk], chunks))


def f_scores_from_distances(
    pred_to_gt: np.ndarray, gt_to_pred: np.ndarray, thresholds: Sequence[float]
) -> np.ndarray:
    """Per-sample F-scores (N,T) from nearest-neighbour distances; 0 where precision and recall are both 0."""
    thr = np.asarray(thresholds, dtype=np.float64)
    recall = (pred_to_gt[:, :, None] < thr).mean(1)  # the official naming: pred points near the gt
    precision = (gt_to_pred[:, :, None] < thr).mean(1)
    total = precision + recall
    return np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)


def _f_scores(
    pred: np.ndarray, gt: np.ndarray, thresholds: Sequence[float], gt_trees: list | None = None
) -> np.ndarray:
    """Per-sample F-scores (N,T); searches only the distances that can change a count.

    `gt_trees` (a list of N entries, None until built) caches the ground-truth trees between calls.
    """
    thr = np.asarray(thresholds, dtype=np.float64)
    if not np.all(np.isfinite(thr)) or thr.min() < 0:
        raise HandmeshError(f"F-score thresholds must be finite and non-negative, got {thr.tolist()}")
    # Margin so a distance equal to the largest threshold is still measured (then compared with <).
    bound = float(thr.max()) * (1 + 1e-9) + 1e-12
    n = pred.shape[0]
    gt_trees = gt_trees if gt_trees is not None else [None] * n
    # Any known distance to some point of the other set bounds the nearest one from above. Where that
    # bound is already below every threshold the exact distance cannot change a count, so the point
    # skips the search; elsewhere min(bound, searched distance) is the exact nearest distance.
    # Bounds: the corresponding point (same vertex id), and for gt points, every pred point whose
    # nearest gt point they are.
    if pred.shape == gt.shape:
        pred_to_gt = np.sqrt(((pred - gt) ** 2).sum(-1))
        gt_to_pred = pred_to_gt.copy()
    else:
        pred_to_gt, gt_to_pred = np.full(pred.shape[:2], np.inf), np.full(gt.shape[:2], np.inf)
    skip = thr.min()

    def one(i: int) -> None:
        if gt_trees[i] is None:
            gt_trees[i] = _tree(gt[i])
        row = pred_to_gt[i]
        need = np.flatnonzero(row >= skip)
        d, j = gt_trees[i].query(pred[i][need], distance_upper_bound=bound)
        row[need] = np.minimum(row[need], d)
        found = np.isfinite(d)
        np.minimum.at(gt_to_pred[i], j[found], d[found])
        back = gt_to_pred[i]
        need = np.flatnonzero(back >= skip)
        if need.size:
            back[need] = np.minimum(
                back[need], _tree(pred[i]).query(gt[i][need], distance_upper_bound=bound)[0]
            )

    _per_sample(one, n)
    return f_scores_from_distances(pred_to_gt, gt_to_pred, thr)


def f_score(pred, gt, threshold: float | Sequence[float]) -> np.ndarray:
    """Per-sample F-score (N,) at one threshold, or (N,T) for a sequence of thresholds (metres)."""
    out = _f_scores(_as_tensor(pred).numpy(), _as_tensor(gt).numpy(), np.atleast_1d(threshold))
    return out[:, 0] if np.ndim(threshold) == 0 else out


def score_arrays(xyz_pred, verts_pred, xyz_gt, verts_gt) -> dict:
    """All official FreiHAND metrics for (N,21,3) joints and (N,778,3) vertices in metres; keys SCORE_KEYS."""
    xyz_p = check_points(xyz_pred, NUM_JOINTS, "xyz", "prediction")
    verts_p = check_points(verts_pred, NUM_VERTS, "verts", "prediction")
    xyz_g = check_points(xyz_gt, NUM_JOINTS, "xyz", "ground truth")
    verts_g = check_points(verts_gt, NUM_VERTS, "verts", "ground truth")
    n = xyz_g.shape[0]
    for name, arr in (
        ("prediction xyz", xyz_p),
        ("prediction verts", verts_p),
        ("ground truth verts", verts_g),
    ):
        if arr.shape[0] != n:
            raise HandmeshError(f"{name}: {arr.shape[0]} samples, but the ground truth xyz has {n}")
    if n == 0:
        raise HandmeshError("no samples to score")

    xyz_g_t, verts_g_t = torch.from_numpy(xyz_g), torch.from_numpy(verts_g)
    xyz_al = similarity_align(torch.from_numpy(xyz_p), xyz_g_t)
    verts_al = similarity_align(torch.from_numpy(verts_p), verts_g_t)

    err_j = point_errors(xyz_p, xyz_g)
    err_v = point_errors(verts_p, verts_g)
    pa_err_j = torch.linalg.norm(xyz_al - xyz_g_t, dim=-1).numpy()
    pa_err_v = torch.linalg.norm(verts_al - verts_g_t, dim=-1).numpy()
    verts_al_np = verts_al.numpy()
    gt_trees: list = [None] * n  # built once, shared by the unaligned and aligned F-scores
    f = _f_scores(verts_p, verts_g, F_THRESHOLDS_M, gt_trees).mean(0)
    pa_f = _f_scores(verts_al_np, verts_g, F_THRESHOLDS_M, gt_trees).mean(0)

    # The official mean error is the mean over keypoints of each keypoint's mean over samples.
    def mean_mm(err: np.ndarray) -> float:
        return float(err.mean(0).mean() * 1000.0)

    scores = {
        "mpjpe_mm": mean_mm(err_j),
        "pa_mpjpe_mm": mean_mm(pa_err_j),
        "mpvpe_mm": mean_mm(err_v),
        "pa_mpvpe_mm": mean_mm(pa_err_v),
        "auc_joints": auc(err_j),
        "pa_auc_joints": auc(pa_err_j),
        "auc_verts": auc(err_v),
        "pa_auc_verts": auc(pa_err_v),
        "f5": float(f[0]),
        "f15": float(f[1]),
        "pa_f5": float(pa_f[0]),
        "pa_f15": float(pa_f[1]),
        "num_samples": int(n),
    }
    assert tuple(scores) == SCORE_KEYS
    return scores


# what a file of nested lists of numbers may hold; anything else (true, null, "1.5", {) is refused
_NUMERIC_JSON_BYTES = b"0123456789+-.eE[], \t\r\n"
_NON_NUMERIC = re.compile(rb"NaN|Infinity|[^0-9+\-.eE\[\],\s]")
MAX_COORDINATE_M = 20.0  # camera-space metres; millimetre files reach hundreds


def _check_numbers_only(data: bytes, path: str) -> None:
    """Refuse booleans, strings, null and objects where coordinates are expected (numpy would coerce them)."""
    # NaN and Infinity parse (the json module reads them) and check_points names their sample
    rest = data.replace(b"NaN", b"").replace(b"Infinity", b"").translate(None, _NUMERIC_JSON_BYTES)
    if rest:
        pos = next(m.start() for m in _NON_NUMERIC.finditer(data) if m.group() not in (b"NaN", b"Infinity"))
        token = re.split(rb"[,\]\s]", data[pos : pos + 16])[0].decode("utf-8", "replace")
        raise HandmeshError(f"{path}: non-numeric value {token!r} at byte {pos}: coordinates must be numbers")


def _check_metres(arr: np.ndarray, field: str, source: str) -> None:
    """Refuse coordinates far beyond any camera-space hand (a file in millimetres)."""
    peak = np.abs(arr).max(axis=(1, 2)) if arr.size else np.zeros(0)
    if (peak > MAX_COORDINATE_M).any():
        i = int(np.argmax(peak > MAX_COORDINATE_M))
        raise HandmeshError(
            f"{source}: sample {i}, field {field}: values up to {peak[i]:.4g} — expected metres, not millimetres"
        )


def _read_json(path: str, numbers_only: bool = False):
    """Parse a (large) JSON file, with orjson when it is installed (several times faster).

    numbers_only: a list whose leaves must all be numbers (checked on the raw bytes, in C speed).
    """
    with open(path, "rb") as fh:
        data = fh.read()
    parsed = _parse_json(data, path)
    if numbers_only and isinstance(parsed, list):
        _check_numbers_only(data, path)
    return parsed


def _parse_json(data: bytes, path: str):
    try:
        import orjson

        return orjson.loads(data)
    except ImportError:
        pass
    except ValueError:
        pass  # orjson rejects NaN/Infinity; the json module reads them so validation can name the sample
    try:
        return json.loads(data)
    except RecursionError:
        raise HandmeshError(f"{path}: not valid JSON (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HandmeshError(f"{path}: not valid JSON ({first_line})") from None


def load_submission(path: str | os.PathLike, num_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate a submission `[xyz_list, verts_list]` -> (xyz (N,21,3), verts (N,778,3)) metres."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"prediction file not found: {path} (make one with `handmesh evaluate`)")
    data = _read_json(path, numbers_only=True)
    if not isinstance(data, list) or len(data) != 2:
        raise HandmeshError(f"{path}: expected a JSON list [xyz_list, verts_list] of two lists")
    xyz_list, verts_list = data
    for field, lst in (("xyz", xyz_list), ("verts", verts_list)):
        if not isinstance(lst, list):
            raise HandmeshError(f"{path}: field {field}: expected a list of samples")
        if num_samples is not None and len(lst) != num_samples:
            raise HandmeshError(f"{path}: field {field}: {len(lst)} samples, expected {num_samples}")
    if len(xyz_list) != len(verts_list):
        raise HandmeshError(f"{path}: {len(xyz_list)} xyz samples but {len(verts_list)} verts samples")
    xyz = check_points(xyz_list, NUM_JOINTS, "xyz", path)
    verts = check_points(verts_list, NUM_VERTS, "verts", path)
    _check_metres(xyz, "xyz", path)
    _check_metres(verts, "verts", path)
    return xyz, verts


def load_ground_truth(gt_dir: str | os.PathLike, split: str = "evaluation") -> tuple[np.ndarray, np.ndarray]:
    """Read and validate DIR/{split}_xyz.json and DIR/{split}_verts.json -> (xyz, verts) metres."""
    arrays = []
    for field, num_points in (("xyz", NUM_JOINTS), ("verts", NUM_VERTS)):
        path = os.path.join(os.fspath(gt_dir), f"{split}_{field}.json")
        if not os.path.isfile(path):
            raise MissingFileError(
                f"ground truth not found: {path} (unpack FreiHAND v2 so that data/freihand/{split}_{field}.json "
                "exists, see data/README.md, or pass --gt DIR)"
            )
        arrays.append(check_points(_read_json(path, numbers_only=True), num_points, field, path))
        _check_metres(arrays[-1], field, path)
    if arrays[0].shape[0] != arrays[1].shape[0]:
        raise HandmeshError(
            f"{gt_dir}: {arrays[0].shape[0]} xyz samples but {arrays[1].shape[0]} verts samples"
        )
    return arrays[0], arrays[1]


def format_table(scores: dict) -> str:
    """A plain-text table of the scores: one row per metric, unaligned and Procrustes-aligned columns."""

    def cell(key: str, fmt: str) -> str:
        value = scores.get(key)
        return (
            "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)
        )

    rows = [
        ("mean joint error (mm)", "mpjpe_mm", "pa_mpjpe_mm", ".2f"),
        ("mean vertex error (mm)", "mpvpe_mm", "pa_mpvpe_mm", ".2f"),
        ("AUC joints, 0-50 mm", "auc_joints", "pa_auc_joints", ".4f"),
        ("AUC vertices, 0-50 mm", "auc_verts", "pa_auc_verts", ".4f"),
        ("F-score @ 5 mm", "f5", "pa_f5", ".4f"),
        ("F-score @ 15 mm", "f15", "pa_f15", ".4f"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [
        f"FreiHAND scores, {scores.get('num_samples', '?')} samples",
        f"{'metric':<{width}}  {'unaligned':>10}  {'aligned (PA)':>12}",
        f"{'-' * width}  {'-' * 10}  {'-' * 12}",
    ]
    for label, key, pa_key, fmt in rows:
        lines.append(f"{label:<{width}}  {cell(key, fmt):>10}  {cell(pa_key, fmt):>12}")
    return "\n".join(lines)
