"""The unaligned-error floor of single-image hand recovery on the synthetic data: hand size is not visible.

A hand scaled by k about the camera centre (every point times k) projects to exactly the same image, so
a crop alone cannot tell a small hand near the camera from a large one further away. The synthetic
stream draws 10 shape values per hand (N(0,1), clipped to +-3), which change the hand's size by several
per cent. This script scores an oracle that knows every label except the size: the ground truth rescaled
about the camera centre to the mean shape's bone length (same image, same pose, PA error 0). Its
unaligned MPJPE bounds what a model that sees no size cue can reach; a second oracle knows every shape
value except the first (the stand-in's overall-size direction, which no image shows): its error is the
part of the floor that no image-only model can remove. The project's target is an unaligned MPJPE below 3x
the PA-MPJPE on the standard step; these floors say whether that is reachable. Same held-out sets as
`handmesh bench learn` (seed + 100000). Writes bench/results/scale_floor.json.

  .venv/bin/python bench/scale_floor.py [--images 400]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handmesh.benchmarks.common import machine_info, write_result  # noqa: E402


def bone_length(joints: np.ndarray) -> np.ndarray:
    """Sum of the 20 bone lengths of (N,21,3) FreiHAND-order joints: a pose-independent hand size."""
    from handmesh.hand_model.joints import FREIHAND_PARENTS

    child = np.arange(1, 21)
    parent = np.asarray(FREIHAND_PARENTS)[1:]
    return np.linalg.norm(joints[:, child] - joints[:, parent], axis=-1).sum(-1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="bench/results/scale_floor.json")
    args = parser.parse_args()
    import torch

    from handmesh.benchmarks.learn import STEPS, step_spec
    from handmesh.data.mix import held_out
    from handmesh.hand_model import load_hand_model

    hand = load_hand_model().double()
    with torch.no_grad():
        mean_length = float(bone_length(hand(betas=torch.zeros(1, 10)).joints.numpy())[0])
    result: dict = {"benchmark": "bench/scale_floor.py", "images": args.images, "steps": {}}
    for step in STEPS:
        data = held_out(step_spec(step), args.images, args.img_size, args.seed)
        gt = data["joints3d"].double().numpy()
        k = mean_length / bone_length(gt)
        oracle = gt * k[:, None, None]  # about the camera centre: the same image
        err = np.linalg.norm(oracle - gt, axis=-1)
        # an oracle that knows every shape value but the first: the stand-in's first shape direction is
        # its overall size, the part of the shape no image shows
        betas = data["betas"].double().numpy()
        pose = data["mano_pose"].double().numpy()
        sized = betas.copy()
        sized[:, 0] = 0.0
        with torch.no_grad():
            lengths = [
                bone_length(
                    hand(
                        global_orient=torch.as_tensor(pose[:, :3]),
                        hand_pose=torch.as_tensor(pose[:, 3:]),
                        betas=torch.as_tensor(b),
                    ).joints.numpy()
                )
                for b in (betas, sized)
            ]
        k0 = lengths[1] / lengths[0]
        err0 = np.linalg.norm(gt * k0[:, None, None] - gt, axis=-1)
        result["steps"][step] = {
            "scale_oracle_mpjpe_mm": round(float(err.mean() * 1000), 2),
            "size_direction_oracle_mpjpe_mm": round(float(err0.mean() * 1000), 2),
            "relative_size_std": round(float(np.std(1 / k)), 4),
            "depth_mean_m": round(float(gt[:, 9, 2].mean()), 3),
        }
        print(step, result["steps"][step], flush=True)
    result["shape_prior"] = "betas ~ N(0,1) clipped to +-3 (handmesh.data.synth.draw_geometry)"
    result["machine"] = machine_info()
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
