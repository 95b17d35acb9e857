"""End-to-end pipeline frame rate and per-stage ms on a synthetic video, for each mesh source.

A video of the hand model rendered over a plain background (`handmesh.pipeline.synthetic`) is played
through `HandMeshPipeline` in-process, frame after frame: detection (MediaPipe by default, tracking
between frames), then the mesh source -- "model": crops and the regressor (fastvit_t8 in deploy form,
exported to ONNX and run by ONNX Runtime unless `--checkpoint`/`--onnx` is given; random weights cost
the same as trained ones) and the camera conversion; "landmark-fit": the hand model fitted to the
detector's landmarks (the demo's default without a model file, warm-started per track) -- then
One-Euro smoothing, region rendering (pyrender, EGL) and compositing.
End-to-end FPS = frames / wall-clock seconds after warm-up, in two modes: "sequential" (`process`, one
frame at a time: the cost of a single image) and "pipelined" (`handmesh.pipeline.stream`: detection,
model and rendering of neighbouring frames overlap in three threads, as the webcam demo and video
processing run; its latency per frame is recorded too). Detector and pipeline use the demo's limit of
two hands in every scenario (`MediaPipeDetector` keeps MediaPipe from re-running its palm detector on
every frame while only one hand is in view). Every result records the CPU (model, flags that matter
to ONNX Runtime, load). Writes bench/results/pipeline_cpu.json; its top-level `fps` is one hand at the
requested size, pipelined, per mesh source.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from handmesh.benchmarks.common import write_result
from handmesh.config import add_overrides_option, apply_overrides, split_overrides
from handmesh.pipeline.runtime import LIVE_THREADS, set_stage_threads

RESULTS = Path("bench/results/pipeline_cpu.json")
SOURCES = ("model", "landmark-fit")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench pipeline`."""
    parser.add_argument("--frames", type=int, default=300, help="timed frames per scenario")
    parser.add_argument("--warmup", type=int, default=15, help="untimed frames first")
    parser.add_argument("--size", default="640x480", help="frame size WxH")
    parser.add_argument("--hands", default="1,2", help="scenarios: numbers of hands (comma list)")
    parser.add_argument(
        "--sources",
        default="model,landmark-fit",
        help="mesh sources to time (comma list): model (the regressor), landmark-fit (the default mode)",
    )
    parser.add_argument("--variant", default="fastvit_t8", help="FastViT variant when no model file is given")
    parser.add_argument("--img-size", dest="img_size", type=int, default=224, help="crop size of that model")
    parser.add_argument("--checkpoint", default=None, help="time this checkpoint (torch) instead")
    parser.add_argument("--onnx", default=None, help="time this exported model (ONNX Runtime) instead")
    parser.add_argument(
        "--detector",
        default="mediapipe",
        choices=("mediapipe", "scripted"),
        help="mediapipe (real cost) or scripted (ground-truth boxes, detection not timed)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=LIVE_THREADS,
        help="threads per library (ONNX Runtime, torch, numpy's BLAS, OpenCV, llvmpipe), as the demo's"
        " --threads; 0: their defaults",
    )
    parser.add_argument(
        "--unique-frames",
        dest="unique",
        type=int,
        default=90,
        help="distinct rendered frames, played in a loop (rendering them is not timed)",
    )
    parser.add_argument(
        "--modes",
        default="sequential,pipelined",
        help="comma list of sequential (process per frame) and pipelined (stages overlapped in threads)",
    )
    parser.add_argument(
        "--in-flight",
        dest="in_flight",
        type=int,
        default=3,
        help="pipelined mode: frames inside the pipeline",
    )
    add_overrides_option(
        parser,
        "a PipelineConfig or FitConfig field, e.g. --set max_render_size=160 or --set iters=3 (repeatable)",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="FIELD=VALUE[+FIELD=VALUE]",
        help="also time this variant of the settings (repeatable); every scenario runs the base and each"
        " variant in turn, so their ratios come from one run under the same load",
    )
    parser.add_argument("--json", default=str(RESULTS), help="output JSON")
    parser.add_argument("--note", default="", help="a remark stored with the result (e.g. what else ran)")


