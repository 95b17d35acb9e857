"""Render the open stand-in hand in the named poses for the README (docs/images/standin_*.png).

    PYOPENGL_PLATFORM=egl python bench/render_standin.py [--out docs/images] [--poses flat fist ...]

Each image shows the pose twice: from the back of the hand and from the palm side.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from handmesh.hand_model import HandModel  # noqa: E402
from handmesh.hand_model.prior import NAMED_POSES, named_pose  # noqa: E402
from handmesh.hand_model.standin import standin_arrays  # noqa: E402
from handmesh.render import MeshRenderer  # noqa: E402

SIZE = 420
SKIN = (0.86, 0.66, 0.55, 1.0)
# Hand frame -> OpenCV camera: fingers (-x) point up the image, the back of the hand (+y) faces the
# camera, so the thumb (+z) appears on the left.
BACK = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
VIEWS = {
    "back": Rotation.from_euler("xy", [-25, 20], degrees=True).as_matrix() @ BACK,
    "palm": Rotation.from_euler("xy", [-20, 180 - 25], degrees=True).as_matrix() @ BACK,
}


def render_pose(hand: HandModel, renderer: MeshRenderer, name: str) -> np.ndarray:
    """Two views (back, palm) of the stand-in in pose `name`, side by side, RGB uint8."""
    pose = torch.tensor(named_pose(name), dtype=torch.float32)[None]
    verts = hand(hand_pose=pose).vertices[0].detach().numpy().astype(np.float64)
    panels = []
    for rot in VIEWS.values():
        cam = verts @ rot.T
        cam -= cam.mean(0)
        cam[:, 2] += 0.55
        K = np.array([[1150.0, 0, SIZE / 2], [0, 1150.0, SIZE / 2], [0, 0, 1]])
        rgba, _ = renderer.render([(cam, hand.faces, SKIN)], K)
        alpha = rgba[..., 3:4] / 255.0
        background = np.full_like(rgba[..., :3], 245, dtype=np.float64)
        panels.append((rgba[..., :3] * alpha + background * (1 - alpha)).astype(np.uint8))
    return np.concatenate(panels, axis=1)


def main(argv: list[str] | None = None) -> int:
    """Write docs/images/standin_{pose}.png."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images")
    parser.add_argument(
        "--poses", nargs="+", default=["flat", "fist", "spread", "pinch"], choices=NAMED_POSES
    )
    args = parser.parse_args(argv)
    hand = HandModel(standin_arrays(), kind="standin", flat_hand_mean=True)
    renderer = MeshRenderer(SIZE, SIZE)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.poses:
        path = out / f"standin_{name}.png"
        Image.fromarray(render_pose(hand, renderer, name)).save(path)
        print(path)
    renderer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
