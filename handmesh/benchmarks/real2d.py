"""Both mesh sources on real photos with 2D keypoint labels: PCK, AUC, median distance, share of hands found.

The photos are bench/realsets/keypoints (measurement only: never trained on, never used to pick a
checkpoint; see its SOURCES.md). Each mesh source -- the model file (`--checkpoint`) and the landmark fit
-- is scored as `handmesh evaluate` scores it: with the labelled boxes (FreiHAND's protocol; the model's
3D joints projected through the crop's camera) and with detection (`--detect`, what `handmesh predict`
does). Distances are shares of the hand's size (handmesh.metrics2d). `compare` sets the model's median
distance against the landmark fit's on the hands both found, per protocol (the target: within
1.5x).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from handmesh.benchmarks.common import write_result

RESULTS = Path("bench/results/real2d_cpu.json")
DATA = Path("bench/realsets/keypoints")
CHECKPOINT = Path("bench/results/learn_standard.pt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench real2d`."""
    parser.add_argument("--data", default=str(DATA), help=f"labelled folder (default {DATA})")
    parser.add_argument("--checkpoint", default=str(CHECKPOINT), help=f"model file (default {CHECKPOINT})")
    parser.add_argument(
        "--search",
        default="fast",
        choices=("none", "fast", "thorough"),
        help="still-image search of the detector (handmesh.pipeline.search; default fast)",
    )
    parser.add_argument("--json", default=str(RESULTS), help=f"output JSON (default {RESULTS})")


def per_hand_medians(collected) -> list[float | None]:
    """Each hand's median keypoint distance as a share of its size (None: not found or unlabelled)."""
    import numpy as np

    from handmesh.metrics2d import normalized_errors

    norm, _, _ = normalized_errors(
        collected.keypoints, collected.gt_keypoints, collected.gt_conf, collected.found
    )
    out: list[float | None] = []
    for row in norm:
        vals = row[np.isfinite(row)]
        out.append(float(np.median(vals)) if vals.size else None)
    return out


def score_run(
    source: str, checkpoint: str | None, data: str, detect: bool, search: str | None
) -> dict[str, Any]:
    """One mesh source under one protocol: the 2D scores, per-hand medians and the time it took."""
    from handmesh.evaluate import build_mesh_source, collect_split
    from handmesh.metrics2d import score_keypoints

    mesh_source, pipeline = build_mesh_source(source, checkpoint, detect, search=search)
    t0 = time.perf_counter()
    collected, words = collect_split(mesh_source, pipeline, data, workers=0, progress=False)
    seconds = time.perf_counter() - t0
    has2 = collected.has_2d
    return {
        "mesh_source": source,
        "model": mesh_source.name,
        "boxes": "detected" if detect else "labelled",
        "split": words,
        "scores": score_keypoints(
            collected.keypoints[has2],
            collected.gt_keypoints[has2],
            collected.gt_conf[has2],
            collected.found[has2],
        ),
        "per_hand_median": per_hand_medians(collected),
        "seconds": round(seconds, 2),
    }


def compare(model: dict[str, Any], fit: dict[str, Any]) -> dict[str, Any]:
    """The model's median distance against the fit's over the hands both found."""
    import numpy as np

    pairs = [
        (m, f)
        for m, f in zip(model["per_hand_median"], fit["per_hand_median"], strict=True)
        if m is not None and f is not None
    ]
    if not pairs:
        return {"hands_both_found": 0}
    m, f = np.asarray(pairs).T
    return {
        "hands_both_found": len(pairs),
        "model_median": round(float(np.median(m)), 4),
        "fit_median": round(float(np.median(f)), 4),
        "ratio": round(float(np.median(m) / max(np.median(f), 1e-9)), 2),
        "target_ratio": 1.5,
    }


def run(args: argparse.Namespace) -> int:
    """Score both mesh sources with labelled boxes and with detection, and write the result."""
    from handmesh.benchmarks.common import machine_info

    machine = machine_info()
    runs = {}
    for source in ("model", "landmark-fit"):
        for detect in (False, True):
            key = f"{source}_{'detect' if detect else 'boxes'}"
            checkpoint = args.checkpoint if source == "model" else None
            runs[key] = score_run(source, checkpoint, args.data, detect, args.search)
            s = runs[key]["scores"]
            print(
                f"{key}: found {s['found']:.0%}, median {s['median_error_hand']:.3f} of the hand's size, "
                f"PCK@0.2 {s['pck_0.2']:.3f}, AUC {s['auc_0_0.2']:.3f} ({runs[key]['seconds']} s)",
                flush=True,
            )
    result = {
        "benchmark": "handmesh bench real2d",
        "data": args.data,
        "checkpoint": args.checkpoint,
        "search": args.search,
        "hand_size": "longer side of the tight box around the hand's labelled 2D keypoints",
        "runs": runs,
        "compare": {
            "boxes": compare(runs["model_boxes"], runs["landmark-fit_boxes"]),
            "detect": compare(runs["model_detect"], runs["landmark-fit_detect"]),
        },
        "machine": machine,
    }
    for protocol, c in result["compare"].items():
        if c.get("hands_both_found"):
            print(f"{protocol}: model / fit median distance on {c['hands_both_found']} hands: {c['ratio']}x")
    write_result(args.json, result)
    return 0