def _size(text: str) -> tuple[int, int]:
    from handmesh.errors import HandmeshError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise HandmeshError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    if w < 32 or h < 32 or w % 2 or h % 2:
        raise HandmeshError(f"--size {text!r}: need even sizes of at least 32")
    return w, h


def _runtime(args, workdir: Path):
    """The runtime to time and a description of it."""
    from handmesh.pipeline.predictor import load_runtime
    from handmesh.pipeline.runtime import OnnxRuntimeModel

    if args.onnx:
        return load_runtime(args.onnx, threads=args.threads), f"onnx file {args.onnx}"
    if args.checkpoint:
        runtime = load_runtime(args.checkpoint, "torch", device="cpu")
        return runtime, f"checkpoint {args.checkpoint} (torch deploy)"
    import torch

    from handmesh.export import export_onnx
    from handmesh.models import build_model

    torch.manual_seed(0)
    model = build_model(args.variant, img_size=args.img_size)
    path = export_onnx(model, workdir / f"{args.variant}.onnx")
    return OnnxRuntimeModel(path, threads=args.threads), f"{args.variant} deploy ONNX (random weights)"


def _summary(
    frames: int, wall: float, per_stage: dict[str, list[float]], found: list[int], hands: int
) -> dict:
    return {
        "fps": round(frames / wall, 2),
        "ms_per_frame": round(1000.0 * wall / frames, 2),
        "stage_ms_mean": {k: round(statistics.fmean(v), 3) for k, v in per_stage.items() if v},
        "stage_ms_median": {k: round(statistics.median(v), 3) for k, v in per_stage.items() if v},
        "frames_with_all_hands": round(sum(f >= hands for f in found) / len(found), 3),
        "mean_hands_found": round(statistics.fmean(found), 3),
    }


def _configs(overrides: list[str]):
    """PipelineConfig and FitConfig with `field=value` overrides routed to whichever has the field."""
    from handmesh.fit import FitConfig
    from handmesh.pipeline.pipeline import PipelineConfig

    pipe_set, fit_set = split_overrides(overrides, PipelineConfig, FitConfig)
    return apply_overrides(PipelineConfig(max_hands=2), pipe_set), apply_overrides(FitConfig(), fit_set)


def _estimator(source: str, runtime, fit_config):
    """The mesh source to time."""
    from handmesh.pipeline.estimator import LandmarkFitEstimator, ModelEstimator

    if source == "model":
        return ModelEstimator(runtime)
    return LandmarkFitEstimator(config=fit_config)


def _scenario(source: str, runtime, overrides: list[str], hands: int, size, args, mode: str) -> dict:
    from handmesh.pipeline.detector import MediaPipeDetector
    from handmesh.pipeline.pipeline import STAGES, HandMeshPipeline
    from handmesh.pipeline.stream import process_stream
    from handmesh.pipeline.synthetic import ScriptedDetector, render_hand_video

    video = render_hand_video(max(1, min(args.unique, args.frames + args.warmup)), size=size, hands=hands)
    if args.detector == "mediapipe":
        detector = MediaPipeDetector(max_hands=2, model_complexity=0)
    else:
        detector = ScriptedDetector(video.detections)
    config, fit_config = _configs(overrides)
    # a fresh estimator per scenario: the landmark fit's warm starts belong to one video
    pipe = HandMeshPipeline(_estimator(source, runtime, fit_config), detector, config)
    n = len(video.frames)
    fps_video = 30.0

    def frames(start: int, stop: int):
        return ((video.frames[i % n], video.K, i / fps_video) for i in range(start, stop))

    run = (
        (lambda it: (pipe.process(*f) for f in it))
        if mode == "sequential"
        else (lambda it: process_stream(pipe, it, in_flight=args.in_flight))
    )
    for _ in run(frames(0, args.warmup)):
        pass
    per_stage: dict[str, list[float]] = {s: [] for s in (*STAGES, "total", "latency")}
    found = []
    t0 = time.perf_counter()
    for res in run(frames(args.warmup, args.warmup + args.frames)):
        for k in per_stage:
            if k in res.timings:
                per_stage[k].append(res.timings[k])
        found.append(len(res.hands))
    wall = time.perf_counter() - t0
    return {
        "source": source,
        "hands": hands,
        "mode": mode,
        **_summary(args.frames, wall, per_stage, found, hands),
    }


