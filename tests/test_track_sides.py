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


def test_a_wrong_first_frame_does_not_lock_the_track():
    # handgraph_00348's clip: the palm detector's first frame says right at 0.65, tracking says left at 0.75
    sides = TrackSides()
    out = [sides.vote(0, "right", 0.65)[0]] + [sides.vote(0, "left", 0.75)[0] for _ in range(29)]
    assert out == ["right"] + ["left"] * 29 and sides.switches(0) == 1
    # a confident wrong first frame followed by frames that only lean the right way: still corrected
    out = _sides("L" + "R" * 59, confidence=0.7)
    assert out.index("R") <= 3 and out.endswith("R" * 57)
    # several wrong frames first, then the right side for the rest of the settling frames
    out = _sides("LLL" + "R" * 57, confidence=0.9)
    assert out.endswith("R" * 50) and out.count("L") <= 5


def test_the_first_frames_decide_together_without_flicker():
    # alternating labels of equal confidence: the first label holds while their sum is tied
    assert _sides("RL" * 15) == "R" * 30
    # one contrary frame among the first does not move the side
    assert _sides("RRLRRLRRRR" + "R" * 20) == "R" * 30


def test_an_established_side_ignores_votes_that_only_lean_the_other_way():
    # a settled track, then every frame says the other side at 0.6-0.8 (an ambiguous hand's tracking frames)
    for confidence in (0.6, 0.7, 0.79):
        assert _sides("R" * 10 + "L" * 90, confidence=confidence) == "R" * 100
    # the same run said surely switches, after a sustained stretch, not on the first contrary frames
    out = _sides("R" * 10 + "L" * 90, confidence=0.9)
    assert out[:15] == "R" * 15 and out.endswith("L" * 60)


@pytest.mark.parametrize("labels", ["R" * 60, "L" * 60])
def test_a_steady_track_never_flips(labels):
    sides = TrackSides()
    rng = np.random.default_rng(0)
    side = "right" if labels[0] == "R" else "left"
    out = {sides.vote(0, side, float(c))[0] for c in rng.uniform(0.5, 0.95, len(labels))}
    assert out == {side} and sides.switches(0) == 0


@pytest.mark.parametrize("field", [{"switch_p": 1.0}, {"switch_p": 0.3}, {"max_vote_p": 1.0}, {"settle": 0}])
def test_side_vote_confidences_out_of_range_are_refused(field):
    with pytest.raises(HandmeshError, match=next(iter(field))):
        SideVoteConfig(**field)


def test_track_confidence_reports_the_votes_and_ends_with_the_track():
    sides = TrackSides()
    for _ in range(10):  # a settled track
        side, conf = sides.vote(3, "left", 0.8)
        assert side == "left" and 0.75 < conf <= 0.8 + 1e-9
    for _ in range(8):
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


def _switches(sides: str) -> int:
    return sum(a != b for a, b in zip(sides, sides[1:], strict=False))


def _fitted_sides(labels: str, confidence: float, quality: dict[str, float]) -> str:
    """Sides of a track voted as the pipeline does: each frame's vote, then its fit's quality on the track's
    side (`quality[side]`: a hand fitted on the wrong side is implausible)."""
    sides, out = TrackSides(), []
    for c in labels:
        side, _ = sides.vote(0, "right" if c == "R" else "left", confidence)
        sides.set_quality(0, quality[side])
        out.append(side[0].upper())
    return "".join(out)


WRONG_FITS = {"right": 0.9, "left": 0.0}  # a right hand: fitted as a left hand, its meshes are implausible


@pytest.mark.parametrize("confidence, within", [(0.9, 40), (0.95, 35)])
def test_a_track_settled_on_the_wrong_side_is_corrected(confidence, within):
    """A right hand whose first ten frames said left: fitted as a left hand, its fits are implausible, and
    their quality must not mute the detector's confident votes for the right side."""
    out = _fitted_sides("L" * 10 + "R" * 60, confidence, WRONG_FITS)
    assert out[:10] == "L" * 10  # the first frames settled it wrong
    assert "R" in out[10 : 10 + within] and out.endswith("R" * (60 - within))
    assert _switches(out) == 1


def test_a_wrong_first_frame_is_outvoted_though_its_fit_is_implausible():
    """handgraph_00348's pattern with the wrong side's fits implausible: the palm detector's first frame says
    left at 0.65, tracking right at 0.75 (a lean that cannot switch an established side): the first frames
    must count by their confidences, not by the fits of a side that is still provisional."""
    sides, out = TrackSides(), []
    for i in range(30):
        side, _ = sides.vote(0, "left" if i == 0 else "right", 0.65 if i == 0 else 0.75)
        sides.set_quality(0, WRONG_FITS[side])
        out.append(side[0].upper())
    assert "".join(out) == "L" + "R" * 29


@pytest.mark.parametrize("quality", [{"right": 0.05, "left": 0.05}, {"right": 0.9, "left": 0.0}])
def test_implausible_fits_do_not_bring_back_flicker(quality):
    """The still photo's flickering labels, with fits implausible on both sides or only on the wrong one."""
    labels = "RRLRRRRRRRRLRRRRRRRRRRLLRRRRRR" * 3
    assert _fitted_sides(labels, 0.9, quality) == "R" * len(labels)
    # a third of the frames sure of the other side, on a hand whose every fit is implausible
    assert _fitted_sides("RRL" * 30, 0.95, quality) == "R" * 90


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
