"""The bad-input corpus: generated hostile files run through every command-line entry point.

Each case must end with exit status 1 or 2, no traceback, and an error line that names the input and the
problem; a batch goes on with its other items; nothing is overwritten. Commands that could take the whole
process down (MediaPipe's bundled OpenCV aborts on huge frames) run as subprocesses.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_refused, make_freihand, png_header_only, run_cli, write_cut_short_jpeg, write_jpeg
from PIL import Image

# ---------------------------------------------------------------------------------------- the corpus
# name -> (writer, words the refusal must contain)
BAD_IMAGES = {
    "wide.png": (lambda p: Image.fromarray(np.zeros((1, 32767), np.uint8)).save(p), ["32767x1"]),
    "bomb.png": (lambda p: p.write_bytes(png_header_only(20000, 20000)), ["decompression bomb"]),
    "big.png": (lambda p: p.write_bytes(png_header_only(9000, 9000)), ["9000x9000"]),
    "truncated.jpg": (lambda p: p.write_bytes(write_jpeg(p).read_bytes()[:200]), ["truncated.jpg"]),
    "empty.jpg": (lambda p: p.write_bytes(b""), ["empty file"]),
    "text.jpg": (lambda p: p.write_text("not an image"), ["cannot decode"]),
    "loop.png": (lambda p: os.symlink(p.name, p), ["link"]),
    "cut_short.jpg": (write_cut_short_jpeg, ["JPEG data ends early"]),
}


# a folder listing skips what is not a regular file (the looping link): it is checked by check-dataset
LISTED_BAD_IMAGES = {k: v for k, v in BAD_IMAGES.items() if k != "loop.png"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    images = root / "images"
    images.mkdir()
    for name, (write, _) in BAD_IMAGES.items():
        write(images / name)
    write_jpeg(images / "good.jpg")
    return root


def run_subprocess(*args: str, timeout: float = 240) -> tuple[int, str]:
    """Run `handmesh ARGS` as its own process (a native abort cannot take the test run with it)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "handmesh.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    return proc.returncode, proc.stderr


# ---------------------------------------------------------------------------------------- image reading
def test_16_bit_png_is_scaled_not_saturated(tmp_path):
    from handmesh.data.io import read_image

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    grey = read_image(tmp_path / "deep.png")[..., 0].astype(int)
    assert (grey == 255).mean() < 0.01  # saturation made 99.6 % of these pixels 255
    assert np.abs(grey - np.round(ramp / 257.0)).max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    from handmesh.data.io import probe_image, read_image

    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :20] = 255  # left half white: after a 90-degree turn it is the top or bottom half
    pil = Image.fromarray(image)
    exif = pil.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    pil.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = read_image(tmp_path / "phone.jpg")
    assert upright.shape == (40, 20, 3) and probe_image(tmp_path / "phone.jpg") == (20, 40)
    assert upright[:20].mean() > 200 and upright[20:].mean() < 50


def test_a_jpeg_cut_short_with_an_end_marker_is_refused_by_the_reader(tmp_path):
    """Pillow decodes it with grey rows and says nothing; the reader refuses it, complete images of the
    same grey (plain, progressive, greyscale, 4:4:4, restart markers) still load."""
    import cv2

    from handmesh.data.io import read_image
    from handmesh.errors import HandmeshError

    for keep in (0.05, 1 / 3, 0.9, 0.99):
        cut = write_cut_short_jpeg(tmp_path / f"cut{keep}.jpg", keep=keep)
        with Image.open(cut) as im:  # what the reader saw before: no error, the lower part grey
            im.load()
            assert (np.asarray(im)[-4:, -4:] == 128).all()
        with pytest.raises(HandmeshError, match="JPEG data ends early"):
            read_image(cut)
    grey = np.full((61, 37, 3), 128, np.uint8)
    complete = {"plain": {}, "progressive": {"progressive": True}, "444": {"subsampling": 0}}
    for name, options in complete.items():
        Image.fromarray(grey).save(tmp_path / f"{name}.jpg", **options)
    Image.fromarray(grey[..., 0]).save(tmp_path / "L.jpg")
    ok, data = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_RST_INTERVAL, 2])
    (tmp_path / "restart.jpg").write_bytes(data.tobytes())
    for name in [*complete, "L", "restart"]:
        assert (read_image(tmp_path / f"{name}.jpg") == 128).all(), name
    noise = np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)
    noise[-8:, -8:] = 128  # a complete image that does end in that grey
    Image.fromarray(noise).save(tmp_path / "whole.jpg", quality=95)
    assert read_image(tmp_path / "whole.jpg").std() > 50