def run(args: argparse.Namespace) -> int:
    """Run the scenarios and write the JSON."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    size = _size(args.size)
    if args.threads:
        set_stage_threads(args.threads)
    else:
        args.threads = None  # the libraries' own defaults
    scenarios = [int(h) for h in str(args.hands).split(",") if h.strip()]
    modes = [m.strip() for m in str(args.modes).split(",") if m.strip()]
    bad = [m for m in modes if m not in ("sequential", "pipelined")]
    if bad or not modes:
        from handmesh.errors import HandmeshError

        raise HandmeshError(f"--modes: choose from sequential, pipelined (got {args.modes!r})")
    sources = [x.strip() for x in str(args.sources).split(",") if x.strip()]
    if not sources or any(x not in SOURCES for x in sources):
        from handmesh.errors import HandmeshError

        raise HandmeshError(f"--sources: choose from {', '.join(SOURCES)} (got {args.sources!r})")
    variants = {"base": list(args.overrides)}
    for text in args.compare:
        variants[text] = list(args.overrides) + [x for x in text.split("+") if x.strip()]
    for sets in variants.values():
        _configs(sets)  # a bad field fails here, before anything is timed
    with tempfile.TemporaryDirectory(prefix="handmesh-bench-") as tmp:
        runtime, model_desc = _runtime(args, Path(tmp)) if "model" in sources else (None, None)
        results: dict[str, dict] = {}
        compared: dict[str, dict] = {name: {} for name in variants if name != "base"}
        for source in sources:
            for hands in scenarios:
                for mode in modes:
                    key = f"{source}/{hands}_hand" + ("s" if hands > 1 else "") + f"_{mode}"
                    # the variants of one scenario run back to back, under the same background load
                    for name, sets in variants.items():
                        r = _scenario(source, runtime, sets, hands, size, args, mode)
                        if name == "base":
                            results[key] = r
                        else:
                            compared[name][key] = dict(r, fps_ratio_to_base=None)
                        print(
                            f"{source}, {hands} hand(s) {size[0]}x{size[1]} {mode} [{name}]: {r['fps']:.1f} FPS"
                            " end to end; ms per stage "
                            + ", ".join(f"{k} {v:.1f}" for k, v in r["stage_ms_mean"].items())
                        )
                    for name in compared:
                        ratio = compared[name][key]["fps"] / max(results[key]["fps"], 1e-9)
                        compared[name][key]["fps_ratio_to_base"] = round(ratio, 3)
    headline = {}
    for source in sources:
        one = {r["mode"]: r["fps"] for r in results.values() if r["hands"] == 1 and r["source"] == source}
        # the headline is how the demo and video processing run: pipelined when it was measured
        headline[source] = one.get("pipelined", one.get("sequential"))
    out = {
        "fps": headline,
        "size": f"{size[0]}x{size[1]}",
        "frames": args.frames,
        "model": model_desc,
        "config_overrides": list(args.overrides),
        "detector": args.detector
        + (" (model_complexity 0, tracking, max 2 hands)" if args.detector == "mediapipe" else ""),
        "scenarios": results,
    }
    if compared:
        out["compare"] = compared
    if args.note:
        out["note"] = args.note
    write_result(args.json, out, threads=args.threads)
    return 0
