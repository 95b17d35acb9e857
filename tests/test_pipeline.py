"""The frame-to-meshes pipeline with injected boxes: crops, mirroring, batching, smoothing, tracking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import RUNTIME_SIZE, FakeRuntime, NoRenderer, numbered_frames

from handmesh.errors import HandmeshError
from handmesh.pipeline import (
    HandDetection,
    HandMeshPipeline,
    ModelEstimator,
    PipelineConfig,
    StaticDetector,
    crop_hand,
    default_intrinsics,
    square_box,
)
from handmesh.pipeline.smoothing import OneEuroFilter, SmoothingConfig, TrackSmoother
from handmesh.pipeline.tracking import IoUTracker

S = RUNTIME_SIZE  # crop size of the fake runtime


def make_pipeline(boxes, config=None, runtime=None, renderer=None):
    rt = runtime or FakeRuntime()
    det = StaticDetector([HandDetection(box=np.array(b[0], float), handedness=b[1]) for b in boxes])
    pipe = HandMeshPipeline(ModelEstimator(rt), det, config or PipelineConfig(), renderer or NoRenderer())
    return pipe, rt


def _project(points, K):
    p = points @ K.T
    return p[:, :2] / p[:, 2:3]


def test_default_intrinsics_and_square_box():
    K = default_intrinsics(640, 480, 90.0)
    assert np.isclose(K[0, 0], 320.0) and np.isclose(K[0, 2], 319.5) and np.isclose(K[1, 2], 239.5)
    b = square_box(np.array([10, 20, 30, 60]), scale=1.5)
    assert np.allclose(b, [-10, 10, 50, 70])
    assert np.allclose(square_box(np.array([5, 5, 5, 5]), min_size=16), [-3, -3, 13, 13])


@pytest.mark.parametrize("mirror", [False, True])
def test_crop_K_consistency(mirror):
    """A 3D point lands at the same image content through the frame K and the crop K."""
    rng = np.random.default_rng(0)
    K = np.array([[600.0, 0, 300.0], [0, 620.0, 250.0], [0, 0, 1]])
    point = np.array([0.05, -0.02, 0.6])
    u, v = _project(point[None], K)[0]
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[int(round(v)) - 2 : int(round(v)) + 3, int(round(u)) - 2 : int(round(u)) + 3] = 255
    box = np.array([u - 70.3, v - 50.1, u + 59.7, v + 79.9])  # off-centre square, 130 px
    crop = crop_hand(frame, box, K, 96, mirror=mirror)
    uc, vc = _project(point[None], crop.K)[0]
    if mirror:
        uc = 96 - 1 - uc  # the flipped image of a point at uc
    ys, xs = np.nonzero(crop.image[..., 0] > 100)
    assert abs(xs.mean() - uc) < 0.6 and abs(ys.mean() - vc) < 0.6
    # crop K is the frame K seen through the crop's pixel map
    sx = 96 / 130.0
    assert np.isclose(crop.K[0, 0], K[0, 0] * sx) and np.isclose(crop.K[1, 1], K[1, 1] * sx)
    del rng


def test_crop_to_camera_places_mesh_over_box():
    pipe, rt = make_pipeline([([200, 150, 320, 270], "right")])
    frame = np.zeros((480, 640, 3), np.uint8)
    res = pipe.process(frame, static=True)
    (hand,) = res.hands
    uv = _project(hand.vertices.astype(np.float64), res.K)
    centre = uv.mean(0)
    assert np.allclose(centre, [260, 210], atol=3.0)
    # the blob is 0.08 m wide and the weak camera puts 0.2 m across the 180 px crop: about 72 px
    assert 55 < np.ptp(uv[:, 0]) < 85
    assert hand.vertices.shape == (rt.vertices.shape[0], 3) and hand.joints.shape == (21, 3)
    assert hand.params["transl"].shape == (3,) and hand.source == "model"
    assert all(np.isfinite(v).all() for v in (hand.vertices, hand.joints))


def test_left_hand_is_mirrored_right_hand():
    """A left hand in a flipped frame gives exactly the mirror image of the right hand's mesh."""
    W, H = 640, 480
    K = default_intrinsics(W, H, 60.0)  # principal point at the image centre: x -> -x maps pixels u -> W-1-u
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    det = np.array([180.0, 140.0, 300.0, 250.0])
    pipe_r, rt_r = make_pipeline([(det, "right")])
    right = pipe_r.process(frame, K, static=True).hands[0]
    # mirror the box so the crop of the flipped frame is exactly the flipped crop (crop_affine maps the
    # box edges to 0..S, a flip maps u -> S-1-u: a shift of one crop pixel in frame units)
    delta = 1.5 * max(det[2] - det[0], det[3] - det[1]) / S
    det_m = np.array([W - 1 - det[2] + delta, det[1], W - 1 - det[0] + delta, det[3]])
    pipe_l, rt_l = make_pipeline([(det_m, "left")])
    left = pipe_l.process(np.ascontiguousarray(frame[:, ::-1]), K, static=True).hands[0]
    assert np.array_equal(rt_l.batches[0], rt_r.batches[0]), "the network must see the same right hand"
    assert np.allclose(left.vertices, right.vertices * np.array([-1, 1, 1]), atol=1e-5)
    assert np.allclose(left.joints, right.joints * np.array([-1, 1, 1]), atol=1e-5)
    assert np.array_equal(left.faces, right.faces[:, ::-1])
    assert left.handedness == "left" and bool(left.params["mirrored"])


