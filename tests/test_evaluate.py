"""Evaluation: pred.json in the official format, scored the same by `handmesh score`; the mean-pose baseline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from handmesh.errors import HandmeshError
from handmesh.evaluation.config import EvaluateConfig

IMG = 64
NO_WORKERS = EvaluateConfig(workers=0)  # loader work in this process: tiny sets, no process start-up


@pytest.fixture(scope="module")
def synth_dir(make_synth_dir) -> Path:
    """A tiny FreiHAND-layout dataset (4 training, 6 evaluation images of 64 px)."""
    return make_synth_dir(train=4, eval=6, size=IMG, seed=5)


def _read_pred(path: Path) -> tuple[np.ndarray, np.ndarray]:
    xyz, verts = json.loads(path.read_text())
    return np.asarray(xyz), np.asarray(verts)


def test_evaluate_writes_a_submission_that_handmesh_score_scores_the_same(
    synth_dir, model_file, tmp_path, capsys
):
    from handmesh.cli import main

    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            str(model_file),
            "--data",
            str(synth_dir),
            "--out",
            str(out),
            "--workers",
            "0",
            "--quiet",
        ]
    )
    assert code == 0
    assert "PA" in capsys.readouterr().out or (out / "scores.json").is_file()
    xyz, verts = _read_pred(out / "pred.json")
    assert xyz.shape == (6, 21, 3) and verts.shape == (6, 778, 3)
    assert (xyz[..., 2] > 0).all()  # absolute camera coordinates: in front of the camera

    scores = json.loads((out / "scores.json").read_text())
    rescored = tmp_path / "rescored.json"
    assert main(["score", str(out / "pred.json"), "--gt", str(synth_dir), "--json", str(rescored)]) == 0
    again = json.loads(rescored.read_text())
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm", "pa_mpvpe_mm", "pa_f5", "pa_f15", "num_samples"):
        assert again[key] == pytest.approx(scores[key], rel=1e-9, abs=1e-12), key


def test_submission_is_placed_by_the_model_camera_and_image_K(synth_dir, model_file):
    """The model's 3D joints projected with the crop's K land where its own 2D joints are (weak vs full
    perspective differs by the hand's depth relief only): the 2D scores measure the whole model."""
    from handmesh.data.freihand import FreiHANDDataset
    from handmesh.data.transforms import AugmentConfig
    from handmesh.evaluation.collect import collect_boxes
    from handmesh.evaluation.sources import ModelSource
    from handmesh.models import load_model

    model = load_model(model_file)
    ds = FreiHANDDataset(synth_dir, split="evaluation", cfg=AugmentConfig(img_size=IMG))
    got = collect_boxes(ModelSource(model_file, device="cpu"), ds, batch_size=6, workers=0, progress=False)
    K = np.asarray(json.loads((synth_dir / "evaluation_K.json").read_text()))
    # FreiHAND's crop is the whole image: the crop's camera is the image's, its K scaled to the input
    np.testing.assert_allclose(got.K[:, :2], K[:, :2] * IMG / 64, rtol=1e-6)
    with torch.no_grad():
        own = model(torch.stack([ds[i]["image"] for i in range(len(ds))]))["joints2d"].numpy()
    assert got.found.all() and np.abs(got.keypoints - own).mean() < 2.0  # pixels of a 64 px image


def test_mean_pose_baseline(synth_dir, tmp_path, capsys):
    from handmesh.cli import main

    out = tmp_path / "baseline"
    assert main(["evaluate", "--baseline", "mean", "--data", str(synth_dir), "--out", str(out)]) == 0
    xyz, verts = _read_pred(out / "pred.json")
    gt = np.asarray(json.loads((synth_dir / "evaluation_xyz.json").read_text()))
    np.testing.assert_allclose(xyz[:, 9], gt[:, 9], atol=1e-6)  # placed on the ground-truth root
    assert np.allclose(xyz - xyz[:, 9:10], xyz[:1] - xyz[:1, 9:10], atol=1e-6)  # the same hand everywhere
    scores = json.loads((out / "scores.json").read_text())
    assert scores["source"] == "mean-pose baseline" and scores["pa_mpjpe_mm"] > 1.0


def test_evaluate_without_checkpoint_or_baseline_fails_clearly(synth_dir, tmp_path, capsys):
    from handmesh.cli import main

    assert main(["evaluate", "--data", str(synth_dir), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--baseline mean" in err[0]


# ----------------------------------------------------------------------------- any dataset, 2D, sources


def _custom_from_synth(synth_dir: Path, root: Path, keys=("K", "joints3d", "vertices"), splits=None) -> Path:
    """A custom folder over the synth evaluation images with the given labels (2D always)."""
    from handmesh.geometry import project_points_np

    K = json.loads((synth_dir / "evaluation_K.json").read_text())
    xyz = json.loads((synth_dir / "evaluation_xyz.json").read_text())
    verts = json.loads((synth_dir / "evaluation_verts.json").read_text())
    root.mkdir(parents=True, exist_ok=True)
    # a copy: a link to images outside the dataset folder is refused (issue 22, docs/limits.md)
    shutil.copytree(synth_dir / "evaluation" / "rgb", root / "rgb")
    lines = []
    for i, (k, j, v) in enumerate(zip(K, xyz, verts, strict=True)):
        line = {
            "image": f"rgb/{i:08d}.jpg",
            "keypoints2d": project_points_np(np.asarray(j), np.asarray(k)).tolist(),
        }
        line.update(
            {name: value for name, value in (("K", k), ("joints3d", j), ("vertices", v)) if name in keys}
        )
        if splits is not None and splits[i]:
            line["split"] = splits[i]
        lines.append(json.dumps(line))
    (root / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_custom_folder_is_scored_on_its_test_lines_in_3d_and_2d(synth_dir, model_file, tmp_path):
    from handmesh.evaluate import evaluate

    splits = ["test", "test", "train", "val", "test", None]
    root = _custom_from_synth(synth_dir, tmp_path / "custom", splits=splits)
    rec = evaluate(model_file, root, tmp_path / "out", NO_WORKERS, progress=False)
    assert rec["num_hands"] == 3 and 'marked "split": "test"' in rec["split"]
    assert rec["num_samples"] == 3 and rec["pa_mpjpe_mm"] > 0
    assert rec["keypoints2d"]["num_hands"] == 3 and rec["keypoints2d"]["found"] == 1.0
    assert not (tmp_path / "out" / "pred.json").exists()  # the submission format is FreiHAND's alone
    saved = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert saved["keypoints2d"] == pytest.approx(rec["keypoints2d"])
    # without test lines the evaluation split is every line, and says so
    every = evaluate(
        model_file,
        _custom_from_synth(synth_dir, tmp_path / "all"),
        tmp_path / "o2",
        NO_WORKERS,
        progress=False,
    )
    assert every["num_hands"] == 6 and "every line" in every["split"]


def test_2d_only_labels_get_2d_scores_only(synth_dir, model_file, tmp_path, capsys):
    from handmesh.cli import main

    root = _custom_from_synth(synth_dir, tmp_path / "kp", keys=())
    assert (
        main(
            [
                "evaluate",
                str(model_file),
                "--data",
                str(root),
                "--out",
                str(tmp_path / "o"),
                "--workers",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "PCK @ 0.2" in out and "FreiHAND scores" not in out
    rec = json.loads((tmp_path / "o" / "scores.json").read_text())
    assert "pa_mpjpe_mm" not in rec and rec["keypoints2d"]["num_hands"] == 6


def test_folders_joined_by_plus_are_scored_each_and_together(synth_dir, model_file, tmp_path):
    from handmesh.evaluate import evaluate

    custom = _custom_from_synth(synth_dir, tmp_path / "c")
    rec = evaluate(model_file, f"{synth_dir} + {custom}", tmp_path / "o", NO_WORKERS, progress=False)
    assert set(rec["parts"]) == {str(synth_dir), str(custom)}
    assert rec["num_hands"] == 12 and rec["parts"][str(synth_dir)]["num_hands"] == 6
    with pytest.raises(HandmeshError, match="handmesh synth"):
        evaluate(model_file, "synth:", tmp_path / "o", NO_WORKERS, progress=False)


class _KeypointDetector:
    """Stands in for MediaPipe: hands out the labelled keypoints of the crops in order (None: no hand)."""

    def __init__(self, hands):
        self.hands = list(hands)

    def detect(self, frame, static=False):
        from handmesh.pipeline.detector import HandDetection

        hand = self.hands.pop(0)
        if hand is None:
            return []
        kp2d, kp3d = hand
        box = np.concatenate([kp2d.min(0), kp2d.max(0)])
        # MediaPipe's world landmarks are metric and hand-centred, in the image's left/right convention
        return [HandDetection(box=box, handedness="left", keypoints2d=kp2d, keypoints3d=kp3d - kp3d.mean(0))]


def test_landmark_fit_source_fits_what_the_detector_found_and_counts_misses(synth_dir):
    from handmesh.data.freihand import FreiHANDDataset
    from handmesh.data.transforms import AugmentConfig
    from handmesh.evaluate import score_collected
    from handmesh.evaluation.collect import collect_boxes
    from handmesh.evaluation.sources import LANDMARK_CROP_SIZE, LandmarkFitSource

    ds = FreiHANDDataset(synth_dir, split="evaluation", cfg=AugmentConfig(img_size=LANDMARK_CROP_SIZE))
    hands = [(ds[i]["joints2d"].double().numpy(), ds[i]["joints3d"].double().numpy()) for i in range(len(ds))]
    hands[2] = None  # the detector misses one hand
    got = collect_boxes(
        LandmarkFitSource(_KeypointDetector(hands)), ds, batch_size=4, workers=0, progress=False
    )
    assert got.found.tolist() == [True, True, False, True, True, True]
    rec = score_collected(got)
    assert rec["found"] == pytest.approx(5 / 6) and rec["found_only"]["num_samples"] == 5
    # exact keypoints of the same hand model: the fit lands on them (the crop's side, right, is used)
    assert rec["found_only"]["pa_mpjpe_mm"] < 3.0
    kp = rec["keypoints2d"]
    assert kp["pck_0.05_found"] > 0.9 and kp["pck_0.2"] == pytest.approx(5 / 6, abs=0.02)


def test_detect_mode_matches_detections_to_labelled_hands_by_box(synth_dir, model_file, tmp_path):
    from handmesh.evaluate import evaluate

    root = _custom_from_synth(synth_dir, tmp_path / "c")
    lines = [json.loads(x) for x in (root / "annotations.jsonl").read_text().splitlines()]
    boxes = []
    for line in lines:
        kp = np.asarray(line["keypoints2d"])
        boxes.append([*kp.min(0), *kp.max(0)])
    # a fixed detector box on the first hand's box: that hand is found, hands elsewhere are not
    box = ",".join(f"{v:.2f}" for v in boxes[0])
    rec = evaluate(
        model_file,
        root,
        tmp_path / "o",
        EvaluateConfig(detect=True, detector=f"static:{box}", workers=0),
        progress=False,
    )
    ious = []
    for b in boxes:
        lo, hi = np.maximum(b[:2], boxes[0][:2]), np.minimum(b[2:], boxes[0][2:])
        inter = np.clip(hi - lo, 0, None).prod()
        area = lambda x: (x[2] - x[0]) * (x[3] - x[1])  # noqa: E731
        ious.append(inter / (area(b) + area(boxes[0]) - inter))
    expected = np.mean(np.asarray(ious) >= 0.3)
    assert rec["found"] == pytest.approx(expected) and rec["keypoints2d"]["found"] == pytest.approx(expected)
    assert "detected" in rec["boxes"]


def test_meshes_of_another_hand_model_than_the_labels_are_noted(synth_dir, model_file, tmp_path, capsys):
    import shutil

    from handmesh.cli import main

    real = tmp_path / "freihand"
    shutil.copytree(synth_dir, real)
    (real / "handmesh_synth.json").unlink()  # as real FreiHAND: labels made with MANO
    args = ["evaluate", str(model_file), "--data", str(real), "--workers", "0", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "o")]) == 0
    note = "made with the mano hand model and the meshes are the standin one's"
    assert note in capsys.readouterr().out
    assert any(note in n for n in json.loads((tmp_path / "o" / "scores.json").read_text())["notes"])
    assert main([*args[:3], str(synth_dir), *args[4:], "--out", str(tmp_path / "o2")]) == 0
    assert json.loads((tmp_path / "o2" / "scores.json").read_text())["notes"] == []  # same hand model


def test_the_real_keypoint_set_is_a_valid_test_only_folder():
    from handmesh.data.checks import check_dataset

    root = Path(__file__).resolve().parents[1] / "bench" / "realsets" / "keypoints"
    if not (root / "annotations.jsonl").is_file():  # built locally from its public sources, never committed
        pytest.skip(
            "the real keypoint set is not built here: python bench/realsets/keypoints/build.py SOURCES"
        )
    kind, problems, warnings, _ = check_dataset(root)
    assert kind == "custom" and problems == [] and warnings == []
    lines = [json.loads(x) for x in (root / "annotations.jsonl").read_text().splitlines()]
    assert len(lines) >= 10 and all(x["split"] == "test" for x in lines)  # measurement only
    assert all(np.asarray(x["keypoints2d"])[:, 2].sum() >= 7 for x in lines)
    assert (root / "SOURCES.md").is_file()
    assert sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) < 3 * 2**20  # a few MB at most
