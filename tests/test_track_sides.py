"""A tracked hand keeps its side (handmesh.pipeline.tracking.TrackSides and the pipeline's use of it)."""

from __future__ import annotations

import numpy as np
import pytest

from handmesh.errors import HandmeshError
from handmesh.pipeline.detector import HandDetection
from handmesh.pipeline.pipeline import HandMeshPipeline, PipelineConfig
from handmesh.pipeline.tracking import SideVoteConfig, TrackSides


def _sides(labels: str, confidence: float = 0.9, sides: TrackSides | None = None) -> str:
    sides = sides or TrackSides()
    out = [sides.vote(0, "right" if c == "R" else "left", confidence)[0] for c in labels]
    return "".join(s[0].upper() for s in out)


def test_single_frame_flips_do_not_change_the_side():
    assert _sides("RRRRRLRRRRLLRRRRLRRRRRRRRRRRRR") == "R" * 30


def test_sustained_confident_evidence_changes_the_side_once():
    labels = "R" * 30 + "L" * 30
    out = _sides(labels)
    assert out[:30] == "R" * 30 and out.endswith("L" * 15)
    switch = out.index("L")
    assert 36 <= switch <= 47  # about half a second of hysteresis, not the first contrary frame
    # more confident contrary votes switch sooner
    sure = _sides(labels, confidence=0.95)
    assert sure.index("L") < switch and sure.count("L") > out.count("L")


def test_votes_that_only_lean_the_other_way_never_switch():
    # an ambiguous hand: the first frame says left, then every tracking frame says right at 0.7
    assert _sides("L" + "R" * 59, confidence=0.7) == "L" * 60
    # the same run said surely switches within a few frames (a wrong first frame is corrected)
    out = _sides("L" + "R" * 59, confidence=0.9)
    assert out.index("R") <= 5 and out.endswith("R" * 55)


@pytest.mark.parametrize("field", [{"switch_p": 1.0}, {"switch_p": 0.3}, {"max_vote_p": 1.0}])
def test_side_vote_confidences_out_of_range_are_refused(field):
    with pytest.raises(HandmeshError, match=next(iter(field))):
        SideVoteConfig(**field)


def test_track_confidence_reports_the_votes_and_ends_with_the_track():
    sides = TrackSides()
    side, conf = sides.vote(3, "left", 0.8)
    assert side == "left" and 0.75 < conf <= 0.8 + 1e-9
    for _ in range(3):
        side, conf = sides.vote(3, "right", 0.8)
    assert side == "left" and conf < 0.5  # the evidence now leans against the kept side, and says so
    sides.keep([])
    assert sides.vote(3, "right", 0.8)[0] == "right"  # a new track with the same id starts afresh


def test_implausible_fits_weigh_little():
    sides = TrackSides(SideVoteConfig())
    for _ in range(20):
        sides.vote(0, "right", 0.9)
    sides.set_quality(0, 0.0)
    for _ in range(20):
        side, _ = sides.vote(0, "left", 0.95)
    assert side == "right" and sides.switches(0) == 0


class _FlickeringDetector:
    """One hand in the same place every frame, its label read from a string (MediaPipe on a still photo)."""

    def __init__(self, labels: str):
        self.labels, self.i = labels, 0

    def detect(self, frame, static=False):
        side = "right" if self.labels[self.i % len(self.labels)] == "R" else "left"
        self.i += 1
        return [
            HandDetection(
                box=np.array([40.0, 40.0, 120.0, 140.0]), handedness=side, score=0.9, side_confidence=0.9
            )
        ]


class _NoEstimator:
    name = "none"


def _pipeline_sides(labels: str, votes: bool) -> str:
    pipe = HandMeshPipeline(_NoEstimator(), _FlickeringDetector(labels), PipelineConfig(side_votes=votes))
    frame = np.zeros((200, 200, 3), np.uint8)
    out = []
    for i in range(len(labels)):
        job = pipe.detect(frame, timestamp=i / 30)
        (det,) = job.detections
        assert det.track_id == 0
        out.append(det.handedness[0].upper())
    return "".join(out)


def test_pipeline_keeps_a_tracked_hands_side():
    """A 30-frame clip of one still photo: one track, and its side no longer flickers."""
    labels = "RRLRRRRRRRRLRRRRRRRRRRLLRRRRRR"
    assert _pipeline_sides(labels, votes=False) == labels  # per-frame labels, as before
    voted = _pipeline_sides(labels, votes=True)
    assert voted == "R" * 30
