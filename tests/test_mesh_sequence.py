"""Per-frame meshes of a video in one NPZ, one slot per tracked hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np


def _hand(track_id: int, side: str, value: float):
    faces = np.array([[0, 1, 2]]) if side == "right" else np.array([[0, 2, 1]])
    return SimpleNamespace(
        vertices=np.full((778, 3), value, np.float32),
        joints=np.full((21, 3), value, np.float32),
        faces=faces,
        handedness=side,
        track_id=track_id,
    )


def test_hands_keep_their_slot_and_gaps_are_nan(tmp_path):
    from handmesh.pipeline.mesh_sequence import MeshSequence

    seq = MeshSequence()
    seq.add([_hand(4, "right", 1.0)])
    seq.add([_hand(9, "left", 2.0), _hand(4, "right", 3.0)])  # a second hand appears, listed first
    seq.add([])
    path = seq.save(tmp_path / "clip_meshes.npz", fps=30.0)
    data = np.load(path)
    assert data["vertices"].shape == (3, 2, 778, 3) and data["joints"].shape == (3, 2, 21, 3)
    assert data["track_id"].tolist() == [4, 9] and data["handedness"].tolist() == ["right", "left"]
    assert data["present"].tolist() == [[True, False], [True, True], [False, False]]
    assert data["vertices"][1, 0, 0, 0] == 3.0 and data["vertices"][1, 1, 0, 0] == 2.0
    assert np.isnan(data["vertices"][0, 1]).all() and np.isnan(data["vertices"][2]).all()
    assert data["faces_left"].tolist() == [[0, 2, 1]] and float(data["fps"]) == 30.0