def test_truncated_video_warns(tmp_path, capsys):
    from handmesh.pipeline.media import VideoWriter, iter_video

    path = tmp_path / "clip.avi"
    with VideoWriter(path, 10, (64, 48)) as w:
        for i in range(10):
            w.write(np.full((48, 64, 3), 20 * i, np.uint8))
    data = bytearray(path.read_bytes())
    # declare 25 frames in the AVI main header and the stream header: 15 frames "went missing"
    avih, strh = data.find(b"avih"), data.find(b"strh")
    data[avih + 24 : avih + 28] = struct.pack("<I", 25)
    data[strh + 40 : strh + 44] = struct.pack("<I", 25)
    path.write_bytes(bytes(data))
    assert len(list(iter_video(path))) == 10
    assert "decoded 10 of its 25 frames" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- predict
def test_predict_folder_survives_every_bad_image(corpus, tmp_path):
    """One process, the real MediaPipe detector: bad files are refused one by one, the good one is done."""
    out = tmp_path / "out"
    rc, err = run_subprocess("predict", corpus / "images", "--out", out)
    assert rc == 1, err[-3000:]  # not -6: SIGABRT from MediaPipe's OpenCV
    assert "Traceback" not in err
    for name, (_, words) in LISTED_BAD_IMAGES.items():
        assert_refused(rc, err, name, *words)
    assert (out / "good.jpg.json").is_file() and (out / "good.jpg_overlay.png").is_file()
    n = len(LISTED_BAD_IMAGES)
    assert f"{n} of {n + 1} input(s) failed" in err


