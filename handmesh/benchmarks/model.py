"""Regressor latency per FastViT variant: train vs fused forms, torch vs ONNX Runtime, params, GFLOPs.

CPU (default): batch 1 at the model's input size, in one process, after warm-up; each form is timed
in blocks of consecutive calls, and the blocks of all forms take turns over ``--rounds`` rounds, so a
slow spell of a shared machine falls on every form instead of one. Blocks, not single calls, take turns
because ONNX Runtime's and OpenMP's worker threads spin-wait after each call: on 2 cores the next
form's threads would fight the previous form's spinning ones; a pause between blocks lets them go
idle. Forms: the train form in torch (eval mode), the deploy (fused) form in torch, the deploy form
with channels_last memory format, and the deploy form exported to ONNX and run by ONNX Runtime with
``--threads`` intra-op threads. Every form includes the head and the hand-model layer. GFLOPs are
counted with ``torch.utils.flop_counter`` on the deploy form (one multiply-add = 2 FLOPs).

GPU (``--device cuda``): batch ``--batch`` (64) throughput in images/s of the train and deploy forms
under fp16 and bf16 autocast, written to bench/results/model_gpu.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from handmesh.benchmarks.common import machine_info, timing_stats, write_result

DEFAULT_VARIANTS = (
    "fastvit_t8",
    "fastvit_t12",
    "fastvit_s12",
    "fastvit_sa12",
    "fastvit_sa24",
    "fastvit_sa36",
    "fastvit_ma36",
)
RESULTS_DIR = Path("bench/results")
CPU_FORMS = ("train_torch", "deploy_torch", "deploy_torch_cl", "deploy_ort")
# Timed beside the forms as a floor: the fused encoder alone in ONNX Runtime (no head, no hand model).
ENCODER_FORM = "encoder_only_ort"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench model`."""
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(DEFAULT_VARIANTS),
        help="FastViT variants (space or comma separated; default: t8 t12 s12 sa12 sa24 sa36 ma36)",
    )
    parser.add_argument(
        "--heads",
        default="keypoint",
        help="MANO heads to time per variant (comma separated, handmesh.models.HEADS; e.g. keypoint,pooled)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--runs", type=int, default=30, help="timed calls per form (median reported)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per form first")
    parser.add_argument(
        "--rounds", type=int, default=5, help="CPU: the forms' blocks take turns this many times"
    )
    parser.add_argument("--img-size", dest="img_size", type=int, default=224)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the GPU throughput run")
    parser.add_argument(
        "--json", default=None, help="output JSON (default bench/results/model_{cpu,gpu}.json)"
    )


def _variants(items: list[str]) -> list[str]:
    names = [v.strip() for item in items for v in item.split(",") if v.strip()]
    return [v if v.startswith("fastvit_") else f"fastvit_{v}" for v in names]


