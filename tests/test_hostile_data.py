"""Datasets that passed poison, run folders two trainings shared, and the low-severity cases of issue 22.

Each case ends with exit status 1 or 2, no traceback, and a line naming the input and the problem; a
report goes on past a bad line; nothing the user handed over is overwritten.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PoisonedLabels, assert_refused, make_freihand, run_cli, write_jpeg
from PIL import Image

from handmesh.errors import HandmeshError


# ---------------------------------------------------------------------------------------- custom sets
def custom_set(root: Path, lines: list) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_jpeg(root / "a.jpg")
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    (root / "annotations.jsonl").write_text(text)
    return root


KP = [[10 + i, 12 + i] for i in range(21)]
K = [[200.0, 0, 32], [0, 200.0, 32], [0, 0, 1]]


def test_a_symlink_inside_the_folder_cannot_reach_outside(tmp_path):
    outside = write_jpeg(tmp_path / "private.jpg")
    root = custom_set(
        tmp_path / "set", [{"image": "a.jpg", "keypoints2d": KP}, {"image": "b.jpg", "keypoints2d": KP}]
    )
    os.symlink(outside, root / "b.jpg")
    rc, text = run_cli("check-dataset", root)
    assert_refused(rc, text, "line 2", "link to a file outside the dataset folder")
    assert "line 1" not in text
    (root / "inside.jpg").symlink_to(root / "a.jpg")  # a link that stays inside is fine
    (root / "annotations.jsonl").write_text(json.dumps({"image": "inside.jpg", "keypoints2d": KP}) + "\n")
    assert run_cli("check-dataset", root)[0] == 0


@pytest.mark.parametrize(
    "line, words",
    [
        (
            {"image": "a.jpg", "keypoints2d": KP, "K": [[1e-300, 0, 32], [0, 1e-300, 32], [0, 0, 1]]},
            ["K", "focal"],
        ),
        ({"image": "a.jpg", "keypoints2d": [[1e300, 1.0]] * 21}, ["keypoints2d", "1e+300"]),
        ({"image": "a.jpg", "joints3d": [[0.0, 0.0, 1e-300]] * 21, "K": K}, ["joints3d", "within 1 mm"]),
        (
            {"image": "a.jpg", "keypoints2d": KP, "K": [[200.0, 1e12, 32], [0, 200.0, 32], [0, 0, 1]]},
            ["K", "1e+12"],
        ),
        ("{" + '"image": "a.jpg", "confidence": ' + "9" * 5000 + "}", ["line 1", "not valid JSON"]),
    ],
)
def test_absurd_finite_values_are_refused(tmp_path, line, words):
    root = custom_set(tmp_path / "set", [line, {"image": "a.jpg", "keypoints2d": KP}])
    rc, text = run_cli("check-dataset", root)
    assert_refused(rc, text, *words)
    assert "line 2" not in text  # the other line is fine and the report went past the bad one


# ---------------------------------------------------------------------------------------- FreiHAND layout
@pytest.fixture(scope="module")
def freihand(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fh")
    return make_freihand(root, n=4)


def _broken_png_named_jpg(d: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    idat = data.find(b"IDAT")
    data[idat + 8 : idat + 40] = os.urandom(32)  # the pixels are garbage, header and IEND intact
    (d / "training/rgb/00000001.jpg").write_bytes(bytes(data))


def _edit_json(path: Path, fn) -> None:
    path.write_text(json.dumps(fn(json.loads(path.read_text()))))


FREIHAND_POISON = {
    "skew": (
        lambda d: _edit_json(
            d / "training_K.json", lambda K: [K[0], [[200, 1e12, 32], [0, 200, 32], [0, 0, 1]], *K[2:]]
        ),
        ["training_K.json", "entry 1", "skew"],
    ),
    "tiny focal": (
        lambda d: _edit_json(
            d / "training_K.json", lambda K: [[[1e-300, 0, 32], [0, 1e-300, 32], [0, 0, 1]], *K[1:]]
        ),
        ["training_K.json", "entry 0", "focal"],
    ),
    "png named jpg": (_broken_png_named_jpg, ["00000001.jpg", "PNG image, not JPEG"]),
    "xyz folder": (
        lambda d: ((d / "training_xyz.json").unlink(), (d / "training_xyz.json").mkdir()),
        ["training_xyz.json", "not a regular file"],
    ),
    "versions text": (
        lambda d: _edit_json(d / "handmesh_synth.json", lambda i: {**i, "training_versions": "x"}),
        ["training_versions", "integer"],
    ),
    "versions zero": (
        lambda d: _edit_json(d / "handmesh_synth.json", lambda i: {**i, "training_versions": 0}),
        ["training_versions", "integer"],
    ),
    "huge integer": (
        lambda d: (d / "training_K.json").write_text("[" + "9" * 5000 + "]"),
        ["training_K.json", "not valid JSON"],
    ),
}


@pytest.mark.parametrize("case", list(FREIHAND_POISON))
def test_freihand_poison_is_found_by_check_dataset_and_training(freihand, tmp_path, case):
    poison, words = FREIHAND_POISON[case]
    folder = tmp_path / "fh"
    shutil.copytree(freihand, folder)
    poison(folder)
    rc, text = run_cli("check-dataset", folder)
    assert_refused(rc, text, *words)
    rc, text = run_cli(
        "train", "--data", folder, "--out", tmp_path / "run", "--epochs", "1", "--img-size", "64"
    )
    assert_refused(rc, text, *words[:1])
    assert not list((tmp_path / "run").glob("*.pt"))


def test_a_jpeg_cut_short_with_an_end_marker_is_found_by_a_full_decode(freihand, tmp_path):
    folder = tmp_path / "fh"
    shutil.copytree(freihand, folder)
    rng = np.random.default_rng(0)
    image = folder / "training/rgb/00000002.jpg"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(image, quality=95)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 3] + b"\xff\xd9")  # header and end marker intact
    assert run_cli("check-dataset", folder)[0] == 0  # the header check cannot see it (documented)
    rc, text = run_cli("check-dataset", folder, "--full-decode")
    assert_refused(rc, text, "00000002.jpg", "premature end")
    assert "00000001.jpg" not in text


def test_training_refuses_a_jpeg_cut_short_in_one_line(freihand, tmp_path):
    """The header check passes it; the reader (in a data-loader worker) refuses it by name, one line
    (evaluate reads images through the same reader)."""
    from conftest import write_cut_short_jpeg

    folder = tmp_path / "fh"
    shutil.copytree(freihand, folder)
    write_cut_short_jpeg(folder / "training/rgb/00000001.jpg", size=(64, 64))
    rc, text = run_cli(
        "train", "--data", folder, "--out", tmp_path / "run", "--epochs", "1", "--img-size", "64",
        "--workers", "1",
    )  # fmt: skip
    assert_refused(rc, text, "00000001.jpg", "JPEG data ends early")
    assert len([line for line in text.splitlines() if "error:" in line]) == 1, text


# ---------------------------------------------------------------------------------------- training
def test_a_second_training_into_a_busy_folder_is_refused(freihand, tmp_path):
    from handmesh.train.state import lock_run_dir

    out = tmp_path / "run"
    held = lock_run_dir(out)  # what a running training holds (flock: another open of the file conflicts)
    try:
        args = [
            "train",
            "--data",
            freihand,
            "--out",
            out,
            "--epochs",
            "1",
            "--img-size",
            "64",
            "--workers",
            "0",
        ]
        rc, text = run_cli(*args)
        assert_refused(rc, text, str(out), "in use by another training", str(os.getpid()))
        assert not list(out.glob("*.pt"))
    finally:
        os.close(held)
    rc, text = run_cli(*args, "--batch-size", "2")
    assert rc == 0, text[-3000:]
    assert (out / "last.pt").is_file()


def test_training_reports_skipped_batches_per_epoch(freihand, tmp_path, capsys):
    from handmesh.data.freihand import FreiHANDDataset, HoldOut
    from handmesh.data.transforms import AugmentConfig
    from handmesh.models import ModelConfig
    from handmesh.train import TrainConfig, train

    aug = AugmentConfig(img_size=64)
    train_set = FreiHANDDataset(freihand, "train", aug, augment=False, held_out=HoldOut(0.25))
    val_set = FreiHANDDataset(freihand, "val", aug, held_out=HoldOut(0.25))
    cfg = TrainConfig(
        data=str(freihand), out=str(tmp_path / "run"), epochs=2, batch_size=1, workers=0, val_fraction=0.25,
        progress=False, image_grid=0,
    )  # fmt: skip
    result = train(cfg, ModelConfig(img_size=64), datasets=(PoisonedLabels(train_set, [1]), val_set))
    err = capsys.readouterr().err
    assert err.count(f"skipped 1 of {len(train_set)} batch(es) (1 non-finite loss)") == 2, err[-2000:]
    assert result["last"]["skipped_batches"] == {"non-finite loss": 1}


# ---------------------------------------------------------------------------------------- low severity
@pytest.mark.parametrize(
    "command, option, value",
    [
        ("predict", "--right-color", "nan"),
        ("predict", "--min-score", "nan"),
        ("predict", "--opacity", "nan"),
        ("train", "--batch-size", "0"),
        ("train", "--lr", "nan"),
        ("train", "--workers", "-1"),
        ("train", "--epochs", "-1"),
    ],
)
def test_nonsense_numbers_are_one_line(freihand, tmp_path, capsys, command, option, value):
    from handmesh.cli import main

    image = write_jpeg(tmp_path / "a.jpg")
    where = (
        [image, "--out", tmp_path / "o"]
        if command == "predict"
        else ["--data", freihand, "--out", tmp_path / "r"]
    )
    with pytest.raises(SystemExit) as info:
        main([command, *map(str, where), option, value])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert option in err.splitlines()[-1] and "must be between" in err.splitlines()[-1], err[-500:]
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_score_refuses_to_write_scores_over_the_submission(tmp_path):
    gt = tmp_path / "gt"
    gt.mkdir()
    rng = np.random.default_rng(0)
    xyz, verts = rng.normal(0, 0.03, (2, 21, 3)) + [0, 0, 0.6], rng.normal(0, 0.03, (2, 778, 3)) + [0, 0, 0.6]
    (gt / "evaluation_xyz.json").write_text(json.dumps(xyz.tolist()))
    (gt / "evaluation_verts.json").write_text(json.dumps(verts.tolist()))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([xyz.tolist(), verts.tolist()]))
    before = pred.read_bytes()
    rc, err = run_cli("score", pred, "--gt", gt, "--json", tmp_path / "." / "pred.json")
    assert_refused(rc, err, "pred.json", "submission itself")
    assert pred.read_bytes() == before


def test_evaluate_blames_nan_weights_and_writes_no_submission(freihand, tmp_path):
    from handmesh.models import build_model, save_model

    model = build_model("fastvit_t8", img_size=64)
    with torch.no_grad():
        next(p for p in model.parameters() if p.is_floating_point()).fill_(float("nan"))
    save_model(model, tmp_path / "nan.pt")
    (tmp_path / "fh").mkdir()
    folder = make_freihand(tmp_path / "fh", n=2, eval_n=2)
    rc, err = run_cli("evaluate", tmp_path / "nan.pt", "--data", folder, "--out", tmp_path / "ev", "--quiet")
    assert_refused(rc, err, "nan.pt", "NaN")
    assert "pred.json" not in err.splitlines()[-1]
    assert not (tmp_path / "ev" / "pred.json").exists()


def test_postscript_named_jpg_never_reaches_pillows_eps_plugin(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    from handmesh.data.io import probe_image, read_image

    calls = []
    monkeypatch.setattr(EpsImagePlugin, "_accept", lambda prefix: calls.append(prefix) or True)
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n")
    for read in (read_image, probe_image):
        with pytest.raises(HandmeshError, match="photo.jpg"):
            read(path)
    assert not calls, "Pillow asked its EPS plugin about the file"


def test_float_tiff_with_one_nan_pixel_and_int32_tiff_are_scaled_right(tmp_path):
    from handmesh.data.io import read_image

    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    ramp[0, 0] = np.nan
    Image.fromarray(ramp, mode="F").save(tmp_path / "f.tif")
    grey = read_image(tmp_path / "f.tif")[..., 0].astype(int)
    assert grey[0, 0] == 0 and grey[-1, -1] == 255 and abs(grey[32, 0] - 128) <= 2  # not all 0/1 (unscaled)

    wide = (np.linspace(0, 2**31 - 1, 64 * 64).reshape(64, 64)).astype(np.int32)
    Image.fromarray(wide, mode="I").save(tmp_path / "i.tif")
    grey = read_image(tmp_path / "i.tif")[..., 0].astype(int)
    assert grey[-1, -1] == 255 and abs(grey[32, 0] - 128) <= 2 and (grey == 255).mean() < 0.01


def test_video_cap_counts_frames_too(tmp_path):
    """A 240 fps clip: 60 s would be 14,400 frames; the frame cap stops it first."""
    from handmesh.pipeline.media import VideoWriter
    from handmesh.pipeline.predictor import build_pipeline, run_on_video

    path = tmp_path / "fast.webm"
    with VideoWriter(path, 240, (64, 48)) as w:
        for i in range(40):
            w.write(np.full((48, 64, 3), 5 * i, np.uint8))
    model = tmp_path / "m.pt"
    from handmesh.models import build_model, save_model

    save_model(build_model("fastvit_t8", img_size=64), model)
    from handmesh.pipeline.predictor import SourceConfig

    pipe = build_pipeline(SourceConfig(checkpoint=str(model), detector="static:5,5,60,40", runtime="torch"))
    video = run_on_video(pipe, path, max_seconds=60.0, max_frames=12)
    assert len(video.frames) == 12 and video.truncated