@pytest.mark.parametrize(
    "args, words",
    [
        (["--fov", "nan"], ["--fov nan", "1 and 179"]),
        (["--fov", "0"], ["--fov 0", "1 and 179"]),
        (["--fov", "-10"], ["--fov -10", "1 and 179"]),
        (["--max-hands", "0"], ["--max-hands 0"]),
    ],
)
def test_predict_refuses_nonsense_camera_options(corpus, tmp_path, args, words):
    rc, err = run_cli("predict", corpus / "images" / "good.jpg", "--out", tmp_path / "o", *args)
    assert_refused(rc, err, *words)
    assert not (tmp_path / "o" / "good.jpg.json").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_predict_and_label_refuse_fifo_and_devices(corpus, tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    for source in (fifo, Path("/dev/zero")):
        rc, err = run_cli("predict", source, "--out", tmp_path / "o", "--detector", "static:1,1,20,20")
        assert_refused(rc, err, str(source), "not a regular file")
    rc, err = run_cli("label", "/dev/zero", "--out", tmp_path / "l")
    assert_refused(rc, err, "/dev/zero")


def test_unwritable_outputs_are_one_line(corpus, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, err = run_cli("predict", corpus / "images" / "good.jpg", "--out", blocker / "sub")
    assert_refused(rc, err, "file")


# ---------------------------------------------------------------------------------------- label
def test_label_folder_goes_on_past_bad_images(corpus, tmp_path):
    out = tmp_path / "ds"
    rc, err = run_cli("label", corpus / "images", "--out", out)
    assert rc == 1 and "Traceback" not in err, err[-3000:]
    for name, (_, words) in LISTED_BAD_IMAGES.items():
        assert_refused(rc, err, name, *words)
    report = json.loads((out / "label_report.json").read_text())
    assert report["frames"] == 1 and len(report["failed_inputs"]) == len(LISTED_BAD_IMAGES)


# ---------------------------------------------------------------------------------------- score
@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gt")
    rng = np.random.default_rng(0)
    xyz = rng.normal(0, 0.03, (2, 21, 3)) + [0, 0, 0.6]
    verts = rng.normal(0, 0.03, (2, 778, 3)) + [0, 0, 0.6]
    (root / "evaluation_xyz.json").write_text(json.dumps(xyz.tolist()))
    (root / "evaluation_verts.json").write_text(json.dumps(verts.tolist()))
    (root / "pred.json").write_text(json.dumps([xyz.tolist(), verts.tolist()]))
    return root


def _with(pred: list, where: tuple, value) -> list:
    pred = json.loads(json.dumps(pred))
    part, sample, point, axis = where
    pred[part][sample][point][axis] = value
    return pred


@pytest.mark.parametrize(
    "case, words",
    [
        ("bool", ["true", "must be numbers"]),
        ("string", ['"0.5"', "must be numbers"]),
        ("millimetres", ["millimetres"]),
        ("deep", ["nested too deeply"]),
        ("object", ["[xyz_list, verts_list]"]),
    ],
)
def test_score_refuses_what_is_not_metres(ground_truth, tmp_path, case, words):
    good = json.loads((ground_truth / "pred.json").read_text())
    pred = {
        "bool": lambda: _with(good, (0, 1, 3, 0), True),
        "string": lambda: _with(good, (1, 0, 5, 2), "0.5"),
        "millimetres": lambda: [(np.array(good[0]) * 1000).tolist(), good[1]],
        "deep": lambda: None,
        "object": lambda: {"xyz": good[0]},
    }[case]()
    path = tmp_path / f"{case}.json"
    path.write_text("[" * 50000 + "]" * 50000 if case == "deep" else json.dumps(pred))
    rc, err = run_cli("score", path, "--gt", ground_truth)
    assert_refused(rc, err, path.name, *words)


def test_score_good_file_and_unwritable_json(ground_truth, tmp_path):
    assert run_cli("score", ground_truth / "pred.json", "--gt", ground_truth)[0] == 0
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, err = run_cli("score", ground_truth / "pred.json", "--gt", ground_truth, "--json", blocker / "s.json")
    assert_refused(rc, err, "file")


# ---------------------------------------------------------------------------------------- datasets
def _json_edit(path: Path, fn) -> None:
    path.write_text(json.dumps(fn(json.loads(path.read_text()))))


BROKEN_FREIHAND = {
    "missing": (lambda d: (d / "training/rgb/00000001.jpg").unlink(), ["00000001.jpg", "not found"]),
    "truncated": (
        lambda d: (d / "training/rgb/00000002.jpg").write_bytes(
            (d / "training/rgb/00000002.jpg").read_bytes()[:150]
        ),
        ["00000002.jpg"],
    ),
    "empty": (lambda d: (d / "training/rgb/00000002.jpg").write_bytes(b""), ["00000002.jpg", "empty"]),
    "loop": (
        lambda d: (
            (d / "training/rgb/00000001.jpg").unlink(),
            os.symlink("00000001.jpg", d / "training/rgb/00000001.jpg"),
        ),
        ["00000001.jpg", "link"],
    ),
    "zero K": (
        lambda d: _json_edit(d / "training_K.json", lambda K: [K[0], [[0] * 3] * 3, *K[2:]]),
        ["training_K.json", "entry 1", "camera"],
    ),
    "millimetres": (
        lambda d: _json_edit(d / "training_xyz.json", lambda X: (np.array(X) * 1000).tolist()),
        ["training_xyz.json", "millimetres"],
    ),
    "swapped labels": (
        lambda d: _json_edit(d / "training_xyz.json", lambda X: [X[1], X[0], *X[2:]]),
        ["training_xyz.json", "entry 0", "mm from what training_mano.json gives"],
    ),
    "leftover images": (
        lambda d: [write_jpeg(d / "training/rgb" / f"{i:08d}.jpg") for i in range(4, 8)],
        ["4 image(s) beyond", "left over"],
    ),
}


@pytest.fixture(scope="module")
def freihand(tmp_path_factory) -> Path:
    return make_freihand(tmp_path_factory.mktemp("freihand"), n=4, eval_n=2)


def test_check_dataset_passes_a_clean_freihand_folder(freihand):
    rc, err = run_cli("check-dataset", freihand)
    assert rc == 0, err


@pytest.mark.parametrize("case", list(BROKEN_FREIHAND))
def test_check_dataset_finds_broken_freihand_folders(freihand, tmp_path, case):
    import shutil

    folder = tmp_path / "fh"
    shutil.copytree(freihand, folder, symlinks=True)
    breaker, words = BROKEN_FREIHAND[case]
    breaker(folder)
    rc, text = run_cli("check-dataset", folder)
    assert_refused(rc, text, *words)
    assert rc == 1 and "; OK" not in text


def test_preflight_names_the_first_problem(freihand, tmp_path):
    import shutil

    from handmesh.data.checks import preflight_dataset
    from handmesh.errors import HandmeshError

    warnings, labels = preflight_dataset(freihand)
    assert warnings == [] and labels.split == "training" and len(labels) > 0
    folder = tmp_path / "fh"
    shutil.copytree(freihand, folder)
    (folder / "training/rgb/00000003.jpg").write_bytes(b"")
    with pytest.raises(HandmeshError, match=r"00000003\.jpg: empty file.*check-dataset"):
        preflight_dataset(folder)


def test_training_refuses_a_broken_folder_before_its_first_step(freihand, tmp_path):
    import shutil

    folder = tmp_path / "fh"
    shutil.copytree(freihand, folder)
    (folder / "training/rgb/00000002.jpg").write_bytes(b"")
    out = tmp_path / "run"
    rc, err = run_cli("train", "--data", folder, "--out", out, "--epochs", "1", "--batch-size", "2")
    assert_refused(rc, err, "00000002.jpg", "empty file", "check-dataset")
    assert not list(out.glob("*.pt"))


def test_custom_dataset_lines_and_paths(tmp_path):
    root = tmp_path / "custom"
    root.mkdir()
    write_jpeg(root / "a.jpg")
    kp = [[10 + i, 10 + i] for i in range(21)]
    lines = [
        json.dumps({"image": "a.jpg", "keypoints2d": kp}).encode(),
        b'{"image": "a.jpg", "keypoints2d": "\xff\xfe"}',
        json.dumps({"image": "../outside.jpg", "keypoints2d": kp}).encode(),
        json.dumps({"image": "/etc/hostname", "keypoints2d": kp}).encode(),
        b"[" * 100000 + b"]" * 100000,
    ]
    (root / "annotations.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    rc, text = run_cli("check-dataset", root)
    assert_refused(rc, text, "line 2", "annotations.jsonl", "UTF-8")
    assert_refused(rc, text, "line 3", "outside the dataset folder")
    assert_refused(rc, text, "line 4", "outside the dataset folder")
    assert_refused(rc, text, "line 5", "nested too deeply")


# ---------------------------------------------------------------------------------------- model files
def _edited_model(model_file: Path, tmp_path: Path, name: str, fn) -> Path:
    payload = torch.load(model_file, weights_only=True)
    fn(payload)
    path = tmp_path / name
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    "field, value",
    [
        ("img_size", 8192),
        ("head_iterations", 10**7),
        ("head_dropout", float("nan")),
        ("variant", "os.system"),
    ],
)
def test_model_config_values_are_bounded(model_file, freihand, tmp_path, field, value):
    path = _edited_model(model_file, tmp_path, "bad.pt", lambda p: p["model_config"].update({field: value}))
    rc, err = run_cli("evaluate", path, "--data", freihand, "--out", tmp_path / "ev", "--quiet")
    assert_refused(rc, err, "bad.pt", "bad model config", field)
    assert not (tmp_path / "ev" / "pred.json").exists()


def test_refused_checkpoint_names_the_unsafe_global(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo never",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "x", "payload": Payload()}, path)
    rc, err = run_cli("export", path, "--onnx", tmp_path / "e.onnx")
    assert_refused(rc, err, "evil.pt", "refused", "system")
    assert "weights_only" not in err


def test_export_refuses_bad_opset_and_nan_weights(model_file, tmp_path):
    rc, err = run_cli("export", model_file, "--onnx", tmp_path / "a.onnx", "--opset", "1")
    assert_refused(rc, err, "--opset 1")

    def poison(payload):
        name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
        payload["state_dict"][name] = torch.full_like(payload["state_dict"][name], float("nan"))

    path = _edited_model(model_file, tmp_path, "nan.pt", poison)
    rc, err = run_cli("export", path, "--onnx", tmp_path / "b.onnx", "--no-verify")
    assert_refused(rc, err, "NaN")
    assert not (tmp_path / "b.onnx").exists()


def test_evaluate_corrupt_image_is_one_line_from_a_worker(model_file, freihand, tmp_path):
    import shutil

    folder = tmp_path / "fh"
    shutil.copytree(freihand, folder)
    (folder / "evaluation/rgb/00000001.jpg").write_bytes(b"\xff\xd8 not really a jpeg \xff\xd9")
    rc, err = run_cli(
        "evaluate", model_file, "--data", folder, "--out", tmp_path / "ev", "--workers", "1", "--quiet"
    )
    assert_refused(rc, err, "00000001.jpg", "cannot decode")
    assert len([line for line in err.splitlines() if line.strip()]) <= 3, err


# ---------------------------------------------------------------------------------------- MANO files
MANO_CASES = {
    # builtins.bytearray(3_600_000_000): 37 bytes asking for 3.6 GB
    "alloc.pkl": (b"cbuiltins\nbytearray\n(L3600000000L\ntR.", ["allocation"]),
    # numpy's _reconstruct with a billion float64s
    "array.pkl": (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\xca\x9a\x3b\x85"
        b"cnumpy\ndtype\nU\x02f8\x89\x88\x87R\x87R.",
        ["allocation"],
    ),
    "deep.pkl": (b"\x80\x02}U\x01a" + b"]" * 100000 + b"a" * 99999 + b"s.", ["nested too deeply"]),
    "code.pkl": (b"cos\nsystem\n(S'echo never'\ntR.", ["os.system"]),
}


@pytest.mark.parametrize("name", list(MANO_CASES))
def test_mano_import_refuses_hostile_pickles(tmp_path, name):
    data, words = MANO_CASES[name]
    path = tmp_path / name
    path.write_bytes(data)
    rc, err = run_cli("mano", "import", path, "--out", tmp_path / "mano")
    assert_refused(rc, err, name, *words)
    assert not (tmp_path / "mano").exists()


def test_mano_import_refuses_devices():
    rc, err = run_cli("mano", "import", "/dev/zero", "--out", "/nonexistent/never")
    assert_refused(rc, err, "/dev/zero", "not a regular file")


# ---------------------------------------------------------------------------------------- the demo's start
def test_busy_port_is_refused_before_start_up():
    import socket

    from handmesh.app import check_port_free
    from handmesh.errors import HandmeshError

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(HandmeshError, match=rf"127\.0\.0\.1:{port} .*--port"):
            check_port_free("127.0.0.1", port)


def test_messages_for_remote_users_hold_no_server_paths():
    from handmesh.errors import without_paths

    text = "/tmp/gradio/5f2a/upload.mp4: not a readable video (see /srv/handmesh/app/log)"
    assert without_paths(text) == "upload.mp4: not a readable video (see log)"


# ---------------------------------------------------------------------------------------- the CLI rule
def test_real_bugs_keep_their_traceback(monkeypatch, tmp_path):
    """Only HandmeshError/OSError become one line; anything else is a bug and shows where it happened."""
    from handmesh import metrics_cli

    def broken(args):
        raise ValueError("a bug, not a user error")

    monkeypatch.setattr(metrics_cli, "run", broken)
    with pytest.raises(ValueError, match="a bug"):
        run_cli("score", tmp_path / "p.json")
    # --debug turns a user error back into its traceback too
    with pytest.raises(FileNotFoundError):
        run_cli("--debug", "predict", tmp_path / "missing.jpg", "--out", tmp_path / "o")


def test_worker_tracebacks_are_reduced_to_their_message():
    from handmesh.errors import HandmeshError, one_line

    wrapped = HandmeshError(
        "Caught HandmeshError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n    raise HandmeshError(...)\n'
        "handmesh.errors.HandmeshError: cannot decode image /d/00000001.jpg: broken data stream\n"
    )
    assert one_line(wrapped) == "cannot decode image /d/00000001.jpg: broken data stream"
    assert one_line(HandmeshError("two\nlines")) == "two lines"
