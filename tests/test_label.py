"""`handmesh label`: synthetic renders with known landmarks -> a custom dataset that validates and trains."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_train_config

from handmesh.cli import main as cli_main
from handmesh.label import LabelConfig, hand_confidence, label

SIZE = (320, 240)


@pytest.fixture(scope="module")
def video(egl):
    """Six frames of a right and a left stand-in hand with their perfect landmarks."""
    from handmesh.pipeline.synthetic import render_hand_video

    return render_hand_video(n_frames=6, size=SIZE, hands=2, seed=2, depth=0.5)


@pytest.fixture(scope="module")
def image_dir(video, tmp_path_factory) -> Path:
    from handmesh.pipeline.media import write_image

    folder = tmp_path_factory.mktemp("frames")
    for i, frame in enumerate(video.frames):
        write_image(folder / f"frame_{i:03d}.png", frame)
    return folder


def scripted(video, transform=None):
    from handmesh.pipeline.synthetic import ScriptedDetector

    dets = video.detections
    if transform is not None:
        dets = [[transform(d) for d in frame] for frame in dets]
    return ScriptedDetector(dets)


def read_lines(folder: Path) -> list[dict]:
    return [json.loads(t) for t in (folder / "annotations.jsonl").read_text().splitlines() if t.strip()]


@pytest.fixture(scope="module")
def labelled(video, image_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("dataset")
    report = label(image_dir, out, LabelConfig(), detector=scripted(video))
    return out, report


def test_labelled_dataset_passes_check_dataset(labelled, capsys):
    out, report = labelled
    assert report["frames"] == 6 and report["hands_detected"] == 12 and report["hands_kept"] == 12
    lines = read_lines(out)
    assert len(lines) == 12
    assert {ln["handedness"] for ln in lines} == {"left", "right"}
    for ln in lines:
        assert (out / ln["image"]).is_file()
        assert len(ln["mano"]["pose"]) == 48 and len(ln["mano"]["betas"]) == 10
        assert 0.5 <= ln["confidence"] <= 1.0
        assert ln["side_confidence"] == 1.0  # the scripted detector's sides are given, not guessed
    assert cli_main(["check-dataset", str(out)]) == 0
    assert "warning" not in capsys.readouterr().out


def test_labels_match_the_rendered_hands(labelled, video):
    """joints3d sits on the true camera-space joints; the MANO values rebuild them (left hands too)."""
    from handmesh.data.custom import complete_from_mano, read_annotations
    from handmesh.geometry import project_points_np

    out, _ = labelled
    anns, problems, _ = read_annotations(out)
    assert not problems
    truth = {}
    for i, frame in enumerate(video.detections):
        for d in frame:
            truth[(f"frame_{i:03d}.png", d.handedness)] = d
    for a in anns:
        d = truth[(a.image.name, a.side)]
        uv = project_points_np(a.joints3d, a.K)
        assert np.linalg.norm(uv - d.keypoints2d, axis=-1).mean() < 2.0
        fitted_shape = a.joints3d - a.joints3d.mean(0)
        assert np.linalg.norm(fitted_shape - d.keypoints3d, axis=-1).mean() < 0.002
    rebuilt = [dataclasses.replace(a, joints3d=None, vertices=None) for a in anns]
    complete_from_mano(rebuilt)
    for a, b in zip(anns, rebuilt, strict=True):
        assert np.linalg.norm(a.joints3d - b.joints3d, axis=-1).mean() < 1e-4


@pytest.mark.slow  # ~15-40 s on 2 busy cores: a model build, three optimizer steps and a validation
def test_labelled_dataset_trains_a_few_steps(labelled, tmp_path):
    from handmesh.models import ModelConfig
    from handmesh.train import train

    out, _ = labelled
    cfg = tiny_train_config(out, tmp_path, epochs=1, batch_size=2, val_fraction=0.5, image_grid=0)
    result = train(cfg, ModelConfig(variant="fastvit_t8", img_size=64))
    assert result["epochs"] == 1
    assert (tmp_path / "last.pt").is_file()


def test_low_confidence_hands_are_dropped_or_kept_and_listed(video, image_dir, tmp_path):
    rng = np.random.default_rng(0)

    def scramble(d):
        if d.handedness == "left":  # the left hand's 3D landmarks become noise: no hand fits them
            return dataclasses.replace(d, keypoints3d=rng.normal(0, 0.04, (21, 3)))
        return d

    report = label(image_dir, tmp_path / "a", LabelConfig(), detector=scripted(video, scramble))
    assert report["hands_kept"] == 6 and report["hands_dropped"] == 6
    assert all(not e["kept"] for e in report["low_confidence"])
    assert {ln["handedness"] for ln in read_lines(tmp_path / "a")} == {"right"}
    kept = label(image_dir, tmp_path / "b", LabelConfig(keep_low=True), detector=scripted(video, scramble))
    assert kept["hands_kept"] == 12 and len(kept["low_confidence"]) == 6
    lines = read_lines(tmp_path / "b")
    for entry in kept["low_confidence"]:
        assert lines[entry["line"] - 1]["confidence"] < 0.5


def test_wrong_detector_sides_are_dropped_not_written(video, image_dir, tmp_path):
    """The detector names every hand's side wrongly: checked labels write none of them; trusting it writes
    them all with the wrong side (what MediaPipe did to rendered hands)."""
    from handmesh.pipeline.detector import flip_handedness

    def swap(d):
        return dataclasses.replace(d, handedness=flip_handedness(d.handedness))

    report = label(image_dir, tmp_path / "a", LabelConfig(), detector=scripted(video, swap))
    assert report["hands_kept"] == 0 and len(report["doubtful"]) == 12
    assert all(e["why"] == ["sides disagree"] for e in report["doubtful"])
    trusting = label(
        image_dir, tmp_path / "b", LabelConfig(handedness="detector"), detector=scripted(video, swap)
    )
    assert trusting["hands_kept"] == 12 and not trusting["doubtful"]


def test_hands_whose_body_disagrees_are_dropped_when_checked(video, image_dir, tmp_path):
    """A hand the body puts on the other wrist is doubtful under --handedness checked, kept otherwise."""
    from handmesh.pipeline.detector import flip_handedness

    def body(d):
        side = flip_handedness(d.handedness) if d.handedness == "left" else d.handedness
        return dataclasses.replace(d, body_side=side, side_confidence=0.8)

    report = label(image_dir, tmp_path / "a", LabelConfig(), detector=scripted(video, body))
    assert report["hands_kept"] == 6 and len(report["doubtful"]) == 6
    assert all(e["why"] == ["body's side disagrees"] for e in report["doubtful"])
    assert {ln["side_confidence"] for ln in read_lines(tmp_path / "a")} == {0.8}
    trusting = label(
        image_dir, tmp_path / "b", LabelConfig(handedness="detector"), detector=scripted(video, body)
    )
    assert trusting["hands_kept"] == 12


def test_video_input_extracts_frames(video, tmp_path):
    from handmesh.pipeline.media import VideoWriter

    path = tmp_path / "clip.avi"
    with VideoWriter(path, 10, SIZE) as w:
        for frame in video.frames:
            w.write(frame)
    report = label(path, tmp_path / "ds", LabelConfig(every=2), detector=scripted(video))
    assert report["frames"] == 3
    names = sorted(p.name for p in (tmp_path / "ds" / "images").iterdir())
    assert names == ["clip_000000.jpg", "clip_000002.jpg", "clip_000004.jpg"]


def test_user_errors(image_dir, tmp_path, labelled, capsys):
    assert cli_main(["label", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    out, _ = labelled
    assert cli_main(["label", str(image_dir), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli_main(["label", str(tmp_path / "empty"), "--out", str(tmp_path / "y")]) == 2


def test_confidence_terms():
    box = np.array([0, 0, 100, 100])
    assert hand_confidence(1.0, 0.0, 0.0, box) == pytest.approx(1.0)
    assert hand_confidence(0.9, 0.003, 2.0, box) > 0.75
    assert hand_confidence(1.0, 0.02, 0.0, box) < 0.01
    assert hand_confidence(1.0, 0.0, 30.0, box) < 0.01


def test_mediapipe_end_to_end_on_rendered_hands(image_dir, tmp_path):
    """The real detector finds the rendered hands; the command line writes a dataset that validates."""
    out = tmp_path / "mp"
    # The stand-in is not what MediaPipe was trained on: its landmarks fit loosely, hence the low bar.
    args = ["label", str(image_dir), "--out", str(out), "--handedness", "fit", "--min-confidence", "0.1"]
    assert cli_main(args) == 0
    report = json.loads((out / "label_report.json").read_text())
    assert report["hands_detected"] >= 6 and report["hands_kept"] >= 6
    assert report["annotations"] == report["hands_kept"]
    assert cli_main(["check-dataset", str(out)]) == 0
