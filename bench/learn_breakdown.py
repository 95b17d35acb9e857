"""Where a learning-curve model's errors are: the held-out set split by what makes a synthetic image hard.

    .venv/bin/python bench/learn_breakdown.py bench/results/learn_standard.pt [--step standard]

Scores a model file on the held-out images of `handmesh bench learn` (same seed, same settings) and
reports PA-MPJPE per group: the side the camera sees (palm or back: the sign of the palm normal towards
the camera, calibrated on the easy step, whose hands all face the camera), how far the palm turns away
from the camera, how far the articulation is from the mean hand (lower or upper half of the set), and the
hand's size in the image. Each group also gets its mean-pose
baseline, so a group that is simply harder is told apart from one the model has not learned. Writes
bench/results/learn_breakdown.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handmesh.benchmarks.common import machine_info, write_result  # noqa: E402


def palm_facing(joints: np.ndarray) -> np.ndarray:
    """Cosine between the palm normal of (N,21,3) camera-space joints and the direction to the camera."""
    n = np.cross(joints[:, 5] - joints[:, 0], joints[:, 17] - joints[:, 0])
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    to_cam = -joints[:, 9] / np.linalg.norm(joints[:, 9], axis=-1, keepdims=True)
    return (n * to_cam).sum(-1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model file written by `handmesh bench learn --checkpoint`")
    parser.add_argument("--step", default="standard")
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="bench/results/learn_breakdown.json")
    args = parser.parse_args()
    import torch

    from handmesh.benchmarks.learn import step_spec
    from handmesh.data.mix import held_out
    from handmesh.evaluate import mean_hand_prediction
    from handmesh.metrics import pa_errors
    from handmesh.models import load_model
    from handmesh.models.camera import predict_camera_space

    torch.set_num_threads(1)
    model = load_model(args.model)
    size = model.img_size
    data = held_out(step_spec(args.step), args.images, size, args.seed)
    with torch.no_grad():
        joints, _, _ = predict_camera_space(model, data["image"], data["K"], size)
    gt = data["joints3d"].double().numpy()
    err = pa_errors(joints.double(), torch.as_tensor(gt)).mean(1) * 1000
    base_j, _ = mean_hand_prediction(gt)
    base = pa_errors(torch.as_tensor(base_j), torch.as_tensor(gt)).mean(1) * 1000

    easy = held_out(step_spec("easy"), 50, size, args.seed)["joints3d"].double().numpy()
    palm_sign = float(np.sign(np.median(palm_facing(easy))))  # easy hands all show their palm
    facing = palm_facing(gt) * palm_sign
    # how far the articulation is from the mean hand (RMS radians of the 45 mean-relative values)
    bend = np.sqrt((data["mano_pose"].double().numpy()[:, 3:] ** 2).mean(-1))
    bent = bend >= np.median(bend)
    extent = np.ptp(data["joints2d"].numpy(), axis=1).max(-1) / size
    groups = {
        "palm towards the camera": facing > 0,
        "back towards the camera": facing <= 0,
        "palm within 45 deg of facing (either side)": np.abs(facing) > np.cos(np.deg2rad(45)),
        "palm turned 45-90 deg away (edge-on)": np.abs(facing) <= np.cos(np.deg2rad(45)),
        "articulation nearer the mean hand (lower half)": ~bent,
        "articulation further from the mean hand (upper half)": bent,
        "hand joints span < 45 % of the crop": extent < 0.45,
        "hand joints span >= 45 % of the crop": extent >= 0.45,
    }
    result = {
        "benchmark": "bench/learn_breakdown.py",
        "model": str(args.model),
        "step": args.step,
        "images": args.images,
        "all": {"pa_mpjpe_mm": round(float(err.mean()), 2), "baseline_mm": round(float(base.mean()), 2)},
        "groups": {
            name: {
                "images": int(mask.sum()),
                "pa_mpjpe_mm": round(float(err[mask].mean()), 2),
                "baseline_mm": round(float(base[mask].mean()), 2),
                "ratio": round(float(err[mask].mean() / base[mask].mean()), 3),
            }
            for name, mask in groups.items()
            if mask.any()
        },
        "machine": machine_info(threads=1),
    }
    for name, g in result["groups"].items():
        print(
            f"{name:45s} n={g['images']:4d}  {g['pa_mpjpe_mm']:6.2f} mm vs {g['baseline_mm']:6.2f} ({g['ratio']:.2f}x)"
        )
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