def count_gflops(model: Any, x: Any) -> float:
    """GFLOPs of one forward pass (torch.utils.flop_counter: a multiply-add counts 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() / 1e9


def _cpu_forms(
    variant: str, head: str, img_size: int, threads: int, tmp: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Callables per form (each runs one batch-1 forward) and static facts about the variant."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from handmesh.export import export_onnx
    from handmesh.models import build_model, reparameterize

    torch.manual_seed(0)
    model = build_model(variant, img_size=img_size, head=head).eval()
    deploy = reparameterize(model)
    deploy_cl = reparameterize(model).to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, img_size, img_size)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    onnx_path = export_onnx(model, tmp / f"{variant}_{head}.onnx", verify=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    feed = {"image": x.numpy()}
    enc_path = tmp / f"{variant}_encoder.onnx"
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(deploy.encoder, x, str(enc_path), input_names=["x"], opset_version=17, dynamo=False)
    enc_sess = ort.InferenceSession(str(enc_path), opts, providers=["CPUExecutionProvider"])
    enc_feed = {"x": ((x - deploy.pixel_mean) / deploy.pixel_std).numpy()}
    with torch.inference_mode():
        ref = model(x)["vertices"]
        fused_diff = float((deploy(x)["vertices"] - ref).abs().max())
    ort_diff = float(np.abs(sess.run(["vertices"], feed)[0] - ref.numpy()).max())
    facts = {
        "variant": variant,
        "head": head,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "params_deploy_m": round(sum(p.numel() for p in deploy.parameters()) / 1e6, 3),
        "encoder_params_m": round(sum(p.numel() for p in model.encoder.parameters()) / 1e6, 3),
        "gflops": round(count_gflops(deploy, x), 3),
        "gflops_train_form": round(count_gflops(model, x), 3),
        "max_abs_diff_fused_m": fused_diff,
        "max_abs_diff_ort_m": ort_diff,
        "onnx_mb": round(onnx_path.stat().st_size / 1e6, 2),
        "hand_model_kind": model.hand_model.kind,
    }

    def infer(m, inp):
        def call():
            with torch.inference_mode():
                m(inp)

        return call

    forms = {
        "train_torch": infer(model, x),
        "deploy_torch": infer(deploy, x),
        "deploy_torch_cl": infer(deploy_cl, x_cl),
        "deploy_ort": lambda: sess.run(None, feed),
        ENCODER_FORM: lambda: enc_sess.run(None, enc_feed),
    }
    return forms, facts


def bench_cpu(
    variants: list[str],
    img_size: int,
    threads: int,
    runs: int,
    warmup: int,
    rounds: int = 5,
    heads: tuple[str, ...] = ("keypoint",),
) -> dict[str, Any]:
    """Time every form of every variant on the CPU; returns the JSON-ready result."""
    import torch

    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="handmesh-bench-") as tmp:
        # every form of every (variant, head) is built first, then all take turns round after round, so a
        # slow spell of a shared machine does not land on one form or one head
        jobs = [_cpu_forms(v, h, img_size, threads, Path(tmp)) for v in variants for h in heads]
        times = [{name: [] for name in forms} for forms, _ in jobs]
        for forms, _ in jobs:
            for call in forms.values():
                for _ in range(warmup):
                    call()
        n_rounds = max(1, min(rounds, runs))
        for r in range(n_rounds):
            for (forms, _), job_times in zip(jobs, times, strict=True):
                for name, call in forms.items():
                    time.sleep(0.3)  # let the previous form's spinning worker threads go idle
                    call()  # the first call after a pause pays for waking the threads up
                    for _ in range(runs // n_rounds + (r < runs % n_rounds)):
                        t0 = time.perf_counter()
                        call()
                        job_times[name].append((time.perf_counter() - t0) * 1e3)
        for (forms, facts), job_times in zip(jobs, times, strict=True):
            row = dict(facts)
            for name in forms:
                row[name] = timing_stats(job_times[name])
            row["speedup_ort_vs_train"] = round(
                row["train_torch"]["median_ms"] / row["deploy_ort"]["median_ms"], 2
            )
            row["speedup_deploy_vs_train_torch"] = round(
                row["train_torch"]["median_ms"] / row["deploy_torch"]["median_ms"], 2
            )
            rows.append(row)
            print(_row_line(row), flush=True)
    return {
        "device": "cpu",
        "batch": 1,
        "img_size": img_size,
        "threads": threads,
        "runs": runs,
        "rounds": max(1, min(rounds, runs)),
        "warmup": warmup,
        "machine": machine_info(threads),
        "results": rows,
    }


def bench_gpu(variants: list[str], img_size: int, batch: int, runs: int, warmup: int) -> dict[str, Any]:
    """Batch throughput (images/s) of train and deploy forms under fp16/bf16 autocast on CUDA."""
    import torch

    from handmesh.models import build_model, reparameterize

    if not torch.cuda.is_available():
        from handmesh.errors import HandmeshError

        raise HandmeshError("--device cuda: no CUDA device is available")
    dev = torch.device("cuda")
    rows = []
    for variant in variants:
        torch.manual_seed(0)
        model = build_model(variant, img_size=img_size).eval().to(dev)
        deploy = reparameterize(model).to(dev)
        x = torch.rand(batch, 3, img_size, img_size, device=dev)
        row: dict[str, Any] = {"variant": variant}
        for form, m in (("train", model), ("deploy", deploy)):
            for dtype_name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
                with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
                    for _ in range(warmup):
                        m(x)
                    torch.cuda.synchronize()
                    times = []
                    for _ in range(runs):
                        t0 = time.perf_counter()
                        m(x)
                        torch.cuda.synchronize()
                        times.append(time.perf_counter() - t0)
                row[f"{form}_{dtype_name}_images_per_s"] = round(batch / statistics.median(times), 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {
        "device": "cuda",
        "batch": batch,
        "img_size": img_size,
        "runs": runs,
        "warmup": warmup,
        "machine": machine_info(),
        "results": rows,
    }


def _row_line(row: dict[str, Any]) -> str:
    forms = " ".join(f"{f}={row[f]['median_ms']:.2f}ms" for f in (*CPU_FORMS, ENCODER_FORM) if f in row)
    return f"{row['variant']} ({row['head']} head): {forms} (ORT {row['speedup_ort_vs_train']:.2f}x vs train torch)"


def out_path(args: argparse.Namespace) -> Path:
    """Where the result goes (--json, else bench/results/model_cpu.json or model_gpu.json)."""
    return Path(args.json) if args.json else RESULTS_DIR / f"model_{args.device.replace('cuda', 'gpu')}.json"


def _merge_rows(path: Path, result: dict[str, Any]) -> list[dict[str, Any]]:
    """The new rows plus the file's rows of other (variant, head) pairs measured with the same settings, so
    timing one head or variant does not drop the others' figures (rows without a head are the pooled
    head's: the only head when they were written)."""
    if not path.is_file():
        return result["results"]
    old = json.loads(path.read_text())
    if (old.get("img_size"), old.get("threads")) != (result["img_size"], result["threads"]):
        return result["results"]
    new = {(r["variant"], r["head"]) for r in result["results"]}
    kept = [
        {
            **r,
            "head": r.get("head", "pooled"),
            "measured": (old.get("machine") or old.get("environment") or {}).get("date", "earlier run"),
        }
        for r in old.get("results", [])
        if (r["variant"], r.get("head", "pooled")) not in new
    ]
    return result["results"] + kept


