"""Stable track ids for hands across frames (greedy IoU matching, handedness-aware), and each track's side.

A tracked hand keeps its side. MediaPipe names a hand's side anew in every frame, and its video graph
(landmarks re-cropped from the previous frame) and its palm detector (the first frame, every periodic
search) can disagree on the same unchanging picture, so a per-frame side flickers, and with it the mesh
(a right hand fitted as a left one). `TrackSides` decides a track's side from the evidence of all its
frames: each frame's label is a vote of log-odds `logit(p)` (p = the detector's side confidence, clipped
to `max_vote_p`), weighted by the fit quality of the track's previous frame (the plausibility factor:
an implausible fit says little). The weights rank a track's frames against each other, not the track
against a fixed bar: its evidence is measured in votes of its own mean weight, so a track whose fits are
all implausible is judged on the detector's confidences alone. A fit on the wrong side is implausible
too, and weighing every vote by it muted the very votes that would correct the side: a track that settled
wrong could never switch back. A new track's side is provisional: its first `settle` frames' votes
decide it together (the sign of their sum, undecayed, so an alternating run does not flicker it; by
their confidences alone, since a provisional side's fits are implausible where that side is wrong), so one
wrong first frame (the palm detector's, say, against the tracking frames that follow) cannot lock a
track. After that the side is established and changes only on strong, sustained evidence (hysteresis):
the votes, decaying by `decay` per frame, must pass `switch` against it *and* their mean must say the
other side with a confidence of at least `switch_p`. A hand does not change side, so a run of votes that
merely leans the other way (MediaPipe's tracking frames on an ambiguous hand often say 0.6-0.8) never
switches an established track, however long it lasts; confident ones (the tracker handed the track to
the other hand) do: about 13-16 consecutive frames of 0.9-0.95 after a long agreeing run, at 30 frames a
second half a second.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from handmesh.errors import HandmeshError
from handmesh.pipeline.detector import HandDetection


@dataclasses.dataclass
class SideVoteConfig:
    """How a track's side is voted over its frames."""

    decay: float = 0.9  # evidence kept per frame (a memory of about 10 frames)
    switch: float = 6.0  # log-odds against the current side (in mean-weight votes) needed to change it ...
    switch_p: float = 0.8  # ... with the votes' mean at least this sure of the other side
    max_vote_p: float = 0.95  # no single frame counts as certain
    settle: int = 10  # a new track's first frames, whose votes decide its side together (a third of a second)

    def __post_init__(self):
        if self.settle < 1:
            raise HandmeshError(f"side votes: settle must be at least 1 frame, got {self.settle!r}")
        for name in ("switch_p", "max_vote_p"):
            if not 0.5 <= getattr(self, name) < 1.0:
                raise HandmeshError(f"side votes: {name} must lie in [0.5, 1), got {getattr(self, name)!r}")


@dataclasses.dataclass
class _Votes:
    side: str
    evidence: float = 0.0  # decayed sum of weighted log-odds for "right"
    weight: float = 0.0  # decayed sum of the weights
    count: float = 0.0  # decayed number of votes (weight / count: the votes' mean weight)
    quality: float = 1.0  # fit quality of the last estimate (0..1)
    switches: int = 0
    votes: int = 0  # frames voted so far
    first: float = 0.0  # undecayed sum of the weighted log-odds of the first `settle` frames
    first_weight: float = 0.0


