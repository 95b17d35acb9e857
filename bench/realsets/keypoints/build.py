"""Rebuild bench/realsets/keypoints/ from MMPose's test data (see SOURCES.md): real hand photos with 2D
keypoint labels, converted to the custom-dataset format (annotations.jsonl, one hand a line, FreiHAND
joint order), for measurement only.

    python bench/realsets/keypoints/build.py MMPOSE_GIT_CHECKOUT

Files are read with `git show COMMIT:PATH` at the commits named below (two OneHand10K photos exist only
in an older commit). Images are copied byte for byte, except one 1440x2560 phone photo, which is halved
(its keypoints with it) to keep the set small. Sides are the hand as it looks in the image, judged by eye
(none of these photos is mirrored); SOURCES.md says how sure each judgement is.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _build import annotation_line, git_show, labelled_keypoints, run_build  # noqa: E402

HEAD = "759b39c13"  # open-mmlab/mmpose commit the set was built from
OLD = "dc46ef8ef"  # the commit that still holds OneHand10K 102.jpg and 1624.jpg
# OneHand10K labels no side: judged by eye from the photo (thumb side, palm or back, arm); 85.jpg (a hand
# lying on a bed) is left out: its side could not be told
ONEHAND_SIDES = {
    "9.jpg": "right",
    "33.jpg": "right",
    "102.jpg": "left",
    "784.jpg": "left",
    "1402.jpg": "right",
    "1624.jpg": "right",
}
HALVED = {"102.jpg"}  # 1.3 MB, 1440x2560: stored at half size


def coco_hands(repo: Path, commit: str, folder: str) -> dict[str, np.ndarray]:
    """file name -> (21, 3) keypoints of a COCO-style hand file of MMPose's tests (one hand per image)."""
    name = "test_freihand.json" if folder == "freihand" else "test_onehand10k.json"
    data = json.loads(git_show(repo, commit, f"tests/data/{folder}/{name}"))
    files = {im["id"]: im["file_name"] for im in data["images"]}
    out = {}
    for ann in data["annotations"]:
        # MMPose's hand order is FreiHAND's: wrist, thumb .. pinky, base to tip
        out[files[ann["image_id"]]] = labelled_keypoints(ann["keypoints"])
    return out


def build(repo: Path) -> list[dict]:
    """Write images/ and return the annotation lines."""
    (HERE / "images").mkdir(exist_ok=True)
    lines = []
    for name, kp in sorted(coco_hands(repo, HEAD, "freihand").items()):
        # FreiHAND's training crops: right hands only (its images are never mirrored)
        (HERE / "images" / f"freihand_{name}").write_bytes(
            git_show(repo, HEAD, f"tests/data/freihand/{name}")
        )
        lines.append(annotation_line(f"images/freihand_{name}", kp, "right", split="test"))
    onehand = {**coco_hands(repo, OLD, "onehand10k"), **coco_hands(repo, HEAD, "onehand10k")}
    for name in sorted(onehand, key=lambda n: int(n.split(".")[0])):
        if name not in ONEHAND_SIDES:
            continue
        kp = onehand[name].copy()
        commit = HEAD if name in coco_hands(repo, HEAD, "onehand10k") else OLD
        data = git_show(repo, commit, f"tests/data/onehand10k/{name}")
        target = HERE / "images" / f"onehand10k_{name}"
        if name in HALVED:
            im = Image.open(io.BytesIO(data)).convert("RGB")
            im = im.resize((im.width // 2, im.height // 2), Image.LANCZOS)
            im.save(target, quality=90)
            # pixel centres: u' = (u + 0.5) / 2 - 0.5
            kp[:, :2] = np.where(kp[:, 2:] > 0, (kp[:, :2] + 0.5) / 2.0 - 0.5, 0.0)
        else:
            target.write_bytes(data)
        lines.append(annotation_line(f"images/onehand10k_{name}", kp, ONEHAND_SIDES[name], split="test"))
    return lines


if __name__ == "__main__":
    sys.exit(run_build(sys.argv[1:], __doc__, HERE, build))