def test_two_hands_one_batch_and_no_hand():
    pipe, rt = make_pipeline([([50, 50, 150, 150], "left"), ([400, 100, 520, 220], "right")])
    frame = np.zeros((480, 640, 3), np.uint8)
    res = pipe.process(frame)
    assert len(res.hands) == 2 and [len(b) for b in rt.batches] == [2]
    assert {h.handedness for h in res.hands} == {"left", "right"}
    assert set(res.timings) >= {"detect", "crop", "model", "hand_model", "smooth", "render", "composite"}
    empty, rt0 = make_pipeline([])
    res0 = empty.process(frame)
    assert res0.frame is frame and res0.hands == [] and rt0.batches == []


def test_max_hands_keeps_best_scores():
    det = StaticDetector(
        [
            HandDetection(box=np.array([0, 0, 50, 50.0]), score=0.2),
            HandDetection(box=np.array([100, 0, 150, 50.0]), score=0.9),
        ]
    )
    pipe = HandMeshPipeline(ModelEstimator(FakeRuntime()), det, PipelineConfig(max_hands=1), NoRenderer())
    res = pipe.process(np.zeros((100, 200, 3), np.uint8))
    assert len(res.hands) == 1 and res.hands[0].score == 0.9


@pytest.mark.parametrize(
    "shape,box", [((32, 32, 3), [4, 4, 28, 28]), ((3000, 4000, 3), [1500, 1000, 2300, 1900])]
)
def test_tiny_and_huge_frames(shape, box):
    pipe, _ = make_pipeline([(box, "right")])
    frame = np.full(shape, 90, np.uint8)
    res = pipe.process(frame)
    assert res.frame.shape == shape and len(res.hands) == 1
    assert np.isfinite(res.hands[0].vertices).all()


def test_grey_and_float_frames_are_accepted():
    pipe, _ = make_pipeline([([4, 4, 28, 28], "right")])
    assert pipe.process(np.zeros((32, 32), np.uint8)).frame.shape == (32, 32, 3)
    assert pipe.process(np.zeros((32, 32, 4), np.float32)).frame.shape == (32, 32, 3)
    with pytest.raises(HandmeshError):
        pipe.process(np.zeros((4, 4, 5), np.uint8))


def test_one_euro_reduces_jitter_and_follows_a_step():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=20.0)
    fps = 30.0
    truth = np.array([[0.1, -0.05, 0.5]])
    raw, out = [], []
    for i in range(90):
        x = truth + rng.normal(0, 0.003, truth.shape)
        raw.append(x)
        out.append(f(x, i / fps))
    raw, out = np.array(raw[30:]), np.array(out[30:])
    assert np.std(out - truth) < 0.4 * np.std(raw - truth)
    # a 10 cm step: the filter gets there within a third of a second
    for i in range(90, 100):
        y = f(truth + 0.1, i / fps)
    assert np.abs(y - (truth + 0.1)).max() < 0.01


