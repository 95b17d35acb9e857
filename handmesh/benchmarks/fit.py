"""Landmark-fit timing per hand: batch 1 and 2, cold start and warm start (video), with its accuracy.

Input: stand-in (or MANO) hands in plausible random poses moving smoothly, their 21 joints given as
hand-centred 3D landmarks with Gaussian noise (``--noise-mm``, like a detector's) plus the exact 2D
keypoints and K, the pipeline's path (3D fit then placement over the 2D keypoints). Errors are against
the true camera-space joints, and after removing each hand's centroid (pose and shape alone: monocular
depth from a hand's apparent size is the larger part of the first). Cold calls start
from the analytic initialization; warm calls from the previous frame's fit. Scenarios are timed in
interleaved rounds so load drifting on a shared machine hits them alike; the load average is recorded,
and beside wall-clock time the calling thread's CPU time (with one torch thread the whole fit runs on
it), which a busy machine inflates far less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from handmesh.benchmarks.common import timing_stats, write_result

RESULTS = Path("bench/results/fit_cpu.json")
SCENARIOS = (("cold", 1), ("cold", 2), ("warm", 1), ("warm", 2))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench fit`."""
    parser.add_argument("--runs", type=int, default=200, help="timed calls per scenario (median reported)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls per scenario first")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads of the hand-model pass (default 1)"
    )
    parser.add_argument(
        "--noise-mm", dest="noise_mm", type=float, default=3.0, help="3D landmark noise (sigma, mm)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(RESULTS), help=f"output JSON (default {RESULTS})")


def _sequence(hand, frames: int, hands: int, rng) -> dict[str, Any]:
    """Smoothly moving hands: per frame, joints (hands,21,3) in the camera, 2D keypoints and K."""
    import numpy as np
    import torch

    from handmesh.geometry import project_points_np
    from handmesh.hand_model.prior import sample_poses
    from handmesh.pipeline.crop import default_intrinsics

    K = default_intrinsics(640, 480)
    base = sample_poses(hands, rng) - hand.hands_mean.numpy()
    orient = rng.normal(0, 0.8, (hands, 3))
    betas = rng.normal(0, 0.8, (hands, 10))
    offsets = np.array([[-0.08, 0, 0.5], [0.08, 0, 0.5]])[:hands]
    phase = np.linspace(0, 2 * np.pi, frames, endpoint=False)
    joints = []
    for a in phase:
        pose = base * (1 + 0.2 * np.sin(a))
        params = {
            "global_orient": orient + 0.1 * np.sin(a),
            "hand_pose": pose,
            "betas": betas,
            "transl": offsets + [0.02 * np.cos(a), 0.01 * np.sin(a), 0],
        }
        with torch.no_grad():
            out = hand(**{k: torch.tensor(v, dtype=torch.float32) for k, v in params.items()})
        joints.append(out.joints.numpy().astype(np.float64))
    joints = np.stack(joints)
    uv = project_points_np(joints, np.broadcast_to(K, joints.shape[:2] + (3, 3)).copy())
    return {"joints": joints, "uv": uv, "K": K}


def _stats(times_ms: list[float], hands: int) -> dict[str, float]:
    stats = timing_stats(times_ms)
    return {**stats, "median_ms_per_hand": round(stats["median_ms"] / hands, 3)}


def bench(runs: int, warmup: int, noise_mm: float, seed: int) -> dict[str, Any]:
    """Time every scenario; returns the JSON-ready result."""
    import numpy as np
    import torch

    from handmesh.fit import default_hand_model, fit_keypoints

    hand = default_hand_model()
    rng = np.random.default_rng(seed)
    frames = warmup + runs
    seqs = {n: _sequence(hand, frames, n, rng) for n in (1, 2)}
    noisy = {n: s["joints"] + rng.normal(0, noise_mm / 1000, s["joints"].shape) for n, s in seqs.items()}
    times: dict[str, list[float]] = {f"{m}_b{n}": [] for m, n in SCENARIOS}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    iters: dict[str, list[float]] = {k: [] for k in times}
    errors: dict[str, list[float]] = {k: [] for k in times}
    centred: dict[str, list[float]] = {k: [] for k in times}
    previous: dict[str, Any] = {}
    for t in range(frames):
        for mode, n in SCENARIOS:
            key = f"{mode}_b{n}"
            s = seqs[n]
            land = noisy[n][t] - noisy[n][t].mean(1, keepdims=True)
            init = previous.get(key) if mode == "warm" else None
            c0, t0 = time.thread_time(), time.perf_counter()
            fit = fit_keypoints(land, s["uv"][t], s["K"], init=init)
            dt = (time.perf_counter() - t0) * 1e3
            dc = (time.thread_time() - c0) * 1e3
            previous[key] = fit.params
            if t >= warmup:
                times[key].append(dt)
                cpu[key].append(dc)
                iters[key].append(float(fit.iterations.mean()))
                errors[key].append(float(np.linalg.norm(fit.joints - s["joints"][t], axis=-1).mean() * 1e3))
                shape_err = (fit.joints - fit.joints.mean(1, keepdims=True)) - (
                    s["joints"][t] - s["joints"][t].mean(1, keepdims=True)
                )
                centred[key].append(float(np.linalg.norm(shape_err, axis=-1).mean() * 1e3))
    results = {}
    for mode, n in SCENARIOS:
        key = f"{mode}_b{n}"
        results[key] = {
            "start": mode,
            "batch": n,
            **_stats(times[key], n),
            "cpu_median_ms_per_hand": round(statistics.median(cpu[key]) / n, 3),
            "mean_iterations": round(statistics.fmean(iters[key]), 2),
            "mean_joint_error_mm": round(statistics.fmean(errors[key]), 2),
            "mean_joint_error_centred_mm": round(statistics.fmean(centred[key]), 2),
        }
    with torch.no_grad():
        z = torch.zeros(1, 3)
        model_ms = []
        for i in range(runs):
            t0 = time.perf_counter()
            hand(global_orient=z, hand_pose=torch.zeros(1, 45), betas=torch.zeros(1, 10), transl=z)
            if i >= warmup:
                model_ms.append((time.perf_counter() - t0) * 1e3)
    return {
        "hand_model_kind": hand.kind,
        "noise_mm": noise_mm,
        "runs": runs,
        "warmup": warmup,
        "results": results,
        "hand_model_forward_b1_median_ms": round(statistics.median(model_ms), 3),
    }


def run(args: argparse.Namespace) -> int:
    """Run, print a table, write the JSON."""
    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    out = bench(args.runs, args.warmup, args.noise_mm, args.seed)
    out["load_average_1min"] = {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)}
    for key, row in out["results"].items():
        print(
            f"{key:8s} median {row['median_ms']:6.2f} ms/call  {row['median_ms_per_hand']:6.2f} ms/hand  "
            f"(cpu {row['cpu_median_ms_per_hand']:5.2f})  "
            f"p90 {row['p90_ms']:6.2f}  iters {row['mean_iterations']:.1f}  err {row['mean_joint_error_mm']:.2f} mm "
            f"(centred {row['mean_joint_error_centred_mm']:.2f} mm)"
        )
    write_result(args.json, out, indent=2, threads=args.threads)
    return 0
