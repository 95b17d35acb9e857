"""Rebuild bench/realsets/detect/ from public repositories (see SOURCES.md): images copied byte for byte,
labels converted to the custom-dataset format (annotations.jsonl, one hand a line, FreiHAND joint order).

    python bench/realsets/detect/build.py SOURCES_FOLDER

SOURCES_FOLDER holds git checkouts named after their repositories: `mmpose` (open-mmlab/mmpose),
`COCO-WholeBody` (jin-s13/COCO-WholeBody), `yolov9_wholebody34_heatmap_vis`
(PINTO0309/yolov9_wholebody34_heatmap_vis, for one COCO photo) and `hand-graph-cnn`
(3d-hand-shape/hand-graph-cnn). Files are read with `git show COMMIT:PATH` at the commits named below.
Sides are the hand as it looks in the image: none of these cameras mirror, so a person's left hand is a
left hand in the pixels.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import scipy.io

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _build import annotation_line, git_show, labelled_keypoints, run_build  # noqa: E402

MMPOSE = ("mmpose", "759b39c13")  # tests/data: COCO-WholeBody, InterHand2.6M, CMU Panoptic HandDB
WHOLEBODY = ("COCO-WholeBody", "76f3b6331")  # evaluation/example_gt.json: five COCO val2017 photos
COCO_PHOTO = ("yolov9_wholebody34_heatmap_vis", "dbf65136d")  # COCO val2017 000000001000.jpg
HAND_GRAPH = ("hand-graph-cnn", "2f59da3e7")  # data/real_world_testset: 583 close-ups, 3D joints
# every 29th close-up: 20 of the 583, spread over the recording's gestures (open hand, fist, pointing,
# thumb up, counting, pinch); the recording's hand is a left hand (palm to the camera, thumb on the
# image's left, the person's body on the left), not mirrored (the shop's labels read normally)
HAND_GRAPH_FRAMES = range(0, 552, 29)
# InterHand2.6M lists each hand tip to base (thumb, index, middle, ring, pinky), wrist last
INTERHAND_TO_FREIHAND = [20, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 19, 18, 17, 16]


def _show(root: Path, source: tuple[str, str], path: str) -> bytes:
    name, commit = source
    return git_show(root / name, commit, path)


def _json(root: Path, source: tuple[str, str], path: str):
    return json.loads(_show(root, source, path))


def wholebody_lines(data: dict, image_ids: set[int] | None = None) -> list[dict]:
    """COCO-WholeBody: every hand marked valid, the person's left/right hand (of `image_ids` if given)."""
    names = {im["id"]: im["file_name"] for im in data["images"]}
    lines = []
    for ann in data["annotations"]:
        if image_ids is not None and ann["image_id"] not in image_ids:
            continue
        for side in ("left", "right"):
            if not ann[f"{side}hand_valid"]:
                continue
            kp = labelled_keypoints(ann[f"{side}hand_kpts"])
            lines.append(annotation_line(f"images/coco_{names[ann['image_id']]}", kp, side))
    return lines


def interhand(root: Path) -> list[dict]:
    """InterHand2.6M: world joints projected with each image's camera; both hands of interacting frames."""
    folder = "tests/data/interhand2.6m"
    data = _json(root, MMPOSE, f"{folder}/test_interhand2.6m_data.json")
    cams = _json(root, MMPOSE, f"{folder}/test_interhand2.6m_camera.json")
    joints = _json(root, MMPOSE, f"{folder}/test_interhand2.6m_joint_3d.json")
    lines = []
    for im in data["images"]:
        cap, cam, frame = str(im["capture"]), str(im["camera"]), str(im["frame_idx"])
        c = cams[cap]
        pos = np.asarray(c["campos"][cam], dtype=np.float64)
        rot = np.asarray(c["camrot"][cam], dtype=np.float64)
        f, pp = np.asarray(c["focal"][cam]), np.asarray(c["princpt"][cam])
        j = joints[cap][frame]
        world = np.asarray(j["world_coord"], dtype=np.float64)
        valid = np.asarray(j["joint_valid"], dtype=np.float64).reshape(-1)
        cam_xyz = (rot @ (world - pos).T).T
        uv = cam_xyz[:, :2] / cam_xyz[:, 2:] * f + pp
        sides = {"right": ["right"], "left": ["left"], "interacting": ["right", "left"]}[j["hand_type"]]
        for side in sides:
            idx = np.asarray(INTERHAND_TO_FREIHAND) + (0 if side == "right" else 21)
            kp = np.concatenate([uv[idx], (valid[idx] > 0)[:, None]], axis=1)
            lines.append(annotation_line(f"images/interhand_{im['file_name']}", kp, side))
    return lines


