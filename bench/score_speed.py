"""Time the official FreiHAND scorer (`handmesh.metrics.score_arrays`) on 3,960 generated samples.

    python bench/score_speed.py [--samples 3960] [--repeats 2] [--out bench/results/score_cpu.json]

Ground truth: the project's hand model (the stand-in unless MANO is configured) in random plausible
poses, shapes, orientations and positions 0.4-0.9 m in front of the camera. Two prediction sets:
"typical" (per-sample root offset ~15 mm, 3% scale and 5 degree rotation errors, 4 mm per-vertex
noise: about what a trained model gets) and "poor" (20 mm per-vertex noise, so the F-score shortcut,
which skips points whose corresponding vertex is already within 5 mm, helps little).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from handmesh.benchmarks.common import timing_stats, write_result
from handmesh.hand_model import load_hand_model
from handmesh.hand_model.prior import sample_poses
from handmesh.metrics import score_arrays


def make_ground_truth(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n,21,3) joints and (n,778,3) vertices in camera space, metres."""
    hand = load_hand_model()
    orient = Rotation.random(n, random_state=rng.integers(1 << 31)).as_rotvec()
    transl = np.stack([rng.uniform(-0.1, 0.1, n), rng.uniform(-0.1, 0.1, n), rng.uniform(0.4, 0.9, n)], -1)
    with torch.no_grad():
        out = hand(
            global_orient=torch.tensor(orient, dtype=torch.float32),
            hand_pose=torch.tensor(sample_poses(n, rng) - hand.hands_mean.numpy(), dtype=torch.float32),
            betas=torch.tensor(rng.normal(size=(n, 10)), dtype=torch.float32),
            transl=torch.tensor(transl, dtype=torch.float32),
        )
    return out.joints.double().numpy(), out.vertices.double().numpy()


def perturb(xyz: np.ndarray, verts: np.ndarray, rng: np.random.Generator, noise: float, typical: bool):
    """Predictions: a per-sample similarity error (typical only) plus per-point noise (metres)."""
    n = xyz.shape[0]
    if typical:
        rot = Rotation.from_rotvec(rng.normal(size=(n, 3)) * np.deg2rad(5)).as_matrix()
        scale = 1 + 0.03 * rng.normal(size=(n, 1, 1))
        shift = rng.normal(size=(n, 1, 3)) * 0.015
        centre = xyz[:, 9:10]  # the root joint (middle MCP)

        def move(x):
            return centre + scale * (x - centre) @ rot.transpose(0, 2, 1) + shift

        xyz, verts = move(xyz), move(verts)
    return xyz + rng.normal(size=xyz.shape) * noise, verts + rng.normal(size=verts.shape) * noise


def time_case(pred, gt, repeats: int) -> dict:
    """Wall and CPU seconds of score_arrays, each repeat, plus the scores."""
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        scores = score_arrays(*pred, *gt)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {
        "seconds": timing_stats(walls, unit="s")["median_s"],
        "seconds_each": [round(w, 3) for w in walls],
        "cpu_seconds_each": [round(c, 3) for c in cpus],
        "scores": scores,
    }


def main() -> None:
    """Generate the data, time both cases, write the JSON and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3960)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join("bench", "results", "score_cpu.json"))
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    gt = make_ground_truth(args.samples, rng)
    cases = {
        "typical": perturb(*gt, rng, noise=0.004, typical=True),
        "poor": perturb(*gt, rng, noise=0.020, typical=False),
    }
    load_before = os.getloadavg()
    results = {name: time_case(pred, gt, args.repeats) for name, pred in cases.items()}
    report = {
        "what": "handmesh.metrics.score_arrays, all 13 official metrics, wall seconds (median of repeats)",
        "num_samples": args.samples,
        "seconds": results["typical"]["seconds"],
        "cases": results,
        "load_average_1min_before": round(load_before[0], 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
    write_result(args.out, report, indent=2)
    for name, r in results.items():
        print(f"{name}: {r['seconds']:.2f} s wall (each {r['seconds_each']}, cpu {r['cpu_seconds_each']})")
    print(
        f"load average before/after: {report['load_average_1min_before']} / {report['load_average_1min_after']}"
    )


if __name__ == "__main__":
    main()