def head_cost(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per variant timed with several heads: each head's deploy ONNX Runtime latency over the pooled head's
    (measured in the same run, the forms taking turns)."""
    pooled = {r["variant"]: r["deploy_ort"]["median_ms"] for r in rows if r.get("head") == "pooled"}
    return {
        f"{r['variant']}:{r['head']}_over_pooled": round(
            r["deploy_ort"]["median_ms"] / pooled[r["variant"]], 3
        )
        for r in rows
        if r.get("head") != "pooled" and r["variant"] in pooled
    }


def markdown_table(result: dict[str, Any]) -> str:
    """The CPU result as a markdown table (median ms, batch 1)."""
    head = (
        "| variant | head | params (M) | GFLOPs | train torch (ms) | deploy torch (ms) | deploy channels_last (ms) "
        "| deploy ONNX Runtime (ms) | ORT vs train | encoder alone, ORT (ms) |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in result["results"]:
        encoder = f"{r[ENCODER_FORM]['median_ms']:.1f}" if ENCODER_FORM in r else ""
        lines.append(
            f"| {r['variant'].removeprefix('fastvit_')} | {r.get('head', 'pooled')} | {r['params_m']:.1f} "
            f"| {r['gflops']:.2f} "
            f"| {r['train_torch']['median_ms']:.1f} | {r['deploy_torch']['median_ms']:.1f} "
            f"| {r['deploy_torch_cl']['median_ms']:.1f} | {r['deploy_ort']['median_ms']:.1f} "
            f"| {r['speedup_ort_vs_train']:.2f}x | {encoder} |"
        )
    env = result["machine"]
    lines.append(
        f"\n{env['cpu']}, {result['threads']} threads, batch 1, {result['img_size']} px, median of "
        f"{result['runs']} runs; torch {env['torch']}, timm {env['timm']}, onnxruntime {env['onnxruntime']}."
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Entry point of `handmesh bench model`."""
    from handmesh.errors import HandmeshError
    from handmesh.models import fastvit_variants

    variants = _variants(args.variants)
    unknown = [v for v in variants if v not in fastvit_variants()]
    if unknown:
        raise HandmeshError(f"unknown variant(s) {unknown}; choose from {', '.join(fastvit_variants())}")
    if args.runs < 1 or args.warmup < 0:
        raise HandmeshError("--runs must be >= 1 and --warmup >= 0")
    if args.device == "cuda":
        result = bench_gpu(variants, args.img_size, args.batch, args.runs, args.warmup)
    else:
        heads = tuple(h.strip() for h in args.heads.split(",") if h.strip())
        result = bench_cpu(variants, args.img_size, args.threads, args.runs, args.warmup, args.rounds, heads)
        result["results"] = _merge_rows(out_path(args), result)
        result["head_cost"] = head_cost(result["results"])
    out = out_path(args)
    if args.device == "cpu":
        print(markdown_table(result))
    write_result(out, result)
    return 0