def test_track_smoother_and_disable():
    sm = TrackSmoother(SmoothingConfig(enabled=True))
    a = sm.smooth(0, {"j": np.zeros((21, 3))}, 0.0)["j"]
    b = sm.smooth(0, {"j": np.ones((21, 3)) * 0.01}, 1 / 30)["j"]
    assert a.sum() == 0 and 0 < b.mean() < 0.01
    sm.keep([])
    c = sm.smooth(0, {"j": np.ones((21, 3))}, 2 / 30)["j"]
    assert np.allclose(c, 1.0)  # a forgotten track restarts from the sample
    off = TrackSmoother(SmoothingConfig(enabled=False))
    x = {"j": np.ones(3)}
    assert off.smooth(0, x, 0.0) is x


def test_pipeline_smoothing_on_video_off_for_images():
    pipe, _ = make_pipeline([([200, 150, 320, 270], "right")])
    frame = np.zeros((480, 640, 3), np.uint8)
    K = default_intrinsics(640, 480)
    first = pipe.process(frame, K, timestamp=0.0).hands[0].vertices
    pipe.detector.detections[0].box = np.array([230.0, 150, 350, 270])  # the hand jumps 30 px
    moved = pipe.process(frame, K, timestamp=1 / 30).hands[0].vertices
    raw = pipe.process(frame, K, static=True).hands[0].vertices
    step = raw.mean(0) - first.mean(0)
    done = moved.mean(0) - first.mean(0)
    assert 0.0 < done[0] < step[0]  # smoothed: partway there
    for i in range(2, 30):  # a steady hand: the filter settles on it within a second
        settled = pipe.process(frame, K, timestamp=i / 30).hands[0].vertices
    assert np.allclose(settled.mean(0), raw.mean(0), atol=1e-4)


def test_tracker_keeps_ids():
    tr = IoUTracker()
    a = HandDetection(box=np.array([0, 0, 100, 100.0]), handedness="left")
    b = HandDetection(box=np.array([300, 0, 400, 100.0]), handedness="right")
    tr.update([a, b])
    ids = (a.track_id, b.track_id)
    a2 = HandDetection(box=np.array([10, 5, 110, 105.0]), handedness="left")
    b2 = HandDetection(box=np.array([290, 0, 390, 100.0]), handedness="right")
    tr.update([b2, a2])
    assert (a2.track_id, b2.track_id) == ids
    c = HandDetection(box=np.array([600, 300, 650, 350.0]))
    tr.update([c])
    assert c.track_id not in ids


def test_pipeline_renders_overlay():
    from conftest import require

    try:
        from handmesh.render import MeshRenderer

        renderer = MeshRenderer(64, 64)
    except Exception as exc:
        renderer = None
        require(False, f"EGL unavailable: {exc}")
    pipe, _ = make_pipeline(
        [([200, 150, 320, 270], "right")], PipelineConfig(skeleton=True, opacity=1.0), renderer=renderer
    )
    frame = np.full((480, 640, 3), 40, np.uint8)
    res = pipe.process(frame, static=True)
    diff = np.abs(res.frame.astype(int) - frame).sum(-1) > 30
    ys, xs = np.nonzero(diff)
    assert diff.sum() > 500 and abs(xs.mean() - 260) < 15 and abs(ys.mean() - 210) < 15
    assert res.timings["render"] > 0 and (frame == 40).all()


def test_real_model_left_right_consistent():
    """A small randomly initialised fastvit_t8 through the torch runtime: finite meshes, mirrored left hand."""
    from handmesh.models import build_model
    from handmesh.pipeline import TorchRuntimeModel

    torch.manual_seed(0)
    model = build_model("fastvit_t8", img_size=128)
    rt = TorchRuntimeModel(model, device="cpu")
    W, H = 320, 240
    K = default_intrinsics(W, H)
    frame = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    det = np.array([100.0, 60, 180, 150])
    pipe_r, _ = make_pipeline([(det, "right")], runtime=rt)
    right = pipe_r.process(frame, K, static=True).hands[0]
    delta = 1.5 * 90 / rt.input_size
    pipe_l, _ = make_pipeline(
        [([W - 1 - det[2] + delta, 60, W - 1 - det[0] + delta, 150], "left")], runtime=rt
    )
    left = pipe_l.process(np.ascontiguousarray(frame[:, ::-1]), K, static=True).hands[0]
    assert right.vertices.shape == (778, 3) and np.isfinite(right.vertices).all()
    assert np.allclose(left.vertices, right.vertices * np.array([-1, 1, 1]), atol=2e-3)


