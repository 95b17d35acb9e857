"""`handmesh bench detect`'s scoring: matching detections to labelled hands, buckets, side switches."""

from __future__ import annotations

import time

import numpy as np
import pytest

from handmesh.benchmarks.detect import (
    REALSET,
    Item,
    Truth,
    bucket,
    clip_summary,
    letterbox,
    match,
    real_items,
    score_setting,
    switches,
    time_640x480,
)
from handmesh.pipeline.detector import HandDetection


def _truth(x: float, size: float = 50.0, side: str = "right") -> Truth:
    t = np.linspace(0, 1, 21)
    kp = np.stack([x + size * t, 10 + size * t**2], axis=1)
    return Truth(kp, np.ones(21, bool), side)


def _det(truth: Truth, shift: float = 0.0, side: str = "right") -> HandDetection:
    kp = truth.keypoints + shift
    return HandDetection(box=np.concatenate([kp.min(0), kp.max(0)]), handedness=side, keypoints2d=kp)


def test_match_counts_each_hand_once_then_duplicates_and_strays():
    a, b = _truth(0), _truth(200)
    found = [_det(a, 3.0), _det(a, 1.0), _det(b, 40.0), _det(_truth(500))]
    pairs, duplicates, unmatched = match([a, b], found)
    assert pairs == {0: 1}  # the closer of a's two detections; b's is too far (40 px of a 50 px hand)
    assert duplicates == 1 and unmatched == 2


def test_hands_found_per_source():
    """Each picture's source (its file name's first word) gets its own count of hands >= 40 px found."""
    a, b, small = _truth(0), _truth(200), _truth(400, size=20.0)
    image = np.zeros((8, 8, 3), np.uint8)
    items = [
        Item("detect/coco_1.jpg", image, [a, small], "real"),
        Item("detect/handgraph_2.jpg", image, [b], "real"),
    ]
    out = score_setting(items, lambda im: [_det(a, 1.0), _det(small, 0.5)])
    assert out["by_source"] == {
        "coco": {"hands_40px_or_more": 1, "found": 1},
        "handgraph": {"hands_40px_or_more": 1, "found": 0},
    }
    assert out["by_kind"]["real"]["<40"]["found"] == 1
    assert out["missed_40px_or_more"] == ["detect/handgraph_2.jpg (right, 50 px)"]


def test_buckets_switches_and_clip_summary():
    assert [bucket(s) for s in (39.9, 40.0, 100.0, 250.0)] == ["<40", "40-100", ">100", ">100"]
    assert switches(list("RRLLRR")) == 2 and switches([]) == 0
    runs = [{0: [("right", True)] * 30, 1: [("left", False)] * 15 + [("right", True)] * 15}]
    out = clip_summary(runs)
    assert out["side_switches"] == 1 and out["tracks_with_a_switch"] == 1
    assert out["switches_per_track_minute"] == 1 / (60 / 30 / 60)
    assert out["frames_side_right"] == 0.75
    assert out["established_side_switches"] == 1  # the switch at frame 15 lies past the settling frames
    early = clip_summary([{0: [("left", None)] * 2 + [("right", None)] * 28}])
    assert early["side_switches"] == 1 and early["established_side_switches"] == 0
    assert early["established_switches_per_track_minute"] == 0.0 and "frames_side_right" not in early


def test_letterbox_keeps_the_aspect():
    im = np.full((100, 400, 3), 255, np.uint8)
    out = letterbox(im)
    assert out.shape == (480, 640, 3)
    rows = np.where(out[:, 320, 0] > 0)[0]
    assert len(rows) == 160 and rows[0] == 160  # 400x100 -> 640x160, centred


def test_the_real_set_reads_or_says_how_to_build_it():
    """Built on this machine (bench/realsets/detect/build.py), the set is what SOURCES.md describes; not
    built (a fresh clone: it is never committed), the benchmark names the build command in one line."""
    from handmesh.errors import HandmeshError

    if not (REALSET / "annotations.jsonl").is_file():
        with pytest.raises(HandmeshError, match=r"not built here; build it with python .*build\.py"):
            real_items(REALSET)
        return
    items = real_items(REALSET)
    hands = [t for it in items for t in it.hands]
    assert len(items) == 31 and len(hands) == 55
    assert sum(t.size >= 40 for t in hands) == 31 and {t.side for t in hands} == {"left", "right"}


class _Sleeper:
    """A detector that takes a fixed CPU time per image (and at least as much wall time)."""

    def __init__(self, seconds: float):
        self.seconds, self.calls = seconds, 0

    def detect(self, frame, static: bool = False):
        self.calls += 1
        # busy on the thread's own CPU clock: other jobs on the machine stretch both detectors' wall time
        # alike instead of cutting a wall-clock wait short of its CPU time (the ratios stay put under load)
        end = time.thread_time() + self.seconds
        while time.thread_time() < end:
            pass
        return []


def test_timing_rounds_give_ratios_and_their_spread():
    images = [np.zeros((480, 640, 3), np.uint8)] * 2
    base, slow = _Sleeper(0.004), _Sleeper(0.012)
    out = time_640x480(images, {"today": base, "fast": slow}, repeats=2, rounds=3)
    assert (
        base.calls == slow.calls == 2 + 2 * 2 * 3
    )  # one untimed run per image, then rounds x images x repeats
    assert out["today"]["ratio_to_first_median"] == 1.0 and out["today"]["n"] == 12
    fast = out["fast"]
    assert len(fast["rounds"]) == 3 and all(1.5 < r["ratio"] < 6 for r in fast["rounds"])
    lo, hi = fast["ratio_range_over_rounds"]
    assert lo <= fast["ratio_to_first_median"] <= hi  # the median of the union lies between
    assert 1.5 < fast["cpu_ratio_to_first_median"] < 6
