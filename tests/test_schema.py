"""One output schema whatever the mesh source, and its parameters pose the named hand model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handmesh.geometry_np import project_points_np
from handmesh.hand_model import load_hand_model, mirror_vertices
from handmesh.hand_model.prior import named_pose
from handmesh.pipeline import HandDetection, SourceConfig, StaticDetector, build_pipeline, run_on_image
from handmesh.pipeline.crop import default_intrinsics
from handmesh.pipeline.schema import SCHEMA

W, H = 320, 240
HAND_KEYS = {
    "handedness",
    "side_confidence",
    "body_side",
    "score",
    "plausibility",
    "implausible",
    "track_id",
    "source",
    "hand_model",
    "params",
    "box",
    "crop",
    "fit_error_m",
    "joints3d",
    "joints2d",
}
PARAM_SIZES = {"global_orient": 3, "hand_pose": 45, "betas": 10, "transl": 3}


class FrameRenderer:
    """No GL: the overlay is the frame itself (the schema does not depend on the drawing)."""

    def overlay(self, frame, meshes, K, opacity, **kwargs):
        return frame


def _detections(K: np.ndarray) -> list[HandDetection]:
    """A right hand and a left hand (its mirror image) 0.5 m away, with perfect landmarks."""
    hand = load_hand_model(side="right")
    pose = torch.as_tensor(named_pose("relaxed"), dtype=torch.float32)[None] - hand.hands_mean[None]
    with torch.no_grad():
        joints = hand(hand_pose=pose).joints[0].double().numpy()
    dets = []
    for side, x in (("right", -0.08), ("left", 0.08)):
        j = mirror_vertices(joints) if side == "left" else joints
        j = j - j.mean(0) + [x, 0.0, 0.5]
        uv = project_points_np(j, K)
        box = np.r_[uv.min(0) - 8, uv.max(0) + 8]
        dets.append(HandDetection(box=box, handedness=side, keypoints2d=uv, keypoints3d=j - j[0]))
    return dets


@pytest.mark.parametrize("mode", ["model", "landmark-fit"])
def test_both_mesh_sources_give_one_schema(mode, model_file):
    K = default_intrinsics(W, H)
    pipe = build_pipeline(
        SourceConfig(checkpoint=str(model_file) if mode == "model" else None, runtime="torch"),
        mode=mode,
        detector=StaticDetector(_detections(K)),
        renderer=FrameRenderer(),
    )
    out = run_on_image(pipe, np.full((H, W, 3), 90, np.uint8))
    assert out.data["schema"] == SCHEMA and len(out.data["hands"]) == 2
    for hand, d in zip(out.result.hands, out.data["hands"], strict=True):
        assert set(d) == HAND_KEYS, mode
        assert d["source"] == mode and d["hand_model"] == {"kind": "standin", "side": d["handedness"]}
        assert {k: len(v) for k, v in d["params"].items()} == PARAM_SIZES
        assert set(d["crop"]) == {"box", "mirrored", "cam"}
        assert d["crop"]["mirrored"] == (d["handedness"] == "left")
        assert 0.0 <= d["plausibility"] <= 1.0
        # the parameters pose the named hand model (its own side) into the reported mesh, for both sources
        params = hand.model_params()
        np.testing.assert_allclose(d["params"]["hand_pose"], params["hand_pose"], atol=1e-6)
        model = load_hand_model(side=d["handedness"])
        with torch.no_grad():
            posed = model(**{k: torch.tensor(v[None], dtype=torch.float32) for k, v in params.items()})
        np.testing.assert_allclose(posed.vertices[0].numpy(), hand.vertices, atol=2e-4)
    sides = sorted(d["handedness"] for d in out.data["hands"])
    assert sides == ["left", "right"]