def test_onnx_runtime_matches_torch(tmp_path):
    """The exported deploy model through ONNX Runtime gives the torch runtime's meshes."""
    from handmesh import models
    from handmesh.export import export_onnx
    from handmesh.pipeline import OnnxRuntimeModel, TorchRuntimeModel

    torch.manual_seed(0)
    model = models.build_model("fastvit_t8", img_size=128)
    ort_rt = OnnxRuntimeModel(export_onnx(model, tmp_path / "m.onnx"), threads=2)
    torch_rt = TorchRuntimeModel(model, device="cpu")
    assert ort_rt.input_size == 128 and np.array_equal(ort_rt.faces, torch_rt.faces)
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = [([40, 40, 140, 150], "left"), ([180, 60, 290, 170], "right")]
    a = make_pipeline(boxes, runtime=ort_rt)[0].process(frame, static=True).hands
    b = make_pipeline(boxes, runtime=torch_rt)[0].process(frame, static=True).hands
    for ha, hb in zip(a, b, strict=True):
        assert np.abs(ha.vertices - hb.vertices).max() < 1e-4


def test_onnx_runtime_missing_sidecar(tmp_path):
    from handmesh.errors import HandmeshError
    from handmesh.pipeline import OnnxRuntimeModel

    (tmp_path / "x.onnx").write_bytes(b"not onnx")
    with pytest.raises(HandmeshError):
        OnnxRuntimeModel(tmp_path / "x.onnx")
    with pytest.raises(HandmeshError):
        OnnxRuntimeModel(tmp_path / "absent.onnx")


def test_bench_pipeline_smoke(tmp_path):
    """`handmesh bench pipeline` with a tiny model, few frames and scripted boxes writes its JSON."""
    from handmesh.cli import main

    out = tmp_path / "pipeline.json"
    argv = [
        "bench",
        "pipeline",
        "--frames",
        "3",
        "--warmup",
        "1",
        "--unique-frames",
        "2",
        "--size",
        "160x120",
    ]
    # pipelined only (the sequential mode runs in the next test): four scenarios keep the suite short
    argv += ["--img-size", "64", "--detector", "scripted", "--hands", "1,2", "--modes", "pipelined"]
    argv += ["--json", str(out)]
    assert main(argv) == 0
    import json

    data = json.loads(out.read_text())
    sources = ("model", "landmark-fit")
    assert set(data["scenarios"]) == {f"{s}/{h}_pipelined" for s in sources for h in ("1_hand", "2_hands")}
    for source in sources:
        assert data["fps"][source] == data["scenarios"][f"{source}/1_hand_pipelined"]["fps"] > 0
        assert data["scenarios"][f"{source}/2_hands_pipelined"]["mean_hands_found"] == 2
        assert data["scenarios"][f"{source}/1_hand_pipelined"]["stage_ms_median"]["latency"] > 0
    assert {"detect", "model", "render", "composite"} <= set(
        data["scenarios"]["model/1_hand_pipelined"]["stage_ms_mean"]
    )
    assert data["scenarios"]["landmark-fit/1_hand_pipelined"]["stage_ms_mean"]["hand_model"] > 0
    # the CPU is recorded with every result: figures differ between machines
    assert data["machine"]["cpu"] and isinstance(data["machine"]["cpu_flags"], list)


