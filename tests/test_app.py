"""The Gradio app's named API endpoint /predict_image, called with gradio_client."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    import torch

    from handmesh.app import AppConfig, DemoState, build_demo
    from handmesh.models import build_model, save_model
    from handmesh.pipeline.predictor import SourceConfig

    root = tmp_path_factory.mktemp("app")
    torch.manual_seed(0)
    save_model(build_model("fastvit_t8", img_size=128), root / "model.pt")
    source = SourceConfig(checkpoint=str(root / "model.pt"), detector="static:60,40,160,150")
    cfg = AppConfig(source=source, port=free_port())
    state = DemoState(cfg)
    assert state.sources.default.startswith("Model:")
    demo = build_demo(state)
    demo.queue()
    demo.launch(
        server_name="127.0.0.1", server_port=cfg.port, prevent_thread_lock=True, quiet=True, show_error=True
    )
    yield f"http://127.0.0.1:{cfg.port}/", root, state
    demo.close()


def test_predict_image_api(app_url):
    from gradio_client import Client, handle_file

    from handmesh.pipeline.media import write_image

    url, root, state = app_url
    image = np.full((200, 240, 3), 70, np.uint8)
    image[60:140, 80:150] = (200, 160, 130)
    write_image(root / "in.png", image)
    client = Client(url, verbose=False)
    overlay, glb, files, params = client.predict(handle_file(str(root / "in.png")), api_name="/predict_image")
    from handmesh.data.io import read_image

    out = read_image(overlay)
    assert out.shape == image.shape
    changed = np.abs(out.astype(int) - image).sum(-1) > 20
    assert changed[40:150, 60:160].sum() > 200, "a mesh is drawn inside the detected box"
    assert changed[:, :40].sum() == 0
    assert glb.endswith(".glb") and os.path.getsize(glb) > 1000
    names = sorted(os.path.basename(f if isinstance(f, str) else f["path"]) for f in files)
    assert any(n.endswith(".obj") for n in names) and any(n.endswith("_params.json") for n in names)
    data = params if isinstance(params, dict) else json.loads(params)
    assert len(data["hands"]) == 1 and data["model"].startswith("FastViT")
    # every client (browser tab) gets its own pipeline state, keyed by Gradio's session hash
    before = len(state.sessions)
    Client(url, verbose=False).predict(handle_file(str(root / "in.png")), api_name="/predict_image")
    assert len(state.sessions) == before + 1


def test_process_video_api(app_url):
    from gradio_client import Client, handle_file

    from handmesh.pipeline.media import VideoWriter

    url, root, state = app_url
    with VideoWriter(root / "clip.webm", 10, (240, 200)) as w:
        for i in range(5):
            frame = np.full((200, 240, 3), 70, np.uint8)
            frame[60:140, 80 + i : 150 + i] = (200, 160, 130)
            w.write(frame)
    client = Client(url, verbose=False)
    video, frames_json, message, meshes = client.predict(
        handle_file(str(root / "clip.webm")), api_name="/process_video"
    )
    path = video["video"] if isinstance(video, dict) else video
    assert str(path).endswith(".mp4") and os.path.getsize(path) > 0  # H.264 through PyAV
    from handmesh.pipeline.media import iter_video

    assert len(list(iter_video(path))) == 5
    data = json.loads(open(frames_json).read())
    assert len(data["frames"]) == 5 and all(len(f["hands"]) == 1 for f in data["frames"])
    assert "5 frames" in message
    # downloads keep the uploaded file's name
    assert os.path.basename(frames_json) == "clip_frames.json"
    assert os.path.basename(meshes) == "clip_meshes.npz" and os.path.basename(path) == "clip_overlay.mp4"
    assert np.load(meshes)["vertices"].shape == (5, 1, 778, 3)  # every frame's mesh, one hand slot


def test_demo_runtime_option(app_url, capsys):
    """`demo_app.py --runtime` exists as documented and chooses how a checkpoint runs."""
    from handmesh.app import AppConfig, parse_config
    from handmesh.pipeline.predictor import SourceConfig
    from handmesh.pipeline.sessions import LANDMARK_FIT, MeshSources

    _, root, _ = app_url
    with pytest.raises(SystemExit):
        parse_config(["--help"])
    assert "--runtime {auto,onnx,torch}" in capsys.readouterr().out
    cfg = parse_config(["--checkpoint", str(root / "model.pt"), "--runtime", "torch"])
    assert cfg.source.runtime == "torch" and cfg.mirror and not cfg.share and cfg.port == AppConfig().port
    flags = parse_config(["--share", "--no-mirror", "--port", "7999", "--max-sessions", "3"])
    assert flags.share and not flags.mirror and flags.port == 7999 and flags.max_sessions == 3
    assert flags.source.checkpoint is None and flags.source.runtime == "auto"
    static = "static:0,0,10,10"
    torch_sources = MeshSources(replace(cfg.source, detector=static))
    assert torch_sources.default.endswith("(model.pt, torch)")
    assert torch_sources.names == [torch_sources.default, LANDMARK_FIT]
    onnx_sources = MeshSources(replace(cfg.source, runtime="onnx", detector=static))
    assert onnx_sources.default.endswith("(model.pt, ONNX Runtime)")
    assert MeshSources(SourceConfig(detector=static)).names == [LANDMARK_FIT]  # no model file
    for wrong in (
        ["--runtime", "tensorrt"],
        ["--checkpoint", "a.pt", "--onnx", "b.onnx"],
        ["--share", "yes"],
    ):
        with pytest.raises(SystemExit):
            parse_config(wrong)
    assert "--checkpoint or --onnx, not both" in capsys.readouterr().err


def test_header_follows_the_chosen_mesh_source(app_url):
    """The page's header names the source the dropdown picked, and what a model was trained on."""
    from handmesh.app import header_text
    from handmesh.pipeline.sessions import LANDMARK_FIT

    _, _, state = app_url
    model = header_text(state, state.sources.default)
    assert f"**Mesh source:** {state.sources.default}" in model
    assert "training data not recorded" in model  # save_model without training notes
    fit = header_text(state, LANDMARK_FIT)
    assert f"**Mesh source:** {LANDMARK_FIT}" in fit and "no training" in fit
    assert state.sources.default not in fit
    assert "Test detector in use" in fit  # the page's notes stay under whichever source
