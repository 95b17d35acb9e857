"""Stable track ids for hands across frames: greedy IoU matching, handedness-aware."""

from __future__ import annotations

import dataclasses

import numpy as np

from handmesh.pipeline.detector import HandDetection


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
    A track survives `max_missed` frames without a detection.
    """

    def __init__(self, min_iou: float = 0.2, cross_hand_iou: float = 0.6, max_missed: int = 5):
        self.min_iou, self.cross_hand_iou, self.max_missed = min_iou, cross_hand_iou, max_missed
        self._tracks: list[_Track] = []
        self._next_id = 0

    def update(self, detections: list[HandDetection]) -> list[HandDetection]:
        """Set `track_id` on each detection (in place) and return them."""
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
        by_id = {d.track_id: d for d in detections}
        for tr in self._tracks:
            if tr.track_id in by_id:
                tr.box = np.asarray(by_id[tr.track_id].box, dtype=np.float64)
                tr.handedness = by_id[tr.track_id].handedness
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return detections

    @property
    def live_ids(self) -> list[int]:
        """Ids of tracks still alive."""
        return [t.track_id for t in self._tracks]

    def reset(self) -> None:
        """Forget all tracks (ids keep increasing)."""
        self._tracks = []