def test_bench_pipeline_compares_variants_in_one_run(tmp_path, capsys):
    """--compare times a settings variant beside the base (PipelineConfig and FitConfig fields routed)."""
    from handmesh.cli import main

    out = tmp_path / "pipeline.json"
    argv = ["bench", "pipeline", "--frames", "3", "--warmup", "1", "--unique-frames", "2"]
    argv += ["--size", "160x120", "--detector", "scripted", "--hands", "1", "--modes", "sequential"]
    argv += ["--sources", "landmark-fit"]
    argv += ["--compare", "iters=1+max_render_size=64", "--json", str(out)]
    assert main(argv) == 0
    import json

    data = json.loads(out.read_text())
    variant = data["compare"]["iters=1+max_render_size=64"]["landmark-fit/1_hand_sequential"]
    base = data["scenarios"]["landmark-fit/1_hand_sequential"]
    assert data["fps"]["landmark-fit"] == base["fps"] > 0  # without a pipelined run, the sequential one
    assert variant["fps_ratio_to_base"] == pytest.approx(variant["fps"] / base["fps"], rel=0.01)
    out.unlink()
    assert main(argv[:-4] + ["--compare", "no_such_field=1", "--json", str(out)]) != 0
    assert "no_such_field" in capsys.readouterr().err and not out.exists()


def test_mediapipe_detector_offline_and_handedness_flips():
    """MediaPipe runs offline, gives FreiHAND-order landmarks, and mirroring the image flips the label.

    The absolute convention (MediaPipe labels as if the image were a mirrored selfie, so the detector
    swaps them) is MediaPipe's documented one; on renders of the stand-in hand its handedness guess is
    not reliable, so this only checks that a hand and its mirror image get opposite labels.
    """
    from conftest import require

    from handmesh.hand_model import load_hand_model
    from handmesh.hand_model.prior import named_pose
    from handmesh.pipeline import MediaPipeDetector

    try:
        from handmesh.render import MeshRenderer

        renderer = MeshRenderer(640, 480)
    except Exception as exc:
        renderer = None
        require(False, f"EGL unavailable: {exc}")
    det = MediaPipeDetector(max_hands=2, model_complexity=1)
    assert det.detect(np.zeros((240, 320, 3), np.uint8), static=True) == []
    hand = load_hand_model(side="right")
    pose = torch.as_tensor(named_pose("relaxed"), dtype=torch.float32)[None] - hand.hands_mean[None].float()
    K = np.array([[550.0, 0, 319.5], [0, 550.0, 239.5], [0, 0, 1]])
    bg = np.full((480, 640, 3), (90, 110, 130), np.uint8)
    checked = 0
    for orient in ([0.0, 0.0, np.pi / 2], [0.0, 0.0, -np.pi / 2], [0.0, 0.0, 0.0], [0.0, np.pi, 0.0]):
        with torch.no_grad():
            v = hand(global_orient=torch.tensor([orient]), hand_pose=pose).vertices[0].numpy()
        mesh = (v - v.mean(0) + [0, 0, 0.45], hand.faces, (0.85, 0.65, 0.52, 1))
        image = renderer.overlay(bg, [mesh], K, 1.0)
        found = det.detect(image, static=True)
        flipped = det.detect(np.ascontiguousarray(image[:, ::-1]), static=True)
        if len(found) != 1 or len(flipped) != 1:
            continue
        checked += 1
        assert found[0].handedness != flipped[0].handedness
        d = found[0]
        assert d.keypoints2d.shape == (21, 2) and d.keypoints3d.shape == (21, 3)
        assert d.box[0] < d.box[2] and np.abs(d.keypoints3d).max() < 0.2  # metres, hand-centred
        # the flipped landmarks are the mirrored ones, same joint order: the wrist lands near W - u
        assert abs(flipped[0].keypoints2d[0, 0] - (640 - d.keypoints2d[0, 0])) < 12
    renderer.close()
    if checked == 0:
        pytest.skip("MediaPipe found none of the stand-in renders in both orientations")


