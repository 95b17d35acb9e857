"""bench/keypoint_gap.py: a 2D error taken apart (placement, scale, rotation, pose) and a hand's facing."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import bench_script


@pytest.fixture(scope="module")
def gap():
    return bench_script("keypoint_gap")


def right_palm() -> np.ndarray:
    """21 FreiHAND-order keypoints of a right hand, palm to the camera, fingers up (image y down):
    thumb on the image's right, the little finger on its left."""
    pts = np.zeros((21, 2))
    pts[0] = (50, 100)
    for f, x in enumerate((80, 65, 50, 35, 20)):  # thumb, index, middle, ring, little finger
        for k in range(4):
            pts[1 + 4 * f + k] = (x + (10 if f == 0 else 0), 70 - 12 * k - (0 if f == 0 else 10))
    return pts


def test_a_similarity_of_the_labels_is_all_placement_scale_and_rotation(gap):
    gt, conf = right_palm(), np.ones(21)
    angle = np.radians(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = gt.mean(0)
    pred = (gt - centre) @ rot.T * 1.5 + centre + (8, -6)
    parts = gap.decompose(pred, gt, conf)
    size = float(max(np.ptp(gt[:, 0]), np.ptp(gt[:, 1])))
    assert parts["offset"] == pytest.approx(10 / size)
    assert parts["scale"] == pytest.approx(1.5)
    assert abs(parts["rotation_deg"]) == pytest.approx(30)
    assert parts["aligned"] == pytest.approx(0, abs=1e-9)
    assert parts["centred"] > 0.05
    # a changed pose is left over after the similarity
    bent = pred.copy()
    bent[[8, 12, 16, 20]] += (0, 20)
    assert gap.decompose(bent, gt, conf)["aligned"] > 0


def test_facing_from_the_labels(gap):
    palm = right_palm()
    assert gap.facing(palm, np.ones(21)) == "palm"
    back = palm.copy()
    back[:, 0] = 100 - back[:, 0]  # the mirror image: a right hand's back has a left hand's palm outline
    assert gap.facing(back, np.ones(21)) == "back"
    edge = palm.copy()
    edge[:, 0] = 50  # every point on one line: seen edge-on
    assert gap.facing(edge, np.ones(21)) == "side"
    unlabelled = np.ones(21)
    unlabelled[17] = 0
    assert gap.facing(palm, unlabelled) is None


def test_by_facing_counts_the_hands_read_better_mirrored(gap):
    medians = {"mesh": [0.3, 0.2, 0.4, None], "mirrored": [0.1, 0.25, 0.2, None]}
    out = gap.by_facing(["palm", "back", "palm", None], medians)
    assert out["palm"] == {"hands": 2, "mesh": 0.35, "mirrored": 0.15, "better_mirrored": 2}
    assert out["back"]["better_mirrored"] == 0
    assert "side" not in out
