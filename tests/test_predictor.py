"""The predictor every front-end calls: detector specs, model files as runtimes, still images that start
fresh, videos, and one pipeline state per client."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import FakeRuntime, NoRenderer, numbered_frames

from handmesh.errors import HandmeshError
from handmesh.pipeline import (
    HandDetection,
    HandMeshPipeline,
    LandmarkFitEstimator,
    OnnxRuntimeModel,
    PipelineConfig,
    SmoothingConfig,
    StaticDetector,
    TorchRuntimeModel,
    build_detector,
    load_runtime,
    run_on_image,
)


def test_build_detector_specs():
    det = build_detector("static:10,20,110,120,left;200,20,300,120")
    assert isinstance(det, StaticDetector)
    hands = det.detect(np.zeros((240, 320, 3), np.uint8))
    assert [h.handedness for h in hands] == ["left", "right"]
    assert np.allclose(hands[0].box, [10, 20, 110, 120])
    for bad in ("static:1,2,3", "static:1,2,3,4,up", "static:5,5,1,1", "static:0,0,nan,4", "yolo", ""):
        with pytest.raises(HandmeshError):
            build_detector(bad)
    full = build_detector("mediapipe-full", max_hands=5)
    assert full.max_hands == 5 and full.kwargs["model_complexity"] == 1
    assert build_detector("mediapipe").kwargs["model_complexity"] == 0


def test_load_runtime_choices(model_file, tmp_path, monkeypatch):
    """A checkpoint runs with torch when asked, else (no GPU) as ONNX Runtime from a temp file that is
    removed again; an .onnx file always runs with ONNX Runtime; both give the same meshes."""
    import tempfile

    import torch

    from handmesh.export import export_onnx
    from handmesh.models import load_model

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the temporary export goes
    as_torch = load_runtime(model_file, "torch")
    assert isinstance(as_torch, TorchRuntimeModel) and "torch" in as_torch.name
    auto = load_runtime(model_file)
    assert isinstance(auto, OnnxRuntimeModel) and "model.pt, ONNX Runtime" in auto.name
    assert list(tmp_path.iterdir()) == [], "the temporary ONNX export is removed once loaded"
    crops = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    assert np.abs(auto(crops)["vertices"] - as_torch(crops)["vertices"]).max() < 1e-3
    onnx = export_onnx(load_model(model_file), tmp_path / "m.onnx", verify=False)
    assert isinstance(load_runtime(onnx, "auto"), OnnxRuntimeModel)
    with pytest.raises(HandmeshError, match="ONNX Runtime only"):
        load_runtime(onnx, "torch")
    with pytest.raises(HandmeshError, match="unknown runtime"):
        load_runtime(model_file, "tensorrt")
    with pytest.raises(HandmeshError, match="not found"):
        load_runtime(tmp_path / "absent.pt")


class ByImage:
    """A perfect detector for known images: the detections recorded for each image's pixels."""

    def __init__(self, frames, detections):
        self.table = {f.tobytes(): dets for f, dets in zip(frames, detections, strict=True)}

    def detect(self, frame, static=False):
        return [dataclasses.replace(d) for d in self.table[np.ascontiguousarray(frame).tobytes()]]


@pytest.fixture(scope="module")
def two_images(egl):
    """Three frames of a waving right and left hand with their perfect landmarks."""
    from handmesh.pipeline.synthetic import render_hand_video

    return render_hand_video(3, size=(320, 240), hands=2, seed=1)


def test_a_still_image_gives_the_same_answer_whatever_came_before(two_images):
    """The landmark fit of a still image must not warm-start from an earlier image or
    stream frame, and must not change what the stream's next frame starts from."""
    video = two_images
    config = PipelineConfig(smoothing=SmoothingConfig(enabled=False))

    def pipeline():
        detector = ByImage(video.frames, video.detections)
        return HandMeshPipeline(LandmarkFitEstimator(), detector, config, NoRenderer())

    a, b, c = video.frames
    fresh = run_on_image(pipeline(), a)
    assert len(fresh.result.hands) == 2 and len(fresh.meshes) == 2
    assert fresh.data["hands"][0]["source"] == "landmark-fit"

    used = pipeline()
    run_on_image(used, b)  # another user's photo first
    used.process(c, video.K, timestamp=0.0)  # and a stream frame (tracks, warm starts)
    again = run_on_image(used, a)
    for h0, h1 in zip(fresh.result.hands, again.result.hands, strict=True):
        assert np.array_equal(h0.vertices, h1.vertices) and np.array_equal(h0.joints, h1.joints)

    # the still image in between leaves the stream's warm starts as they were
    plain, mixed = pipeline(), pipeline()
    plain.process(b, video.K, timestamp=0.0)
    mixed.process(b, video.K, timestamp=0.0)
    run_on_image(mixed, a)
    s0 = plain.process(c, video.K, timestamp=0.1)
    s1 = mixed.process(c, video.K, timestamp=0.1)
    for h0, h1 in zip(s0.hands, s1.hands, strict=True):
        assert np.array_equal(h0.vertices, h1.vertices)