def test_landmark_fit_mode_through_the_pipeline():
    """Landmark-fit mesh source on a synthetic two-hand video with perfect landmarks: hands land on the truth."""
    from handmesh.pipeline import LandmarkFitEstimator
    from handmesh.pipeline.synthetic import ScriptedDetector, render_hand_video

    video = render_hand_video(3, size=(320, 240), hands=2)
    # smoothing off: three frames span a whole wave cycle, so a filter would (rightly) lag behind
    config = PipelineConfig(smoothing=SmoothingConfig(enabled=False))
    pipe = HandMeshPipeline(LandmarkFitEstimator(), ScriptedDetector(video.detections), config, NoRenderer())
    for i, frame in enumerate(video.frames):
        res = pipe.process(frame, video.K, timestamp=i / 30)
        assert len(res.hands) == 2 and res.model.startswith("landmark fit")
        for hand, truth in zip(res.hands, video.joints[i], strict=True):
            assert hand.source == "landmark-fit" and hand.vertices.shape == (778, 3)
            assert np.linalg.norm(hand.joints - truth, axis=1).mean() < 0.002  # metres
    assert {h.handedness for h in res.hands} == {"left", "right"}
    assert res.hands[0].faces is not res.hands[1].faces  # left hands get the reversed winding


class MovingDetector:
    """One hand whose box moves 7 px a frame (frame index read from the frame's first pixel)."""

    def detect(self, frame, static=False):
        i = int(frame[0, 0, 0])
        if i % 5 == 4:  # every fifth frame has no hand
            return []
        return [HandDetection(box=np.array([150.0 + 7 * i, 150, 270 + 7 * i, 270]), handedness="right")]


def test_pipelined_stream_matches_sequential_in_order():
    """Overlapping the stages changes nothing: same hands, same smoothing, same order; latency recorded."""
    from handmesh.pipeline.stream import process_stream

    K = default_intrinsics(640, 240)
    frames = numbered_frames(23)
    seq = HandMeshPipeline(ModelEstimator(FakeRuntime()), MovingDetector(), PipelineConfig(), NoRenderer())
    expected = [seq.process(f, K, timestamp=i / 30) for i, f in enumerate(frames)]
    pipe = HandMeshPipeline(ModelEstimator(FakeRuntime()), MovingDetector(), PipelineConfig(), NoRenderer())
    got = list(process_stream(pipe, [(f, K, i / 30) for i, f in enumerate(frames)]))
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert int(b.frame[0, 0, 0]) == i and len(a.hands) == len(b.hands) == (0 if i % 5 == 4 else 1)
        if a.hands:
            assert np.array_equal(a.hands[0].vertices, b.hands[0].vertices)
            assert a.hands[0].track_id == b.hands[0].track_id
        else:
            assert b.frame is frames[i]  # no hand: the frame itself, untouched
        assert b.timings["latency"] > 0


def test_pipelined_stream_reports_a_failed_frame_and_goes_on():
    from handmesh.pipeline.stream import PipelinedStream

    class FlakyRuntime(FakeRuntime):
        def __call__(self, crops):
            if len(self.batches) == 2:
                self.batches.append(crops)
                raise RuntimeError("model exploded")
            return super().__call__(crops)

    pipe = HandMeshPipeline(ModelEstimator(FlakyRuntime()), MovingDetector(), PipelineConfig(), NoRenderer())
    with PipelinedStream(pipe) as stream:
        frames = numbered_frames(4)
        for f in frames:
            stream.submit(f)
        assert stream.get(timeout=10).hands and stream.get(timeout=10).hands
        with pytest.raises(RuntimeError, match="model exploded"):
            stream.get(timeout=10)
        last = stream.get(timeout=10)
        assert int(last.frame[0, 0, 0]) == 3 and last.hands and stream.pending == 0
    with pytest.raises(RuntimeError, match="closed"):
        stream.submit(frames[0])


def test_live_feed_returns_newest_results_in_order_and_restarts_after_a_pause():
    import time

    from handmesh.pipeline.stream import LiveFeed

    pipe = HandMeshPipeline(ModelEstimator(FakeRuntime()), MovingDetector(), PipelineConfig(), NoRenderer())
    feed = LiveFeed(idle_reset_s=0.5, behind=2)
    frames = numbered_frames(12)
    shown = []
    for i, f in enumerate(frames[:8]):
        shown.append(int(feed(pipe, f).frame[0, 0, 0]))
        assert i - 3 <= shown[-1] <= i  # never ahead, at most a few frames behind
    assert shown[0] == 0 and shown == sorted(shown) and shown[-1] >= 5
    time.sleep(0.7)  # the webcam paused: a fresh stream, whose first answer is the new frame itself
    assert int(feed(pipe, frames[10]).frame[0, 0, 0]) == 10
    feed.close()


