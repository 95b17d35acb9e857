"""Run a mesh source over a dataset split and gather, per labelled hand, its prediction and its labels.

Two protocols:
- labelled boxes (default, FreiHAND's protocol): each hand is cut out as the dataset's own unaugmented
  crop (FreiHAND: the whole 224 px image; a custom folder: the square around the labelled box, or the
  keypoints / projected vertices, x the crop padding), left hands mirrored to right ones; predictions
  and labels live in that crop's camera.
- detection (`detect=True`): each image goes through the pipeline exactly as `handmesh predict` runs a
  still image (detector, mesh source, plausibility check), and each labelled hand takes the detected hand
  whose box overlaps its own most (intersection over union >= MATCH_IOU); predictions and labels live in
  the image's camera.

A hand that was not found keeps NaN predictions and `found=False`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from handmesh.evaluation.sources import MeshSource
from handmesh.geometry_np import project_points_np

MATCH_IOU = 0.3  # a detection this close to a labelled hand's box is that hand


@dataclass
class Collected:
    """Predictions and labels of N labelled hands, each in its own camera (metres, pixels of that view)."""

    K: np.ndarray  # (N,3,3) camera of each hand's view (crop or image)
    joints: np.ndarray  # (N,21,3) predicted, NaN when not found
    vertices: np.ndarray  # (N,778,3) predicted, NaN when not found
    found: np.ndarray  # (N,) bool
    gt_joints: np.ndarray  # (N,21,3), NaN where the hand has no 3D joints
    gt_vertices: np.ndarray  # (N,778,3), NaN where the hand has no vertices
    gt_keypoints: np.ndarray  # (N,21,2) pixels of the view, NaN where the hand has no 2D keypoints
    gt_conf: np.ndarray  # (N,21) 0 = not labelled
    notes: list[str] = field(default_factory=list)

    @property
    def keypoints(self) -> np.ndarray:
        """Predicted 2D joints (N,21,2): the predicted 3D joints projected with each view's K."""
        out = np.full((len(self.found), 21, 2), np.nan)
        if self.found.any():
            out[self.found] = project_points_np(self.joints[self.found], self.K[self.found])
        return out

    @property
    def has_3d(self) -> np.ndarray:
        """(N,) hands with both 3D joints and vertices labelled (what the official scorer needs)."""
        return np.isfinite(self.gt_joints).all(axis=(1, 2)) & np.isfinite(self.gt_vertices).all(axis=(1, 2))

    @property
    def has_2d(self) -> np.ndarray:
        """(N,) hands with at least two labelled 2D keypoints."""
        return (self.gt_conf > 0).sum(axis=1) >= 2

    @staticmethod
    def concat(parts: list[Collected]) -> Collected:
        """Several collections as one (in order)."""
        names = ("K", "joints", "vertices", "found", "gt_joints", "gt_vertices", "gt_keypoints", "gt_conf")
        return Collected(
            **{n: np.concatenate([getattr(p, n) for p in parts]) for n in names},
            notes=[note for p in parts for note in p.notes],
        )


def _empty(n: int) -> dict[str, np.ndarray]:
    return {
        "K": np.tile(np.eye(3), (n, 1, 1)),
        "joints": np.full((n, 21, 3), np.nan),
        "vertices": np.full((n, 778, 3), np.nan),
        "found": np.zeros(n, bool),
        "gt_joints": np.full((n, 21, 3), np.nan),
        "gt_vertices": np.full((n, 778, 3), np.nan),
        "gt_keypoints": np.full((n, 21, 2), np.nan),
        "gt_conf": np.zeros((n, 21)),
    }


def _bar(total: int, progress: bool, desc: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="hand", file=sys.stderr, dynamic_ncols=True)


