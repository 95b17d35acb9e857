"""Handedness from the fit of both sides, and plausibility checks that catch impossible hands."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def _posed_hand(pose_name: str, side: str, depth: float = 0.45, scale: float = 1.0):
    """Camera-space joints (21,3) of the hand model in a named pose facing the camera, and the camera K."""
    from handmesh.data.synth import canonical_orientation
    from handmesh.fit import default_hand_model
    from handmesh.geometry_np import matrix_to_axis_angle_np
    from handmesh.hand_model.prior import named_pose
    from handmesh.pipeline.crop import default_intrinsics

    hand = default_hand_model()
    orient = matrix_to_axis_angle_np(canonical_orientation(hand))
    pose = np.asarray(named_pose(pose_name), np.float64) - hand.hands_mean.double().numpy()
    with torch.no_grad():
        out = hand(
            global_orient=torch.as_tensor(orient, dtype=torch.float32)[None],
            hand_pose=torch.as_tensor(pose, dtype=torch.float32)[None],
        )
    j = out.joints[0].double().numpy()
    j = (j - j.mean(0)) * scale
    if side == "left":
        j[:, 0] *= -1.0
    j = j + [0.0, 0.0, depth]
    return j, default_intrinsics(640, 480), pose


def _detection(joints: np.ndarray, K: np.ndarray, label: str):
    from handmesh.geometry_np import project_points_np
    from handmesh.pipeline.detector import HandDetection

    uv = project_points_np(joints, K)
    box = np.r_[uv.min(0), uv.max(0)]
    return HandDetection(
        box=box, handedness=label, score=0.9, keypoints2d=uv, keypoints3d=joints - joints.mean(0)
    )


@pytest.mark.parametrize("pose_name", ["relaxed", "fist"])
def test_fit_of_both_sides_overrules_a_wrong_detector_label(pose_name):
    """Clean landmarks of a curled right and left hand: the fit decides each side, whatever the label says."""
    from handmesh.pipeline.handedness import decide_sides

    right, K, _ = _posed_hand(pose_name, "right")
    left, _, _ = _posed_hand(pose_name, "left")
    # the detector's labels are swapped on purpose
    decisions = decide_sides([_detection(right, K, "left"), _detection(left, K, "right")], K)
    assert [d.side for d in decisions] == ["right", "left"]
    assert all(d.margin > 0.15 for d in decisions)
    assert [d.detector_side for d in decisions] == ["left", "right"]


def test_side_too_close_to_call_is_uncertain():
    """Landmarks symmetric about a plane through the camera axis fit both sides alike: no side decided."""
    from handmesh.pipeline.handedness import decide_sides

    hand, K, _ = _posed_hand("relaxed", "right")
    hand[:, 0] = 0.0  # mirroring x leaves these landmarks unchanged
    decision = decide_sides([_detection(hand, K, "right")], K)[0]
    assert decision.side is None and not decision.certain
    assert decision.margin < 0.15
    assert decision.fit_side in ("left", "right")


def test_plausible_hand_passes_and_impossible_ones_do_not():
    from handmesh.pipeline.plausibility import check_hand, flat_pose_of

    joints, K, pose = _posed_hand("relaxed", "right")
    kp = _detection(joints, K, "right")
    from handmesh.fit import default_hand_model

    mean = default_hand_model().hands_mean.double().numpy()
    ok = check_hand(joints, K, kp.keypoints2d, kp.box, flat_pose_of({"hand_pose": pose}, mean))
    assert ok.factor > 0.9 and ok.reasons == []

    # a hand 5.5 cm from the lens, as large as the frame: a fist like this once scored 0.92
    near, _, _ = _posed_hand("fist", "right", depth=0.055)
    assert "depth" in check_hand(near, K).reasons
    assert check_hand(near, K).factor < 0.3
    tiny, _, _ = _posed_hand("relaxed", "right", scale=0.3)
    assert "size" in check_hand(tiny, K).reasons
    # the mesh drawn 40 % of the box away from where the detector saw the hand
    shifted = check_hand(joints + [0.08, 0.0, 0.0], K, kp.keypoints2d, kp.box)
    assert "reprojection" in shifted.reasons
    bent = flat_pose_of({"hand_pose": pose + 1.2}, mean)
    assert "joint_limits" in check_hand(joints, K, flat_pose=bent).reasons


def test_regressor_matrices_become_the_fits_axis_angle():
    """The regressor's (15,3,3) matrices reach the plausibility check as the axis-angle the fit gives."""
    from handmesh.geometry_np import axis_angle_to_matrix_np
    from handmesh.pipeline.detector import HandDetection
    from handmesh.pipeline.estimator import ModelEstimator

    rng = np.random.default_rng(0)
    aa = rng.normal(0, 0.3, 45)

    class Runtime:
        input_size, name, faces = 32, "matrices", np.zeros((1, 3), np.int64)

        def __call__(self, crops):
            return {
                "vertices": np.zeros((len(crops), 778, 3), np.float32),
                "joints": np.zeros((len(crops), 21, 3), np.float32),
                "cam": np.array([[5.0, 0.0, 0.0]], np.float32),
                "global_orient": np.eye(3)[None],
                "hand_pose": axis_angle_to_matrix_np(aa.reshape(15, 3))[None],
            }

    det = HandDetection(box=np.array([10.0, 10.0, 40.0, 40.0]))
    (hand,) = ModelEstimator(Runtime()).estimate(np.zeros((64, 64, 3), np.uint8), [det], np.eye(3), {})
    np.testing.assert_allclose(hand.params["hand_pose"], aa, atol=1e-6)
    np.testing.assert_allclose(hand.params["global_orient"], np.zeros(3), atol=1e-9)


