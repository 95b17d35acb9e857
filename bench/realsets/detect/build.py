"""Rebuild bench/realsets/detect/ from MMPose's test data (see SOURCES.md): images copied byte for byte,
labels converted to the custom-dataset format (annotations.jsonl, one hand a line, FreiHAND joint order).

    python bench/realsets/detect/build.py MMPOSE_TESTS_DATA_FOLDER

MMPOSE_TESTS_DATA_FOLDER is `tests/data` of a checkout of open-mmlab/mmpose. Sides are the hand as it
looks in the image: none of these cameras mirror, so a person's left hand is a left hand in the pixels.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _build import annotation_line, labelled_keypoints, run_build  # noqa: E402

# InterHand2.6M lists each hand tip to base (thumb, index, middle, ring, pinky), wrist last
INTERHAND_TO_FREIHAND = [20, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 19, 18, 17, 16]


def coco_wholebody(root: Path) -> list[dict]:
    """COCO-WholeBody: every hand marked valid, the person's left/right hand."""
    data = json.loads((root / "coco/test_coco_wholebody.json").read_text())
    names = {im["id"]: im["file_name"] for im in data["images"]}
    lines = []
    for ann in data["annotations"]:
        for side in ("left", "right"):
            if not ann[f"{side}hand_valid"]:
                continue
            kp = labelled_keypoints(ann[f"{side}hand_kpts"])
            lines.append(annotation_line(f"images/coco_{names[ann['image_id']]}", kp, side))
    return lines


def interhand(root: Path) -> list[dict]:
    """InterHand2.6M: world joints projected with each image's camera; both hands of interacting frames."""
    folder = root / "interhand2.6m"
    data = json.loads((folder / "test_interhand2.6m_data.json").read_text())
    cams = json.loads((folder / "test_interhand2.6m_camera.json").read_text())
    joints = json.loads((folder / "test_interhand2.6m_joint_3d.json").read_text())
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
    data = json.loads((root / "panoptic/test_panoptic.json").read_text())
    names = {im["id"]: im["file_name"] for im in data["images"]}
    lines = []
    for ann in data["annotations"]:
        name = names[ann["image_id"]]
        stem, side = name.rsplit("_", 1)
        kp = labelled_keypoints(ann["keypoints"])
        lines.append(
            annotation_line(f"images/panoptic_{stem}.jpg", kp, "left" if side.startswith("l") else "right")
        )
    return lines


def copy_images(root: Path, lines: list[dict]) -> None:
    """Copy each annotated image once, unchanged, under images/."""
    (HERE / "images").mkdir(exist_ok=True)
    for name in sorted({ln["image"] for ln in lines}):
        base = name.removeprefix("images/")
        kind, _, rest = base.partition("_")
        src = {
            "coco": root / "coco" / rest,
            "interhand": root / "interhand2.6m" / rest,
            "panoptic": root / "panoptic" / rest.replace(".jpg", "_l.jpg"),
        }[kind]
        shutil.copyfile(src, HERE / name)


def build(root: Path) -> list[dict]:
    """Convert the three sources, copy their images; the annotation lines."""
    lines = coco_wholebody(root) + interhand(root) + panoptic(root)
    copy_images(root, lines)
    return lines


if __name__ == "__main__":
    sys.exit(run_build(sys.argv[1:], __doc__, HERE, build))