def collect_boxes(
    source: MeshSource,
    dataset: torch.utils.data.Dataset,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = True,
) -> Collected:
    """The source on every hand's labelled-box crop (the dataset must be built at `source.input_size`)."""
    n = len(dataset)
    arrays = _empty(n)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    bar = _bar(n, progress, "evaluate")
    start = 0
    for batch in loader:
        b = len(batch["image"])
        sl = slice(start, start + b)
        # the transform made float32 u8/255: rounding gives back the exact pixels the crop had
        crops = (batch["image"].permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)
        K = batch["K"].double().numpy()
        arrays["K"][sl] = K
        for i, mesh in enumerate(source.on_crops(crops, K)):
            if mesh is not None:
                arrays["joints"][start + i], arrays["vertices"][start + i] = mesh
                arrays["found"][start + i] = True
        for key, has, name in (
            ("joints3d", "has_joints3d", "gt_joints"),
            ("vertices", "has_vertices", "gt_vertices"),
            ("joints2d", "has_joints2d", "gt_keypoints"),
        ):
            rows = batch[has].numpy() > 0.5
            arrays[name][sl][rows] = batch[key].double().numpy()[rows]
        rows = batch["has_joints2d"].numpy() > 0.5
        arrays["gt_conf"][sl][rows] = batch["joints2d_conf"].double().numpy()[rows]
        start += b
        if bar is not None:
            bar.update(b)
    if bar is not None:
        bar.close()
    return Collected(**arrays)


def _image_of(dataset, i: int) -> str:
    """Which image item i of a dataset is on (hands of one photo are evaluated in one pass)."""
    anns = getattr(dataset, "anns", None)
    return str(anns[i].image) if anns is not None else f"item {i}"


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2:] - boxes[:, :2], 0, None).prod(-1)


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of a (N,4) with every box of b (M,4)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    return inter / np.maximum(_area(a)[:, None] + _area(b)[None] - inter, 1e-9)


def match_hands(labelled: np.ndarray, detected: np.ndarray, min_iou: float = MATCH_IOU) -> list[int | None]:
    """For each labelled box, the index of its detected box (greedy by overlap, each used once) or None."""
    iou = _iou_matrix(
        np.asarray(labelled, np.float64).reshape(-1, 4), np.asarray(detected, np.float64).reshape(-1, 4)
    )
    out: list[int | None] = [None] * len(iou)
    while iou.size and iou.max() >= min_iou:
        i, j = np.unravel_index(int(iou.argmax()), iou.shape)
        out[i] = int(j)
        iou[i, :] = -1.0
        iou[:, j] = -1.0
    return out


def collect_detected(pipeline, dataset, progress: bool = True) -> Collected:
    """Each image through the pipeline as `predict` runs a still image; hands matched to labels by box."""
    from handmesh.data.transforms import hand_box, keypoints_of

    n = len(dataset)
    arrays = _empty(n)
    groups: dict[str, list[int]] = {}
    for i in range(n):
        groups.setdefault(_image_of(dataset, i), []).append(i)
    bar = _bar(n, progress, "evaluate (detect)")
    unboxed = 0
    for items in groups.values():
        records = [dataset.record(i) for i in items]
        frame, K = records[0].image, np.asarray(records[0].K, np.float64)
        job = pipeline.estimate(pipeline.detect(frame, K, static=True))
        boxes = []
        for i, rec in zip(items, records, strict=True):
            arrays["K"][i] = K
            kp, conf = keypoints_of(rec)
            if kp is not None:
                arrays["gt_keypoints"][i], arrays["gt_conf"][i] = kp, conf
            if rec.joints3d is not None:
                arrays["gt_joints"][i] = rec.joints3d
            if rec.vertices is not None:
                arrays["gt_vertices"][i] = rec.vertices
            box = hand_box(rec, kp, conf)
            unboxed += box is None
            boxes.append(box if box is not None else np.full(4, np.nan))
        matches = match_hands(np.nan_to_num(np.asarray(boxes), nan=-1.0), [h.box for h in job.hands])
        for i, m in zip(items, matches, strict=True):
            if m is not None:
                hand = job.hands[m]
                arrays["joints"][i], arrays["vertices"][i] = hand.joints, hand.vertices
                arrays["found"][i] = True
        if bar is not None:
            bar.update(len(items))
    if bar is not None:
        bar.close()
    notes = (
        [f"{unboxed} hand(s) without a box, keypoints or projectable vertices: never matched"]
        if unboxed
        else []
    )
    return Collected(**arrays, notes=notes)
