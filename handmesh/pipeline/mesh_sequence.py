"""Per-frame meshes of a video in one NPZ: vertices (frames, hands, V, 3), NaN where a hand slot is empty.

Hands are kept in stable slots by track id (slot order = first appearance), so one slot follows one
hand through the video as far as the tracker does. Saved arrays: `vertices` float32 (frames, hands, V, 3)
camera metres, `joints` float32 (frames, hands, 21, 3), `present` bool (frames, hands), `track_id` int64
(hands,), `handedness` (hands,) as first seen, `faces_right` and `faces_left` int64 (F, 3) (left faces
have reversed winding), and `fps`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class MeshSequence:
    """Collects each frame's HandEstimates and writes them as one padded NPZ."""

    def __init__(self) -> None:
        self._frames: list[dict[int, tuple[np.ndarray, np.ndarray]]] = []
        self._slots: dict[int, int] = {}
        self._sides: list[str] = []
        self._faces: dict[str, np.ndarray] = {}
        self._verts_per_hand = 0

    def add(self, hands: list) -> None:
        """One frame's hands (HandEstimate-like: vertices, joints, faces, handedness, track_id)."""
        frame = {}
        for hand in hands:
            slot = self._slots.setdefault(int(hand.track_id), len(self._slots))
            if slot == len(self._sides):
                self._sides.append(hand.handedness)
            self._faces.setdefault(hand.handedness, np.asarray(hand.faces, np.int64))
            self._verts_per_hand = len(hand.vertices)
            frame[slot] = (np.asarray(hand.vertices, np.float32), np.asarray(hand.joints, np.float32))
        self._frames.append(frame)

    def arrays(self, fps: float = 0.0) -> dict[str, np.ndarray]:
        """The NPZ's arrays (see the module docstring)."""
        n, hands, v = len(self._frames), len(self._slots), self._verts_per_hand or 778
        verts = np.full((n, hands, v, 3), np.nan, np.float32)
        joints = np.full((n, hands, 21, 3), np.nan, np.float32)
        present = np.zeros((n, hands), bool)
        for i, frame in enumerate(self._frames):
            for slot, (vv, jj) in frame.items():
                verts[i, slot], joints[i, slot], present[i, slot] = vv, jj, True
        empty = np.zeros((0, 3), np.int64)
        return {
            "vertices": verts,
            "joints": joints,
            "present": present,
            "track_id": np.array(sorted(self._slots, key=self._slots.get), np.int64),
            "handedness": np.array(self._sides, dtype="<U5"),
            "faces_right": self._faces.get("right", empty),
            "faces_left": self._faces.get("left", empty),
            "fps": np.float64(fps),
        }

    def save(self, path: str | Path, fps: float = 0.0) -> Path:
        """Write the NPZ (compressed) and return its path."""
        path = Path(path)
        np.savez_compressed(path, **self.arrays(fps))
        return path
