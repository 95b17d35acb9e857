"""int8 vs fp32 ONNX model: latency per crop (interleaved) and PA-MPJPE on held-out synthetic crops.

    handmesh bench quantize                              # bench/results/learn_standard.pt
    handmesh bench quantize --checkpoint my.pt --json bench/results/quantize_mine.json

Exports the checkpoint to fp32 ONNX and to every int8 mode of `handmesh.quantize` (calibrated on stream
images of another seed than the test set), loads each through the pipeline's own `OnnxRuntimeModel` with
the pipeline's thread count, and measures:

- latency per crop at batch 1 and 2: all forms take turns in blocks of calls, round after round, in one
  process, so a slow spell of this shared machine falls on every form; medians and the int8/fp32 ratio;
- accuracy: PA-MPJPE / PA-MPVPE / MPJPE (mm) on the first --eval-images held-out crops of the standard
  synthetic step (the set `handmesh bench learn` scores), with outputs turned into camera-space joints
  the way the pipeline does (`crop_to_camera`), and how far int8 joints move from fp32 ones.

A mode is "worth_it" when it is faster at every timed batch size, changes PA-MPJPE by at most 1 mm, and
moves the hand-frame joints by at most 2 mm on average (PA alignment would hide a flipped global rotation).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from handmesh.benchmarks.common import machine_info, timing_stats, write_result

RESULTS = Path("bench/results")
ACCURACY_BOUND_MM = 1.0  # a PA-MPJPE change above this is not a free speed-up
# Procrustes alignment hides a changed global rotation, so the mean move of the hand-frame joints is
# bounded too: past this the overlay visibly differs from fp32's even when PA-MPJPE does not
JOINT_MOVE_BOUND_MM = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench quantize`."""
    parser.add_argument("--checkpoint", default=str(RESULTS / "learn_standard.pt"), help="model file (.pt)")
    parser.add_argument(
        "--modes", default="int8,int8-static", help="int8 modes to compare with fp32 (comma separated)"
    )
    parser.add_argument("--eval-images", dest="eval_images", type=int, default=500)
    parser.add_argument("--calib-images", dest="calib_images", type=int, default=200)
    parser.add_argument("--batches", default="1,2", help="batch sizes to time (comma separated)")
    parser.add_argument("--threads", type=int, default=None, help="ORT threads (default: the pipeline's)")
    parser.add_argument("--rounds", type=int, default=30, help="rounds in which every form takes a turn")
    parser.add_argument("--runs", type=int, default=10, help="timed calls per form per round")
    parser.add_argument("--json", default=str(RESULTS / "quantize_cpu.json"))


def camera_joints(out: dict, K, img_size: int):
    """Camera-space joints and vertices (float64) of runtime outputs, as `ModelEstimator` places them."""
    import numpy as np

    from handmesh.models.camera import crop_to_camera

    cam = np.asarray(out["cam"], dtype=np.float64)
    j = crop_to_camera(np.asarray(out["joints"], dtype=np.float64), cam, K, img_size)
    v = crop_to_camera(np.asarray(out["vertices"], dtype=np.float64), cam, K, img_size)
    return j, v


def predict(runtime, crops, batch: int = 50) -> dict:
    """A runtime's outputs over all crops, in batches, concatenated."""
    import numpy as np

    outs = [runtime(crops[i : i + batch]) for i in range(0, len(crops), batch)]
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def accuracy(runtimes: dict, data: dict, img_size: int) -> dict[str, dict[str, float]]:
    """Per form: the curve's errors (mm) and, against fp32, how far its joints move (mm)."""
    import numpy as np
    import torch

    from handmesh.benchmarks.learn import errors_mm
    from handmesh.quantize import to_crops

    crops, K = to_crops(data["image"]), data["K"].double().numpy()
    outs = {name: predict(rt, crops) for name, rt in runtimes.items()}
    ref_hand = outs["fp32"]["joints"].astype(np.float64)
    ref_cam, _ = camera_joints(outs["fp32"], K, img_size)
    rows = {}
    for name, out in outs.items():
        j, v = camera_joints(out, K, img_size)
        row: dict[str, float] = errors_mm(torch.from_numpy(j), torch.from_numpy(v), data)
        # hand frame (the model's joints, no translation) apart from the camera-space depth, which a
        # small change of the predicted scale moves far more than the hand's shape
        hand = np.linalg.norm(out["joints"].astype(np.float64) - ref_hand, axis=-1) * 1000
        cam = np.linalg.norm(j - ref_cam, axis=-1) * 1000
        row.update(
            joint_diff_vs_fp32_hand_frame_max_mm=round(float(hand.max()), 3),
            joint_diff_vs_fp32_hand_frame_mean_mm=round(float(hand.mean()), 4),
            joint_diff_vs_fp32_camera_max_mm=round(float(cam.max()), 3),
            joint_diff_vs_fp32_camera_median_mm=round(float(np.median(cam)), 4),
        )
        rows[name] = row
    return rows