def test_run_on_video_writes_the_overlay_and_limits_frames(tmp_path):
    from handmesh.pipeline import ModelEstimator, run_on_video
    from handmesh.pipeline.media import VideoWriter, iter_video

    with VideoWriter(tmp_path / "in.webm", 10, (96, 64)) as w:
        for i in range(6):
            frame = np.full((64, 96, 3), 40, np.uint8)
            frame[0, 0, 0] = i
            w.write(frame)
    det = StaticDetector([HandDetection(box=np.array([20.0, 10, 60, 50]))])
    pipe = HandMeshPipeline(ModelEstimator(FakeRuntime()), det, PipelineConfig(), NoRenderer())
    calls = []
    video = run_on_video(
        pipe,
        tmp_path / "in.webm",
        tmp_path / "out.webm",
        max_seconds=0.4,
        progress=lambda *a: calls.append(a),
    )
    assert len(video.frames) == 4 and video.truncated and video.total_frames == 6
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [f["frame"] for f in video.frames] == [0, 1, 2, 3]
    assert all(len(f["hands"]) == 1 and "K" not in f for f in video.frames)
    assert len(list(iter_video(tmp_path / "out.webm"))) == 4
    data = video.to_dict()
    assert data["overlay"] == "out.webm" and data["model"] == pipe.model_name and len(data["K"]) == 3


def test_each_client_has_its_own_stream_state():
    """Two browser sessions never share tracks or smoothing; a job's pipeline is kept per session."""
    from handmesh.pipeline import ModelEstimator
    from handmesh.pipeline.sessions import ClientSession, SessionPool

    runtime = FakeRuntime()

    def make_pipeline(source):
        det = StaticDetector([HandDetection(box=np.array([20.0, 20, 80, 80]))])
        return HandMeshPipeline(ModelEstimator(runtime), det, PipelineConfig(), NoRenderer())

    pool = SessionPool(lambda: ClientSession(make_pipeline), max_sessions=2)
    alice, bob = pool.get("alice"), pool.get("bob")
    assert alice is not bob and pool.get("alice") is alice
    pa = alice.pipeline("src", "live", max_hands=1)
    assert alice.pipeline("src", "live") is pa and alice.pipeline("src", "video") is not pa
    assert bob.pipeline("src", "live") is not pa and pa.config.max_hands == 1
    for f in numbered_frames(4):
        result, fps, timings = alice.live(pa, f)
    assert pa.tracker.live_ids and not bob.pipeline("src", "live").tracker.live_ids
    assert result.hands and fps > 0 and "total" in timings
    with pytest.raises(HandmeshError):
        alice.pipeline("src", "batch")

    pool.get("carol")  # a third client: the least recently used one (bob) is closed and forgotten
    assert len(pool) == 2 and pool.get("alice") is alice
    assert pool.get("bob") is not bob
    pool.drop("alice")
    assert alice.feed._stream is None  # its threads are stopped
    pool.idle_s = 0.0
    first = pool.get("dave")
    assert len(pool) == 1 and pool.get("dave") is first  # idle sessions are closed on the next visit
    pool.close()
    assert len(pool) == 0


def test_page_settings_reach_the_pipeline_only_when_they_change(monkeypatch):
    """The page sends its settings with every webcam frame; applying them waits for the frame in flight."""
    from handmesh.pipeline import ModelEstimator
    from handmesh.pipeline.sessions import ClientSession

    applied = []
    real = HandMeshPipeline.update_config
    monkeypatch.setattr(
        HandMeshPipeline, "update_config", lambda self, **kw: applied.append(kw) or real(self, **kw)
    )
    session = ClientSession(
        lambda source: HandMeshPipeline(ModelEstimator(FakeRuntime()), StaticDetector([]), None, NoRenderer())
    )
    for _ in range(3):
        pipe = session.pipeline("src", "live", max_hands=1, skeleton=True)
    assert applied == [{"max_hands": 1, "skeleton": True}] and pipe.config.skeleton
    session.pipeline("src", "video", max_hands=1, skeleton=True)  # another pipeline: its own settings
    session.pipeline("src", "live", max_hands=1, skeleton=False)
    assert len(applied) == 3 and not pipe.config.skeleton
    for _ in range(2):  # refused settings are not remembered as applied: refused again
        with pytest.raises(HandmeshError):
            session.pipeline("src", "live", max_hands=0, skeleton=False)
    assert pipe.config.max_hands == 1