def test_mediapipe_detector_tracks_as_many_hands_as_it_sees():
    """With a limit of 2 and one hand in view the video graph tracks one hand (MediaPipe would search every
    frame otherwise); a periodic still-image search picks up a second hand; a lost one shrinks it again."""
    from types import SimpleNamespace as NS

    from handmesh.pipeline import MediaPipeDetector

    scene = {"hands": 1}
    graphs = []

    class FakeHands:
        def __init__(self, static_image_mode, max_num_hands, **kwargs):
            self.static, self.max = static_image_mode, max_num_hands
            self.calls = 0
            graphs.append(self)

        def process(self, image):
            self.calls += 1
            n = min(self.max, scene["hands"])
            pts = [NS(x=0.3 + 0.01 * j, y=0.4, z=0.0) for j in range(21)]
            return NS(
                multi_hand_landmarks=[NS(landmark=pts)] * n or None,
                multi_hand_world_landmarks=[NS(landmark=pts)] * n or None,
                multi_handedness=[NS(classification=[NS(label="Left", score=0.9)])] * n or None,
            )

        def close(self):
            pass

    det = MediaPipeDetector(max_hands=2, search_every=5, shrink_after=3)
    det._hands_cls = FakeHands
    frame = np.zeros((48, 64, 3), np.uint8)
    counts = [len(det.detect(frame)) for _ in range(12)]
    video = [g for g in graphs if not g.static]
    (still,) = [g for g in graphs if g.static]
    assert counts == [1] * 12 and [g.max for g in video] == [1] and still.calls == 2  # frames 5 and 10
    scene["hands"] = 2
    counts = [len(det.detect(frame)) for _ in range(5)]  # frames 13-17: the search at 15 finds both
    assert counts == [1, 1, 2, 2, 2] and [g.max for g in graphs if not g.static] == [1, 2]
    scene["hands"] = 1
    counts = [len(det.detect(frame)) for _ in range(5)]
    assert counts == [1] * 5 and [g.max for g in graphs if not g.static] == [1, 2, 1]
    assert len(det.detect(frame, static=True)) == 1 and still.max == 2
    plain = MediaPipeDetector(max_hands=2, search_every=0)
    plain._hands_cls = FakeHands
    plain.detect(frame)
    assert graphs[-1].max == 2 and not graphs[-1].static  # MediaPipe's own behaviour


def test_native_stderr_is_silenced_only_inside_the_block(capfd, monkeypatch):
    """What native code writes to descriptor 2 (MediaPipe's start-up lines) is dropped inside the block,
    kept after it, and kept inside it too when HANDMESH_DEBUG asks for everything."""
    import os

    from handmesh.pipeline.detector import quiet_native_stderr

    monkeypatch.delenv("HANDMESH_DEBUG", raising=False)
    with quiet_native_stderr():
        os.write(2, b"native noise\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
    monkeypatch.setenv("HANDMESH_DEBUG", "1")
    with quiet_native_stderr():
        os.write(2, b"debug noise\n")
    assert "debug noise" in capfd.readouterr().err


def test_still_images_render_at_full_resolution_streams_capped():
    """A photo's overlay is rendered at its own resolution (sharp outlines); a stream keeps
    `max_render_size` for its frame rate."""
    from handmesh.pipeline.pipeline import STILL_RENDER_SIZE

    class Sizes:
        def __init__(self):
            self.seen = []

        def overlay(self, frame, meshes, K, opacity, max_render_size=None, **kwargs):
            self.seen.append(max_render_size)
            return frame

    renderer = Sizes()
    pipe, _ = make_pipeline([([100, 80, 420, 400], "right")], renderer=renderer)
    frame = np.zeros((480, 640, 3), np.uint8)
    pipe.process(frame, static=True)
    pipe.process(frame)
    assert renderer.seen == [STILL_RENDER_SIZE, PipelineConfig().max_render_size]
    assert STILL_RENDER_SIZE >= 4 * PipelineConfig().max_render_size
