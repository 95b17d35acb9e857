"""The official FreiHAND metrics: hand-computed cases, malformed input, the CLI, and a slow reference."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes

from handmesh import metrics as m
from handmesh.cli import main as cli_main
from handmesh.errors import HandmeshError

H = 0.05 / 99  # spacing of the 100 PCK thresholds over 0-50 mm, in metres


def _cloud(rng: np.random.Generator, n: int, p: int) -> np.ndarray:
    """Hand-sized point clouds (n,p,3) about 0.6 m in front of the camera."""
    return rng.normal(size=(n, p, 3)) * 0.03 + [0.02, -0.01, 0.6]


def _circle(p: int, radius: float, centre, z_offset: float = 0.0) -> np.ndarray:
    """p points on a circle in a plane of constant z."""
    a = np.linspace(0, 2 * np.pi, p, endpoint=False)
    return np.stack([radius * np.cos(a), radius * np.sin(a), np.full(p, z_offset)], -1) + centre


def test_identity_scores():
    rng = np.random.default_rng(0)
    xyz, verts = _cloud(rng, 4, 21), _cloud(rng, 4, 778)
    s = m.score_arrays(xyz, verts, xyz, verts)
    assert tuple(s) == m.SCORE_KEYS and s["num_samples"] == 4
    for key in ("mpjpe_mm", "mpvpe_mm"):
        assert s[key] == 0.0
    # The official alignment adds 1e-8 to both norms, which shrinks the result by ~1e-8 relative:
    # a few nanometres here, not exactly 0.
    for key in ("pa_mpjpe_mm", "pa_mpvpe_mm"):
        assert s[key] < 1e-5
    assert s["auc_joints"] == 1.0 and s["auc_verts"] == 1.0
    # The first PCK threshold is 0 mm and counts only exact zeros; the alignment leaves ~1e-17 m
    # residuals (so does the official script), which can lose at most that first half-interval.
    for key in ("pa_auc_joints", "pa_auc_verts"):
        assert 1 - 1 / 198 - 1e-12 <= s[key] <= 1.0
    for key in ("f5", "f15", "pa_f5", "pa_f15"):
        assert s[key] == 1.0


def test_known_similarity_transform_octahedron():
    # pred = c + 2 Rz(60 deg)(gt - c): for v along x/y the error is |2 e^{i60} - 1| r = sqrt(3) r,
    # along z it is (2 - 1) r = r.  Mean over the 6 vertices: (4 sqrt(3) + 2) r / 6.
    r, c = 0.02, np.array([0.01, 0.02, 0.5])
    v = r * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1.0]])
    th = np.pi / 3
    rz = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    gt = (c + v)[None]
    pred = (c + 2 * v @ rz.T)[None]
    err = m.point_errors(pred, gt)
    np.testing.assert_allclose(err[0], [math.sqrt(3) * r] * 4 + [r] * 2, rtol=1e-12)
    assert err.mean() == pytest.approx((4 * math.sqrt(3) + 2) * r / 6, rel=1e-12)
    assert m.pa_errors(pred, gt).max() < 1e-8  # the official +1e-8 in the norms
    # Plus a translation the alignment also removes.
    assert m.pa_errors(pred + [0.3, -0.1, 0.2], gt).max() < 1e-8


def test_known_similarity_transform_scores():
    # gt on a circle of radius r; pred = c + 2 Rz(60 deg)(gt - c) + (0, 0, dz): every point moves by
    # sqrt(dz^2 + 3 r^2) (the in-plane part as above), and the alignment undoes it exactly.
    r, dz, c = 0.02, 0.01, np.array([0.0, 0.05, 0.7])
    th = np.pi / 3
    rz = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    xyz = _circle(21, r, c)[None].repeat(2, 0)
    verts = _circle(778, r, c)[None].repeat(2, 0)

    def move(x):
        return c + 2 * (x - c) @ rz.T + [0, 0, dz]

    s = m.score_arrays(move(xyz), move(verts), xyz, verts)
    expected_mm = math.sqrt(dz**2 + 3 * r**2) * 1000  # 36.0555 mm
    assert s["mpjpe_mm"] == pytest.approx(expected_mm, rel=1e-12)
    assert s["mpvpe_mm"] == pytest.approx(expected_mm, rel=1e-12)
    assert s["pa_mpjpe_mm"] < 1e-5 and s["pa_mpvpe_mm"] < 1e-5
    # 36.06 mm lies between thresholds 71 and 72 (t_i = 50 i / 99 mm): PCK is 0 up to 71 and 1 from
    # 72, so the trapezoid area is h * (1/2 + 27) out of 99 h.
    assert s["auc_joints"] == pytest.approx(27.5 / 99, rel=1e-12)
    assert s["auc_verts"] == pytest.approx(27.5 / 99, rel=1e-12)
    # Nearest points are at least sqrt((2r - r)^2 + dz^2) = 22.4 mm apart: nothing within 15 mm.
    assert s["f5"] == 0.0 and s["f15"] == 0.0
    assert s["pa_f5"] == 1.0 and s["pa_f15"] == 1.0


def test_reflected_prediction_is_aligned_exactly():
    rng = np.random.default_rng(1)
    xyz, verts = _cloud(rng, 3, 21), _cloud(rng, 3, 778)
    mirror = np.array([-1.0, 1.0, 1.0])
    s = m.score_arrays(xyz * mirror, verts * mirror, xyz, verts)
    assert s["pa_mpjpe_mm"] < 1e-5 and s["pa_mpvpe_mm"] < 1e-5
    assert s["pa_f5"] == 1.0
    # Unaligned, each point moves by 2|x|.
    assert s["mpjpe_mm"] == pytest.approx(np.mean(2 * np.abs(xyz[..., 0])) * 1000, rel=1e-12)
    assert s["mpvpe_mm"] == pytest.approx(np.mean(2 * np.abs(verts[..., 0])) * 1000, rel=1e-12)


def _spread_points(p: int) -> np.ndarray:
    """p points 10 cm apart with x = 0, so an offset along x is the exact distance."""
    return np.stack([np.zeros(p), 0.1 * np.arange(p), np.full(p, 0.6)], -1)


def test_f_score_threshold_edges():
    gt = _spread_points(10)
    dx = np.full(10, np.nextafter(0.005, 0.0))  # just under 5 mm: counts
    dx[:4] = 0.005  # exactly 5 mm: does not count (strictly below)
    pred = gt + np.stack([dx, np.zeros(10), np.zeros(10)], -1)
    d = np.sqrt(((pred - gt) ** 2).sum(-1))  # each point's nearest neighbour is its partner (10 cm apart)
    assert np.all(d[:4] == 0.005) and np.all(d[4:] < 0.005)
    # precision = recall = 6/10, so F = 0.6 at 5 mm; everything counts at 15 mm.
    assert m.f_score(pred[None], gt[None], 0.005)[0] == pytest.approx(0.6, rel=1e-15)
    np.testing.assert_allclose(m.f_score(pred[None], gt[None], [0.005, 0.015])[0], [0.6, 1.0])
    # Exactly at 15 mm does not count either.
    far = gt + [0.015, 0.0, 0.0]
    assert m.f_score(far[None], gt[None], 0.015)[0] == 0.0
    assert m.f_score(far[None], gt[None], np.nextafter(0.015, 1.0))[0] == 1.0


def test_f_score_uneven_precision_recall_and_zero():
    gt = _spread_points(4)
    pred = gt[:2] + [0.001, 0.0, 0.0]  # both pred points are near a gt point; half the gt is covered
    # recall (pred near gt) 1, precision (gt near pred) 1/2: F = 2 * 1/2 / (3/2) = 2/3.
    assert m.f_score(pred[None], gt[None], 0.005)[0] == pytest.approx(2 / 3, rel=1e-15)
    assert m.f_score(gt[None] + 1.0, gt[None], 0.015)[0] == 0.0  # precision = recall = 0 -> 0
    # Thresholds far beyond the default sample separation in the lifted tree still work.
    assert m.f_score(gt[None] + 1.0, gt[None], 2.0)[0] == 1.0


def test_auc_of_constant_error():
    # Error e = 10 mm lies between thresholds 19 (9.60 mm) and 20 (10.10 mm): the PCK steps from 0
    # to 1 there, so the area is h/2 + 79 h out of 99 h = 79.5/99 (not quite (50 - 10)/50 = 0.8).
    assert m.auc(np.full((7, 21), 0.010)) == pytest.approx(79.5 / 99, rel=1e-12)
    t20 = m.PCK_THRESHOLDS_M[20]
    assert m.auc(np.full((3, 5), t20)) == pytest.approx(79.5 / 99, rel=1e-12)  # <= counts the edge
    assert m.auc(np.full((3, 5), np.nextafter(t20, 1.0))) == pytest.approx(78.5 / 99, rel=1e-12)
    assert m.auc(np.zeros((3, 5))) == 1.0
    assert m.auc(np.full((3, 5), 0.06)) == 0.0
    # Per keypoint then averaged: keypoint 0 always right, keypoint 1 always 60 mm off -> 0.5.
    assert m.auc(np.array([[0.0, 0.06], [0.0, 0.06]])) == pytest.approx(0.5)
    curve = m.pck_curve(np.array([[0.0], [0.01], [0.02], [0.1]]))
    assert curve.shape == (1, 100) and curve[0, 0] == 0.25 and curve[0, -1] == 0.75


def _write_json(path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def _gt_folder(tmp_path, n: int = 3, seed: int = 2):
    rng = np.random.default_rng(seed)
    xyz, verts = _cloud(rng, n, 21), _cloud(rng, n, 778)
    _write_json(tmp_path / "evaluation_xyz.json", xyz.tolist())
    _write_json(tmp_path / "evaluation_verts.json", verts.tolist())
    return xyz, verts


def test_load_submission_and_ground_truth_round_trip(tmp_path):
    xyz, verts = _gt_folder(tmp_path)
    gx, gv = m.load_ground_truth(tmp_path, "evaluation")
    np.testing.assert_array_equal(gx, xyz)
    np.testing.assert_array_equal(gv, verts)
    pred = _write_json(tmp_path / "pred.json", [xyz.tolist(), verts.tolist()])
    px, pv = m.load_submission(pred, num_samples=3)
    assert px.shape == (3, 21, 3) and pv.shape == (3, 778, 3)


def _one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(HandmeshError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_malformed_submissions_name_sample_and_field(tmp_path):
    rng = np.random.default_rng(3)
    xyz, verts = _cloud(rng, 4, 21).tolist(), _cloud(rng, 4, 778).tolist()

    wrong_len = _write_json(tmp_path / "a.json", [xyz[:3], verts[:3]])
    msg = _one_line_error(m.load_submission, wrong_len, num_samples=4)
    assert "xyz" in msg and "3 samples" in msg and "expected 4" in msg

    uneven = _write_json(tmp_path / "b.json", [xyz, verts[:3]])
    assert "4 xyz samples but 3 verts" in _one_line_error(m.load_submission, uneven)

    bad_joint = [row for row in xyz]
    bad_joint[1] = xyz[1][:20]
    msg = _one_line_error(m.load_submission, _write_json(tmp_path / "c.json", [bad_joint, verts]))
    assert "sample 1" in msg and "field xyz" in msg and "(20, 3)" in msg

    bad_inner = [list(v) for v in verts]
    bad_inner[2] = [p[:2] for p in verts[2]]
    msg = _one_line_error(m.load_submission, _write_json(tmp_path / "d.json", [xyz, bad_inner]))
    assert "sample 2" in msg and "field verts" in msg and "(778, 2)" in msg

    ragged = [list(v) for v in verts]
    ragged[3] = [list(p) for p in verts[3]]
    ragged[3][5] = [0.1, 0.2]
    msg = _one_line_error(m.load_submission, _write_json(tmp_path / "e.json", [xyz, ragged]))
    assert "sample 3" in msg and "field verts" in msg

    nan = [list(v) for v in verts]
    nan[2] = [list(p) for p in verts[2]]
    nan[2][7][1] = float("nan")
    msg = _one_line_error(m.load_submission, _write_json(tmp_path / "f.json", [xyz, nan]))
    assert "sample 2" in msg and "field verts" in msg and "NaN" in msg

    msg = _one_line_error(m.load_submission, _write_json(tmp_path / "g.json", {"xyz": xyz}))
    assert "[xyz_list, verts_list]" in msg
    (tmp_path / "h.json").write_text("[[1, 2")
    assert "not valid JSON" in _one_line_error(m.load_submission, str(tmp_path / "h.json"))


def test_score_arrays_validates_arrays():
    rng = np.random.default_rng(4)
    xyz, verts = _cloud(rng, 3, 21), _cloud(rng, 3, 778)
    bad = verts.copy()
    bad[1, 3, 0] = np.inf
    msg = _one_line_error(m.score_arrays, xyz, bad, xyz, verts)
    assert "prediction" in msg and "sample 1" in msg and "field verts" in msg
    assert "2 samples" in _one_line_error(m.score_arrays, xyz[:2], verts[:2], xyz, verts)
    # Torch tensors are accepted (training validation passes them directly).
    s = m.score_arrays(torch.tensor(xyz), torch.tensor(verts, dtype=torch.float32), xyz, verts)
    assert s["f5"] == 1.0


def test_missing_ground_truth_says_where(tmp_path):
    msg = _one_line_error(m.load_ground_truth, tmp_path, "evaluation")
    assert "evaluation_xyz.json" in msg and "data/README.md" in msg


def test_cli_score_end_to_end(tmp_path, capsys):
    xyz, verts = _gt_folder(tmp_path)
    pred = _write_json(tmp_path / "pred.json", [(xyz + 0.002).tolist(), (verts + 0.002).tolist()])
    out = tmp_path / "out" / "scores.json"
    rc = cli_main(["score", pred, "--gt", str(tmp_path), "--json", str(out)])
    assert rc == 0
    scores = json.loads(out.read_text())
    assert set(scores) == set(m.SCORE_KEYS) and scores["num_samples"] == 3
    assert scores["mpjpe_mm"] == pytest.approx(2 * math.sqrt(3), rel=1e-9)
    table = capsys.readouterr().out
    assert "F-score @ 5 mm" in table and "aligned" in table


def test_cli_score_bad_input_is_one_line(tmp_path, capsys):
    xyz, verts = _gt_folder(tmp_path)
    pred = _write_json(tmp_path / "pred.json", [xyz.tolist()[:2], verts.tolist()[:2]])
    assert cli_main(["score", pred, "--gt", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "2 samples, expected 3" in err
    assert cli_main(["score", pred, "--gt", str(tmp_path), "--split", "training"]) == 2
    assert "training_xyz.json" in capsys.readouterr().err


# --- slow, straightforward reference (one sample at a time, the official definitions) ---------------


def _ref_align(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    t1, t2 = gt.mean(0), pred.mean(0)
    g, p = gt - t1, pred - t2
    s1, s2 = np.linalg.norm(g) + 1e-8, np.linalg.norm(p) + 1e-8
    R, s = orthogonal_procrustes(g / s1, p / s2)
    return (p / s2) @ R.T * s * s1 + t1


def _ref_auc_and_mean(errors_per_sample: list[np.ndarray]) -> tuple[float, float]:
    data = np.stack(errors_per_sample)  # (N, K)
    thresholds = np.linspace(0.0, 0.05, 100)
    aucs, means = [], []
    for k in range(data.shape[1]):
        col = data[:, k]
        means.append(col.mean())
        pck = np.array([np.mean((col <= t).astype(float)) for t in thresholds])
        # trapezoid rule written out, so the reference shares no numerical helper with handmesh.metrics
        area = ((pck[1:] + pck[:-1]) / 2 * np.diff(thresholds)).sum()
        aucs.append(area / (thresholds[-1] - thresholds[0]))
    return float(np.mean(aucs)), float(np.mean(means))


def _ref_fscore(gt: np.ndarray, pred: np.ndarray, th: float) -> float:
    # brute force over all pairs: the implementation uses KD-trees, the reference must not
    dist = np.sqrt(((pred[:, None, :] - gt[None, :, :]) ** 2).sum(-1))  # (P_pred, P_gt)
    d_gt, d_pred = dist.min(0), dist.min(1)
    recall = sum(d < th for d in d_pred) / len(d_pred)
    precision = sum(d < th for d in d_gt) / len(d_gt)
    return 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0


def _reference_scores(xyz_p, verts_p, xyz_g, verts_g) -> dict:
    ej, ev, paj, pav, f, pa_f = [], [], [], [], [], []
    for jp, vp, jg, vg in zip(xyz_p, verts_p, xyz_g, verts_g, strict=True):
        ej.append(np.sqrt(((jg - jp) ** 2).sum(1)))
        ev.append(np.sqrt(((vg - vp) ** 2).sum(1)))
        ja, va = _ref_align(jg, jp), _ref_align(vg, vp)
        paj.append(np.sqrt(((jg - ja) ** 2).sum(1)))
        pav.append(np.sqrt(((vg - va) ** 2).sum(1)))
        f.append([_ref_fscore(vg, vp, t) for t in (0.005, 0.015)])
        pa_f.append([_ref_fscore(vg, va, t) for t in (0.005, 0.015)])
    out = {}
    for name, errs in (("joints", ej), ("pa_joints", paj), ("verts", ev), ("pa_verts", pav)):
        out[name] = _ref_auc_and_mean(errs)
    f, pa_f = np.mean(f, 0), np.mean(pa_f, 0)
    return {
        "mpjpe_mm": out["joints"][1] * 1000,
        "pa_mpjpe_mm": out["pa_joints"][1] * 1000,
        "mpvpe_mm": out["verts"][1] * 1000,
        "pa_mpvpe_mm": out["pa_verts"][1] * 1000,
        "auc_joints": out["joints"][0],
        "pa_auc_joints": out["pa_joints"][0],
        "auc_verts": out["verts"][0],
        "pa_auc_verts": out["pa_verts"][0],
        "f5": f[0],
        "f15": f[1],
        "pa_f5": pa_f[0],
        "pa_f15": pa_f[1],
        "num_samples": len(xyz_p),
    }


def test_vectorized_matches_slow_reference():
    rng = np.random.default_rng(5)
    n = 24
    xyz_g, verts_g = _cloud(rng, n, 21), _cloud(rng, n, 778)
    # Per-sample global offsets (0-30 mm) plus per-point noise, a few samples rotated/scaled/mirrored.
    offset = rng.normal(size=(n, 1, 3)) * 0.012
    xyz_p = xyz_g + offset + rng.normal(size=xyz_g.shape) * 0.004
    verts_p = verts_g + offset + rng.normal(size=verts_g.shape) * 0.004
    verts_p[:3] = 1.3 * verts_p[:3] - 0.2
    verts_p[3:5] *= [-1, 1, 1]
    xyz_p[5] = xyz_p[5][::-1]
    ours = m.score_arrays(xyz_p, verts_p, xyz_g, verts_g)
    ref = _reference_scores(xyz_p, verts_p, xyz_g, verts_g)
    assert set(ours) == set(ref)
    for key in m.SCORE_KEYS:
        assert ours[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-12), key
    # The data must exercise the metrics, not sit at 0 or 1.
    assert 0.05 < ours["f5"] < 0.95 and 0.05 < ours["pa_f5"] < 0.95 and 0.2 < ours["auc_verts"] < 0.95


def test_f_score_is_per_sample():
    """A sample far from every other cannot borrow neighbours from them (one KD-tree per sample)."""
    rng = np.random.default_rng(6)
    gt = _cloud(rng, 3, 50)
    pred = gt + rng.normal(size=gt.shape) * 0.001
    pred[1] = gt[2]  # the right points, but those of another sample
    gt[0] += 100.0
    pred[0] += 100.0
    got = m.f_score(pred, gt, [0.005, 0.015])
    want = [[_ref_fscore(gt[i], pred[i], th) for th in (0.005, 0.015)] for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[1, 0] < 0.5 < got[2, 0]


def test_format_table_lists_every_metric():
    s = m.score_arrays(
        *(2 * [_cloud(np.random.default_rng(7), 2, 21), _cloud(np.random.default_rng(8), 2, 778)])
    )
    table = m.format_table(s)
    for label in ("mean joint error", "mean vertex error", "AUC joints", "AUC vertices", "F-score @ 15 mm"):
        assert label in table
    assert "2 samples" in table