class _FixedMeshes:
    """A mesh source giving the detections these right hands' joints in turn, each with the same score."""

    name, source = "fixed meshes", "model"

    def __init__(self, *joints: np.ndarray, score: float = 0.9):
        self.joints, self.score = joints, score

    def estimate(self, frame, detections, K, timings, static=False):
        from handmesh.pipeline.estimator import HandEstimate

        return [
            HandEstimate(
                vertices=np.zeros((778, 3), np.float32),
                joints=j.astype(np.float32),
                faces=np.zeros((0, 3), np.int64),
                handedness="right",
                score=self.score,
                track_id=d.track_id,
                box=np.asarray(d.box, float),
            )
            for d, j in zip(detections, self.joints, strict=False)
        ]


def test_pipeline_flags_or_drops_an_impossible_hand():
    """A hand 5.5 cm from the lens no longer keeps the detector's score of 0.92."""
    from handmesh.pipeline.detector import StaticDetector
    from handmesh.pipeline.pipeline import HandMeshPipeline, PipelineConfig

    joints, K, _ = _posed_hand("relaxed", "right")
    near, _, _ = _posed_hand("fist", "right", depth=0.055)
    fixed = _FixedMeshes(joints, near, score=0.92)
    boxes = [((100, 100, 300, 300), "right"), ((300, 100, 500, 300), "right")]
    frame = np.zeros((480, 640, 3), np.uint8)
    flagging = HandMeshPipeline(fixed, StaticDetector(boxes), PipelineConfig(), renderer=object())
    plausible, impossible = flagging.estimate(flagging.detect(frame, K, static=True)).hands
    assert 0.9 * 0.92 < plausible.score <= 0.92 and "implausible" not in plausible.params
    assert impossible.score < 0.1 and "depth" in impossible.params["implausible"].tolist()
    strict = PipelineConfig(min_plausibility=0.3)
    honest = HandMeshPipeline(fixed, StaticDetector(boxes), strict, renderer=object())
    hands = honest.estimate(honest.detect(frame, K, static=True)).hands
    assert len(hands) == 1 and np.allclose(hands[0].joints, joints, atol=1e-6)
    trusting = HandMeshPipeline(
        fixed, StaticDetector(boxes), PipelineConfig(plausibility=False), renderer=object()
    )
    assert [h.score for h in trusting.estimate(trusting.detect(frame, K, static=True)).hands] == [0.92, 0.92]


def test_implausible_hand_is_drawn_grey_with_a_question_mark(monkeypatch):
    """A rejected hand is drawn grey and tagged "R?"; a good one keeps its colour and "R"."""
    from handmesh.pipeline import pipeline as pipeline_module
    from handmesh.pipeline.detector import StaticDetector
    from handmesh.pipeline.pipeline import HandMeshPipeline, PipelineConfig
    from handmesh.pipeline.schema import hands_summary, result_to_dict
    from handmesh.render.overlay import IMPLAUSIBLE_COLOR, RIGHT_COLOR

    joints, K, _ = _posed_hand("relaxed", "right")
    near, _, _ = _posed_hand("fist", "right", depth=0.055)

    class Recorder:
        def overlay(self, frame, meshes, K, opacity, **kwargs):
            self.colors = [tuple(c) for _, _, c in meshes]
            return frame.copy()

    tags = []
    monkeypatch.setattr(pipeline_module, "draw_side_tag", lambda img, text, box, color: tags.append(text))
    boxes = [((100, 100, 300, 300), "right"), ((300, 100, 500, 300), "right")]
    renderer = Recorder()
    pipe = HandMeshPipeline(
        _FixedMeshes(joints, near, score=0.9), StaticDetector(boxes), PipelineConfig(), renderer=renderer
    )
    result = pipe.process(np.zeros((480, 640, 3), np.uint8), K, static=True)
    assert [h.implausible for h in result.hands] == [False, True]
    assert renderer.colors == [tuple(RIGHT_COLOR), tuple(IMPLAUSIBLE_COLOR)]
    assert tags == ["R", "R?"]
    data = result_to_dict(result)
    assert hands_summary(data["hands"]) == "2 hand(s), 1 implausible"
    assert hands_summary(data["hands"][:1]) == "1 hand(s)"
