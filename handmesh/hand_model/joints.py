"""Joint orders, kinematic trees and fingertip vertex ids of the MANO hand and of FreiHAND."""

from __future__ import annotations

NUM_VERTICES = 778
NUM_MANO_JOINTS = 16
NUM_JOINTS = 21
NUM_BETAS = 10
NUM_POSE = 45

# MANO's own joint order: the order of its J_regressor rows, kinematic tree and pose parameters.
MANO_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1",
    "index2",
    "index3",
    "middle1",
    "middle2",
    "middle3",
    "pinky1",
    "pinky2",
    "pinky3",
    "ring1",
    "ring2",
    "ring3",
    "thumb1",
    "thumb2",
    "thumb3",
)
MANO_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

# Fingertip vertices (thumb, index, middle, ring, pinky) as FreiHAND's toolbox picks them; FreiHAND's
# ground-truth joints were made with these, so every FreiHAND-order joint set uses them (smplx picks
# 554 and 671 for ring and pinky: do not mix the two).
FREIHAND_TIP_VERTEX_IDS: tuple[int, ...] = (744, 320, 443, 555, 672)

# Index into concat(MANO 16 joints, 5 tips in thumb..pinky order) giving FreiHAND's 21-joint order.
MANO_TO_FREIHAND: tuple[int, ...] = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)

FREIHAND_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb1",
    "thumb2",
    "thumb3",
    "thumb4",
    "index1",
    "index2",
    "index3",
    "index4",
    "middle1",
    "middle2",
    "middle3",
    "middle4",
    "ring1",
    "ring2",
    "ring3",
    "ring4",
    "pinky1",
    "pinky2",
    "pinky3",
    "pinky4",
)
# MediaPipe Hands' 21 landmarks (WRIST, THUMB_CMC..THUMB_TIP, INDEX_FINGER_MCP..TIP, ..., PINKY_TIP) are
# FreiHAND's order one for one; kept as an explicit index so a future detector with another order
# changes one constant. MediaPipe's handedness label assumes a mirrored (selfie) image, so the label of
# the hand as seen in the image is the opposite one: see `mediapipe_handedness_to_image`.
MEDIAPIPE_TO_FREIHAND: tuple[int, ...] = tuple(range(21))


def mediapipe_handedness_to_image(label: str) -> str:
    """MediaPipe's "Left"/"Right" (selfie convention) -> "left"/"right" as the hand looks in the image."""
    return "left" if label.lower() == "right" else "right"


FREIHAND_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
# FreiHAND's root keypoint (the middle finger's MCP): its `uv_root` and `scale` place it, and root-relative
# losses and the mean-pose baseline measure from it. This module imports nothing, so torch-free code
# (synth's render workers) can use it.
ROOT_JOINT = 9

# Finger name -> its three MANO joints (base to tip) and its tip vertex, in FreiHAND finger order.
FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")
FINGER_MANO_JOINTS: dict[str, tuple[int, int, int]] = {
    "thumb": (13, 14, 15),
    "index": (1, 2, 3),
    "middle": (4, 5, 6),
    "ring": (10, 11, 12),
    "pinky": (7, 8, 9),
}
FINGER_TIP_VERTEX: dict[str, int] = dict(zip(FINGERS, FREIHAND_TIP_VERTEX_IDS, strict=True))