def panoptic(root: Path) -> list[dict]:
    """CMU Panoptic HandDB (MPII and NZSL photos): `_l`/`_r` files are one photo, one hand each."""
    data = _json(root, MMPOSE, "tests/data/panoptic/test_panoptic.json")
    names = {im["id"]: im["file_name"] for im in data["images"]}
    lines = []
    for ann in data["annotations"]:
        stem, side = names[ann["image_id"]].rsplit("_", 1)
        kp = labelled_keypoints(ann["keypoints"])
        lines.append(
            annotation_line(f"images/panoptic_{stem}.jpg", kp, "left" if side.startswith("l") else "right")
        )
    return lines


def hand_graph(root: Path) -> list[dict]:
    """hand-graph-cnn's real-world test set: 3D joints (camera frame) projected into each 256 px crop."""
    folder = "data/real_world_testset"
    params = scipy.io.loadmat(io.BytesIO(_show(root, HAND_GRAPH, f"{folder}/params.mat")))
    poses = scipy.io.loadmat(io.BytesIO(_show(root, HAND_GRAPH, f"{folder}/pose_gt.mat")))["pose_gt"]
    lines = []
    for i in HAND_GRAPH_FRAMES:
        # the crop is the box (x, y, w, h) of the 1280x720 frame scaled to 256 px: the camera follows it
        x, y, w, _ = params["bbox"][i].astype(np.float64)
        fx, fy, u0, v0 = params["cam_param"][i].astype(np.float64)
        scale = 256.0 / w
        xyz = poses[i].astype(np.float64)  # (21, 3), FreiHAND order: wrist, thumb .. pinky base to tip
        uv = xyz[:, :2] / xyz[:, 2:] * np.array([fx, fy]) * scale + np.array([u0 - x, v0 - y]) * scale
        kp = np.concatenate([uv, np.ones((21, 1))], axis=1)
        lines.append(annotation_line(f"images/handgraph_{i:05d}.jpg", kp, "left"))
    return lines


def copy_images(root: Path, lines: list[dict]) -> None:
    """Copy each annotated image once, unchanged, under images/."""
    (HERE / "images").mkdir(exist_ok=True)
    for name in sorted({ln["image"] for ln in lines}):
        base = name.removeprefix("images/")
        kind, _, rest = base.partition("_")
        if base == "coco_000000001000.jpg":
            data = _show(root, COCO_PHOTO, rest)
        elif kind == "handgraph":
            data = _show(root, HAND_GRAPH, f"data/real_world_testset/images/{rest}")
        else:
            folder = {"coco": "coco", "interhand": "interhand2.6m", "panoptic": "panoptic"}[kind]
            rest = rest.replace(".jpg", "_l.jpg") if kind == "panoptic" else rest
            data = _show(root, MMPOSE, f"tests/data/{folder}/{rest}")
        (HERE / name).write_bytes(data)


def build(root: Path) -> list[dict]:
    """Convert every source, copy its images; the annotation lines."""
    example = _json(root, WHOLEBODY, "evaluation/example_gt.json")
    lines = (
        wholebody_lines(_json(root, MMPOSE, "tests/data/coco/test_coco_wholebody.json"))
        + interhand(root)
        + panoptic(root)
        # the COCO-WholeBody example adds one photo to MMPose's four (the same four, same labels)
        + wholebody_lines(example, {1000})
        + hand_graph(root)
    )
    copy_images(root, lines)
    return lines


if __name__ == "__main__":
    sys.exit(run_build(sys.argv[1:], __doc__, HERE, build))
