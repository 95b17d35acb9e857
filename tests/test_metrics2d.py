"""2D keypoint scores: the hand's size, PCK, its AUC and medians on hand-computed cases; misses count."""

from __future__ import annotations

import numpy as np
import pytest

from handmesh.errors import HandmeshError
from handmesh.metrics2d import MIN_SIZE_PX, hand_size, pck_auc, score_keypoints


def _hand(size: float = 100.0) -> np.ndarray:
    """21 keypoints spanning `size` px across and half that down."""
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 1, (21, 2)) * [size, size / 2]
    kp[0], kp[1] = [0, 0], [size, size / 2]
    return kp + 30.0


def test_hand_size_is_the_longer_side_of_the_labelled_keypoints_box():
    kp = _hand(100.0)
    assert hand_size(kp) == pytest.approx(100.0)
    conf = np.ones(21)
    conf[1] = 0  # the far corner unlabelled: the box shrinks
    assert hand_size(kp, conf) < 100.0
    assert np.isnan(hand_size(kp, np.eye(21)[0]))  # one labelled point has no size
    point = np.full((21, 2), 40.0)  # every keypoint in one place: no size, but a divisor must not be 0
    assert hand_size(point) == 0.0 and hand_size(point, divisor=True) == MIN_SIZE_PX
    assert hand_size(kp, divisor=True) == hand_size(kp)


def test_pck_auc_and_medians_of_a_known_offset():
    gt = np.stack([_hand(100.0), _hand(200.0)])
    # every keypoint 0.1 x its hand's size away: 10 px on the small hand, 20 px on the large one
    pred = gt + np.array([[0.0, 10.0]])[None] * np.array([1.0, 2.0])[:, None, None]
    s = score_keypoints(pred, gt, np.ones((2, 21)), np.ones(2, bool))
    assert s["pck_0.05"] == 0.0 and s["pck_0.1"] == 1.0 and s["pck_0.2"] == 1.0
    assert s["median_error_hand"] == pytest.approx(0.1)
    assert s["median_error_px"] == pytest.approx(15.0)  # median of 21 x 10 px and 21 x 20 px
    # PCK is 0 below 0.1 and 1 from 0.1 on: the area over 0..0.2 is about half
    assert s["auc_0_0.2"] == pytest.approx(0.5, abs=0.01)
    assert s["found"] == 1.0 and s["num_hands"] == 2 and s["num_keypoints"] == 42


def test_a_hand_not_found_is_wrong_at_every_threshold_and_left_out_of_the_medians():
    gt = np.stack([_hand(100.0), _hand(100.0)])
    pred = gt.copy()
    pred[1] = np.nan  # not found: no prediction at all
    s = score_keypoints(pred, gt, np.ones((2, 21)), np.array([True, False]))
    assert s["pck_0.2"] == 0.5 and s["pck_0.2_found"] == 1.0
    assert s["found"] == 0.5 and s["num_found"] == 1
    assert s["median_error_hand"] == 0.0 and s["median_error_px"] == 0.0


def test_unlabelled_keypoints_do_not_count():
    gt = _hand(100.0)[None]
    pred = gt.copy()
    pred[0, :5] += 1000.0  # far off, but unlabelled
    conf = np.ones((1, 21))
    conf[0, :5] = 0
    s = score_keypoints(pred, gt, conf, np.ones(1, bool))
    assert s["pck_0.05"] == 1.0 and s["num_keypoints"] == 16


def test_auc_of_perfect_predictions_is_one_and_nothing_to_score_is_an_error():
    assert pck_auc(np.zeros((3, 21))) == pytest.approx(1.0)
    with pytest.raises(HandmeshError, match="no hand"):
        score_keypoints(np.zeros((1, 21, 2)), np.zeros((1, 21, 2)), np.zeros((1, 21)), np.ones(1, bool))


def test_real2d_compares_the_sources_on_the_hands_both_found():
    from handmesh.benchmarks.real2d import compare

    model = {"per_hand_median": [0.30, None, 0.20, 0.40]}
    fit = {"per_hand_median": [0.10, 0.05, None, 0.20]}
    c = compare(model, fit)
    # hands 0 and 3 only: medians 0.35 and 0.15
    assert c["hands_both_found"] == 2 and c["model_median"] == 0.35 and c["fit_median"] == 0.15
    assert c["ratio"] == pytest.approx(0.35 / 0.15, abs=0.01)
    assert compare({"per_hand_median": [None]}, {"per_hand_median": [0.1]}) == {"hands_both_found": 0}


def test_labelled_hands_match_detections_by_overlap_each_once():
    from handmesh.evaluation.collect import match_hands

    labelled = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [100, 100, 110, 110]], float)
    detected = np.array([[21, 0, 31, 10], [1, 0, 11, 10], [0, 0, 10, 10]], float)
    # the exact box wins the first hand; the second detection is left over; nothing overlaps the third
    assert match_hands(labelled, detected) == [2, 0, None]
    assert match_hands(labelled, np.zeros((0, 4))) == [None, None, None]
    assert match_hands(labelled[:1], np.array([[5, 5, 15, 15]], float)) == [None]  # IoU 0.14 < 0.3