def latency(runtimes: dict, crops, batches: list[int], rounds: int, runs: int) -> dict[str, Any]:
    """ms per crop per form and batch size, all forms taking turns in blocks of `runs` calls per round."""
    times = {b: {name: [] for name in runtimes} for b in batches}
    per_round = {b: {name: [] for name in runtimes} for b in batches}
    for b in batches:
        for rt in runtimes.values():
            for _ in range(5):  # warm-up: first calls allocate and pick kernels
                rt(crops[:b])
    for _ in range(rounds):
        for b in batches:
            x = crops[:b]
            for name, rt in runtimes.items():
                rt(x)  # the first call after another form's block wakes this session's threads
                block = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    rt(x)
                    block.append((time.perf_counter() - t0) * 1e3 / b)
                times[b][name] += block
                per_round[b][name].append(statistics.median(block))
    result: dict[str, Any] = {}
    for b in batches:
        row: dict[str, Any] = {name: timing_stats(times[b][name]) for name in runtimes}
        fp32 = row["fp32"]["median_ms"]
        for name in runtimes:
            if name == "fp32":
                continue
            row[f"ratio_{name}_vs_fp32"] = round(row[name]["median_ms"] / fp32, 3)
            # paired by round: the ratio of blocks run seconds apart, robust to slow spells
            paired = [q / f for q, f in zip(per_round[b][name], per_round[b]["fp32"], strict=True)]
            row[f"ratio_{name}_vs_fp32_paired_median"] = round(statistics.median(paired), 3)
        result[f"batch{b}"] = row
    return result


def run(args: argparse.Namespace) -> int:
    """Export, quantize, score and time; write the JSON."""
    from handmesh.benchmarks.learn import step_spec
    from handmesh.data.mix import held_out
    from handmesh.export import export_onnx
    from handmesh.models import load_model
    from handmesh.pipeline.runtime import OnnxRuntimeModel, default_onnx_threads
    from handmesh.quantize import calibration_crops, check_quantize, quantize_onnx, to_crops

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        check_quantize(mode)
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    threads = args.threads or default_onnx_threads()  # OnnxRuntimeModel's own default
    machine = machine_info(threads)
    model = load_model(args.checkpoint)
    img_size = int(model.config.img_size)
    data = held_out(step_spec("standard"), args.eval_images, img_size, seed=0)
    calib = calibration_crops(img_size, args.calib_images)
    with tempfile.TemporaryDirectory(prefix="handmesh-bench-quant-") as tmp:
        paths = {"fp32": export_onnx(model, Path(tmp) / "fp32.onnx")}
        for mode in modes:
            t0 = time.perf_counter()
            paths[mode] = quantize_onnx(paths["fp32"], Path(tmp) / f"{mode}.onnx", mode, crops=calib)
            print(f"{mode}: quantized in {time.perf_counter() - t0:.1f} s", flush=True)
        runtimes = {name: OnnxRuntimeModel(p, threads=threads) for name, p in paths.items()}
        sizes = {name: round(p.stat().st_size / 1e6, 2) for name, p in paths.items()}
        scores = accuracy(runtimes, data, img_size)
        for name, row in scores.items():
            print(f"{name}: {row}", flush=True)
        times = latency(runtimes, to_crops(data["image"][: max(batches)]), batches, args.rounds, args.runs)
    for b, row in times.items():
        print(b, {k: (v["median_ms"] if isinstance(v, dict) else v) for k, v in row.items()}, flush=True)
    decision = {}
    for mode in modes:
        ratios = {b: row[f"ratio_{mode}_vs_fp32"] for b, row in times.items()}
        delta = round(scores[mode]["pa_mpjpe_mm"] - scores["fp32"]["pa_mpjpe_mm"], 3)
        moved = scores[mode]["joint_diff_vs_fp32_hand_frame_mean_mm"]
        decision[mode] = {
            "ratio_vs_fp32": ratios,
            "pa_mpjpe_change_mm": delta,
            "mean_joint_move_mm": moved,
            "worth_it": max(ratios.values()) < 1.0
            and abs(delta) <= ACCURACY_BOUND_MM
            and moved <= JOINT_MOVE_BOUND_MM,
        }
    result = {
        "benchmark": "handmesh bench quantize",
        "checkpoint": str(args.checkpoint),
        "model_config": {"variant": model.config.variant, "img_size": img_size, "head": model.config.head},
        "hand_model_kind": model.hand_model.kind,
        "threads": threads,
        "eval": {"data": step_spec("standard"), "seed": 0, "images": args.eval_images},
        "calibration_images": args.calib_images,
        "onnx_mb": sizes,
        "accuracy": scores,
        "latency_ms_per_crop": times,
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "accuracy_bound_mm": ACCURACY_BOUND_MM,
        "joint_move_bound_mm": JOINT_MOVE_BOUND_MM,
        "decision": decision,
        "machine": machine,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    write_result(args.json, result, threads=threads)
    return 0
