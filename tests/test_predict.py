"""`handmesh predict` on an image, a corrupt file and a short video, with a small random checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from handmesh.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    import torch

    from handmesh.models import build_model, save_model
    from handmesh.pipeline.media import VideoWriter, write_image

    root = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    save_model(build_model("fastvit_t8", img_size=128), root / "model.pt")
    folder = root / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    write_image(folder / "a.png", frame)
    (folder / "broken.jpg").write_bytes(b"definitely not a jpeg")
    with VideoWriter(folder / "clip.mp4", 10, (160, 120)) as w:
        for i in range(4):
            w.write(np.roll(frame, 3 * i, axis=1))
    return root


def test_predict_folder(inputs, capsys):
    out = inputs / "out"
    rc = main(
        [
            "predict",
            str(inputs / "in"),
            "--out",
            str(out),
            "--checkpoint",
            str(inputs / "model.pt"),
            "--detector",
            "static:40,20,110,100,left",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1, "one corrupt input -> exit status 1"
    assert "broken.jpg" in err and len([ln for ln in err.splitlines() if "error" in ln]) == 1
    for name in (
        "a.png_overlay.png",
        "a.png.glb",
        "a.png_hand0.obj",
        "a.png_hand0.ply",
        "a.png.json",
        "clip.mp4_overlay.mp4",
        "clip.mp4.json",
    ):
        assert (out / name).is_file(), name
    data = json.loads((out / "a.png.json").read_text())
    (hand,) = data["hands"]
    assert hand["handedness"] == "left" and len(hand["joints3d"]) == 21 and len(hand["joints2d"]) == 21
    assert set(hand["params"]) == {"global_orient", "hand_pose", "betas", "transl"}
    assert len(hand["params"]["hand_pose"]) == 45 and len(hand["crop"]["cam"]) == 3
    video = json.loads((out / "clip.mp4.json").read_text())
    assert len(video["frames"]) == 4 and all(len(f["hands"]) == 1 for f in video["frames"])
    import trimesh

    mesh = trimesh.load(out / "a.png_hand0.obj", process=False)
    assert mesh.vertices.shape == (778, 3)


def test_inputs_differing_only_in_extension_keep_their_own_outputs(inputs, tmp_path, capsys):
    """x.jpg, x.png and x.avi in one folder must not all write x.json."""
    from handmesh.pipeline.media import VideoWriter, write_image

    folder = tmp_path / "in"
    folder.mkdir()
    frame = np.full((120, 160, 3), 90, np.uint8)
    write_image(folder / "x.jpg", frame)
    write_image(folder / "x.png", frame[:100])  # a different size: tells the two JSON files apart
    with VideoWriter(folder / "x.avi", 10, (160, 120)) as w:
        for _ in range(2):
            w.write(frame)
    out = tmp_path / "out"
    model = ["--checkpoint", str(inputs / "model.pt"), "--detector", "static:40,20,110,90"]
    assert main(["predict", str(folder), "--out", str(out), *model]) == 0
    capsys.readouterr()
    jsons = {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(jsons) == {"x.jpg.json", "x.png.json", "x.avi.json"}
    for name, data in jsons.items():
        assert data["input"] == str(folder / name.removesuffix(".json"))
    assert jsons["x.jpg.json"]["image_size"] == [160, 120] and jsons["x.png.json"]["image_size"] == [160, 100]
    assert len(jsons["x.avi.json"]["frames"]) == 2
    assert {"x.jpg_overlay.png", "x.png_overlay.png", "x.avi_overlay.mp4"} <= {p.name for p in out.iterdir()}


def test_predict_user_errors(inputs, capsys):
    assert main(["predict", str(inputs / "missing.png"), "--out", str(inputs / "o2")]) == 2
    assert "no such file" in capsys.readouterr().err
    rc = main(
        ["predict", str(inputs / "in"), "--out", str(inputs / "o3"), "--onnx", str(inputs / "nope.onnx")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("handmesh predict: error:") and "nope.onnx" in err[0] and "not found" in err[0]


@pytest.mark.parametrize("ext", [".mp4", ".webm"])
def test_video_writer_round_trip_odd_size(tmp_path, ext):
    """Overlay videos decode back frame for frame; H.264 MP4 (browser-playable) drops an odd last row/column."""
    from handmesh.pipeline.media import VideoWriter, iter_video, video_info

    frames = []
    for i in range(6):
        f = np.full((61, 81, 3), 40, np.uint8)
        f[10:40, 10 + 5 * i : 40 + 5 * i] = (220, 180, 140)
        frames.append(f)
    with VideoWriter(tmp_path / f"v{ext}", 15, (81, 61)) as w:
        for f in frames:
            w.write(f)
    if ext == ".mp4":
        assert w.codec == "h264"
    back = list(iter_video(tmp_path / f"v{ext}"))
    fps, _, size = video_info(tmp_path / f"v{ext}")
    assert len(back) == 6 and abs(fps - 15) < 0.1
    assert size == (80, 60)  # yuv420p: even sides
    for a, b in zip(frames, back, strict=True):
        h, wd = b.shape[:2]
        assert np.abs(a[:h, :wd].astype(int) - b).mean() < 6  # lossy, but the same picture
