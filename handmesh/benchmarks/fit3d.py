"""The landmark fit in millimetres: both mesh sources on a `handmesh synth` evaluation folder.

Renders a FreiHAND-layout evaluation folder with `handmesh synth` (`--eval` images of
`--size` px, `--seed`), then scores it as `handmesh evaluate` does with the labelled boxes: the landmark
fit (MediaPipe with the still-image search on each image, the hand model fitted to its landmarks) and the
model file, with the official scorer (PA-MPJPE / PA-MPVPE in mm over every image, a miss filled with the
mean hand, and over the images where MediaPipe found the hand), the share found, and the mean-pose
baseline on the same images. How far MediaPipe gets on renders is a measure of the renders' realism too
(`handmesh bench realism`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from handmesh.benchmarks.common import write_result

RESULTS = Path("bench/results/fit3d_cpu.json")
CHECKPOINT = Path("bench/results/learn_standard.pt")
PICK = ("pa_mpjpe_mm", "pa_mpvpe_mm", "pa_f5", "pa_f15", "mpjpe_mm", "num_samples")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench fit3d`."""
    parser.add_argument("--eval", dest="eval", type=int, default=200, help="evaluation images (default 200)")
    parser.add_argument("--size", type=int, default=224, help="image side in px (default 224, FreiHAND's)")
    parser.add_argument("--seed", type=int, default=11, help="synth seed (default 11)")
    parser.add_argument("--work", default="/tmp/handmesh-bench-fit3d", help="folder for the rendered images")
    parser.add_argument("--checkpoint", default=str(CHECKPOINT), help=f"model file (default {CHECKPOINT})")
    parser.add_argument("--search", default="fast", choices=("none", "fast", "thorough"))
    parser.add_argument("--workers", type=int, default=2, help="render processes")
    parser.add_argument("--json", default=str(RESULTS), help=f"output JSON (default {RESULTS})")


def render_folder(work: Path, n: int, size: int, seed: int, workers: int) -> dict[str, Any]:
    """Render the evaluation folder afresh (the renderer may have changed since the last run)."""
    import shutil

    from handmesh.data.synth import SynthConfig, synthesize

    if work.exists():
        shutil.rmtree(work)
    return synthesize(SynthConfig(train=0, eval=n, size=size, seed=seed, workers=workers), work)


def _pick(scores: dict[str, Any]) -> dict[str, Any]:
    return {
        k: round(scores[k], 3) if isinstance(scores[k], float) else scores[k] for k in PICK if k in scores
    }


def run(args: argparse.Namespace) -> int:
    """Render, score both sources and the baseline, write the result."""
    from handmesh.benchmarks.common import machine_info
    from handmesh.evaluate import build_mesh_source, collect_split, mean_hand_prediction, score_collected
    from handmesh.metrics import load_ground_truth, score_arrays

    machine = machine_info()
    work = Path(args.work)
    timing = render_folder(work, args.eval, args.size, args.seed, args.workers)
    gt_xyz, gt_verts = load_ground_truth(work, "evaluation")
    xyz, verts = mean_hand_prediction(gt_xyz)
    result: dict[str, Any] = {
        "benchmark": "handmesh bench fit3d",
        "data": {"eval": args.eval, "size": args.size, "seed": args.seed, "render": timing},
        "search": args.search,
        "mean_pose": _pick(score_arrays(xyz, verts, gt_xyz, gt_verts)),
        "sources": {},
    }
    for source, checkpoint in (("landmark-fit", None), ("model", args.checkpoint)):
        mesh_source, _ = build_mesh_source(source, checkpoint, search=args.search)
        t0 = time.perf_counter()
        collected, words = collect_split(mesh_source, None, work, workers=0, progress=False)
        scores = score_collected(collected)
        entry = {
            "model": mesh_source.name,
            "split": words,
            "found": round(scores["found"], 4),
            "all": _pick(scores),
            "found_only": _pick(scores.get("found_only", scores)),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        if "keypoints2d" in scores:
            k = scores["keypoints2d"]
            entry["keypoints2d"] = {key: k[key] for key in ("pck_0.2", "pck_0.2_found", "median_error_hand")}
        result["sources"][source] = entry
        print(
            f"{source}: found {entry['found']:.0%}, PA-MPJPE {entry['found_only']['pa_mpjpe_mm']} mm on the hands "
            f"found ({entry['all']['pa_mpjpe_mm']} mm over all, misses as the mean hand)",
            flush=True,
        )
    print(f"mean pose: PA-MPJPE {result['mean_pose']['pa_mpjpe_mm']} mm")
    result["machine"] = machine
    write_result(args.json, result)
    return 0