class TrackSides:
    """Each track's side from its frames' votes, with hysteresis (see the module docstring)."""

    def __init__(self, config: SideVoteConfig | None = None):
        self.config = config or SideVoteConfig()
        self._tracks: dict[int, _Votes] = {}

    def vote(self, track_id: int, side: str, confidence: float) -> tuple[str, float]:
        """Add one frame's label; returns the track's side and the mean confidence of its votes for it."""
        cfg = self.config
        p = min(max(float(confidence), 0.5), cfg.max_vote_p)
        p_right = p if side == "right" else 1.0 - p
        t = self._tracks.get(track_id)
        if t is None:
            t = self._tracks[track_id] = _Votes(side=side)
        # a provisional side's fits may be on the wrong side, so their plausibility judges the side, not the
        # frame: the first frames' votes count by their confidences alone
        w = max(t.quality, 0.05) if t.votes >= cfg.settle else 1.0
        vote = w * math.log(p_right / (1.0 - p_right))
        t.evidence = cfg.decay * t.evidence + vote
        t.weight = cfg.decay * t.weight + w
        t.count = cfg.decay * t.count + 1.0
        t.votes += 1
        if t.votes <= cfg.settle:  # provisional: the first frames' votes decide together
            t.first, t.first_weight = t.first + vote, t.first_weight + w
            mean = t.first / t.first_weight
            voted = "right" if t.first > 0 else "left" if t.first < 0 else t.side
        else:  # established: hysteresis
            mean = t.evidence / max(t.weight, 1e-9)  # the votes' mean log-odds: a calibrated-ish confidence
            # the evidence in votes of the mean weight (the evidence itself when every fit is plausible)
            evidence = mean * t.count
            strong = math.log(cfg.switch_p / (1.0 - cfg.switch_p))
            voted = t.side
            if t.side == "right" and evidence < -cfg.switch and mean < -strong:
                voted = "left"
            elif t.side == "left" and evidence > cfg.switch and mean > strong:
                voted = "right"
        if voted != t.side:
            t.side, t.switches = voted, t.switches + 1
        p_track_right = 1.0 / (1.0 + math.exp(-mean))
        return t.side, p_track_right if t.side == "right" else 1.0 - p_track_right

    def set_quality(self, track_id: int, quality: float) -> None:
        """The fit quality (0..1) of the track's latest mesh: it weights the track's next votes."""
        if track_id in self._tracks:
            self._tracks[track_id].quality = float(np.clip(quality, 0.0, 1.0))

    def switches(self, track_id: int) -> int:
        """How often the track's side changed."""
        t = self._tracks.get(track_id)
        return t.switches if t is not None else 0

    def keep(self, live_ids) -> None:
        """Forget tracks that ended."""
        self._tracks = {k: v for k, v in self._tracks.items() if k in set(live_ids)}

    def reset(self) -> None:
        """Forget every track."""
        self._tracks = {}


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclasses.dataclass
class _Track:
    track_id: int
    box: np.ndarray
    handedness: str
    missed: int = 0


class IoUTracker:
    """Assigns each detection the id of the best-overlapping live track, or a new id.

    A detection may take over a track of the other handedness only with a clearly higher overlap
    (`cross_hand_iou`), because handedness labels flicker less than boxes overlap when hands cross.
    A track survives `max_missed` frames without a detection. With `sides` (a `TrackSides`), each
    detection's side becomes its track's voted side (and `side_confidence` that side's confidence).
    """

    def __init__(
        self,
        min_iou: float = 0.2,
        cross_hand_iou: float = 0.6,
        max_missed: int = 5,
        sides: TrackSides | None = None,
    ):
        self.min_iou, self.cross_hand_iou, self.max_missed = min_iou, cross_hand_iou, max_missed
        self.sides = sides
        self._tracks: list[_Track] = []
        self._next_id = 0

    def update(self, detections: list[HandDetection]) -> list[HandDetection]:
        """Set `track_id` (and, with side votes, the track's side) on each detection, in place; return them."""
        pairs = []
        for di, det in enumerate(detections):
            for ti, tr in enumerate(self._tracks):
                iou = box_iou(np.asarray(det.box), tr.box)
                needed = self.min_iou if tr.handedness == det.handedness else self.cross_hand_iou
                if iou >= needed:
                    pairs.append((iou + (0.5 if tr.handedness == det.handedness else 0.0), di, ti))
        pairs.sort(reverse=True)
        used_d, used_t = set(), set()
        for _, di, ti in pairs:
            if di in used_d or ti in used_t:
                continue
            used_d.add(di)
            used_t.add(ti)
            detections[di].track_id = self._tracks[ti].track_id
        for ti, tr in enumerate(self._tracks):
            tr.missed = 0 if ti in used_t else tr.missed + 1
        for di, det in enumerate(detections):
            if di not in used_d:
                det.track_id = self._next_id
                self._next_id += 1
                self._tracks.append(
                    _Track(det.track_id, np.asarray(det.box, dtype=np.float64), det.handedness)
                )
        if self.sides is not None:
            for det in detections:
                det.handedness, det.side_confidence = self.sides.vote(
                    det.track_id, det.handedness, det.side_confidence
                )
        by_id = {d.track_id: d for d in detections}
        for tr in self._tracks:
            if tr.track_id in by_id:
                tr.box = np.asarray(by_id[tr.track_id].box, dtype=np.float64)
                tr.handedness = by_id[tr.track_id].handedness
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        if self.sides is not None:
            self.sides.keep(self.live_ids)
        return detections

    @property
    def live_ids(self) -> list[int]:
        """Ids of tracks still alive."""
        return [t.track_id for t in self._tracks]

    def reset(self) -> None:
        """Forget all tracks (ids keep increasing)."""
        self._tracks = []
        if self.sides is not None:
            self.sides.reset()
