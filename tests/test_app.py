"""The Gradio app's named API endpoint /predict_image, called with gradio_client."""

from __future__ import annotations

import json
import os
import socket

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

    root = tmp_path_factory.mktemp("app")
    torch.manual_seed(0)
    save_model(build_model("fastvit_t8", img_size=128), root / "model.pt")
    cfg = AppConfig(checkpoint=str(root / "model.pt"), detector="static:60,40,160,150", port=free_port())
    state = DemoState(cfg)
    assert state.default.startswith("Model:")
    demo = build_demo(state)
    demo.queue()
    demo.launch(
        server_name="127.0.0.1", server_port=cfg.port, prevent_thread_lock=True, quiet=True, show_error=True
    )
    yield f"http://127.0.0.1:{cfg.port}/", root
    demo.close()


def test_predict_image_api(app_url):
    from gradio_client import Client, handle_file

    from handmesh.pipeline.media import write_image

    url, root = app_url
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


def test_process_video_api(app_url):
    from gradio_client import Client, handle_file

    from handmesh.pipeline.media import VideoWriter

    url, root = app_url
    with VideoWriter(root / "clip.webm", 10, (240, 200)) as w:
        for i in range(5):
            frame = np.full((200, 240, 3), 70, np.uint8)
            frame[60:140, 80 + i : 150 + i] = (200, 160, 130)
            w.write(frame)
    client = Client(url, verbose=False)
    video, frames_json, message = client.predict(
        handle_file(str(root / "clip.webm")), api_name="/process_video"
    )
    path = video["video"] if isinstance(video, dict) else video
    assert str(path).endswith(".mp4") and os.path.getsize(path) > 0  # H.264 through PyAV
    from handmesh.pipeline.media import iter_video

    assert len(list(iter_video(path))) == 5
    data = json.loads(open(frames_json).read())
    assert len(data["frames"]) == 5 and all(len(f["hands"]) == 1 for f in data["frames"])
    assert "5 frames" in message


def test_app_starts_without_any_model(monkeypatch):
    """No checkpoint and no landmark-fit mode: the page still builds and says how to get a model."""
    import handmesh.pipeline.factory as factory
    from handmesh.app import NO_MODEL, AppConfig, DemoState, build_demo

    monkeypatch.setattr(factory, "landmark_fit_available", lambda: False)
    state = DemoState(AppConfig(detector="static:0,0,10,10"))
    assert state.default == NO_MODEL and state.pipelines == {}
    assert any("--checkpoint" in n for n in state.notes)
    assert state.pipeline(NO_MODEL, 2, True, False, 0.8) is None
    build_demo(state)
