"""Proof of learning: synthesize FreiHAND-layout data, train on this machine for a time budget, and score
the trained model against the mean-pose baseline on the synthetic evaluation split.

Steps: `handmesh synth` (--train / --eval images; reused when the folder already holds the same
request), the mean-pose baseline (`handmesh evaluate --baseline mean`), training with a wall-clock
budget (the cosine decay is fitted to the budget as the run measures its own speed), evaluation of
best.pt, then `bench/results/train_synthetic.json` and PNG curves drawn from the TensorBoard events.
Target: trained PA-MPJPE below half the baseline's.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from handmesh.benchmarks.common import write_result
from handmesh.config import add_config_options, add_overrides_option, config_from_args

RESULTS = Path("bench/results")
NAME = "train_synthetic"


def bench_configs() -> tuple[Any, Any]:
    """The benchmark's TrainConfig and ModelConfig defaults: a CPU-sized run (the 224 px synthetic images
    are resized to 64 px: about 4x the steps of 128 px on a CPU); its options change them."""
    from handmesh.models import ModelConfig
    from handmesh.train.config import TrainConfig

    train_cfg = TrainConfig(epochs=10_000, batch_size=16, lr=1e-3, warmup_epochs=0.5, workers=1, log_every=10)
    return train_cfg, ModelConfig(img_size=64)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench train`."""
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall-clock budget")
    parser.add_argument("--train", type=int, default=2000, help="synthetic training images")
    parser.add_argument("--eval", type=int, default=200, help="synthetic evaluation images")
    parser.add_argument("--work", default="bench/tmp/train_synthetic", help="data and run folder")
    parser.add_argument("--results", default=str(RESULTS), help="where the JSON and PNGs go")
    train_cfg, model_cfg = bench_configs()
    add_config_options(parser, model_cfg, only=("variant", "img_size"))
    add_config_options(parser, train_cfg, only=("batch_size", "lr", "workers", "seed"))
    parser.add_argument("--synth-workers", dest="synth_workers", type=int, default=2)
    add_overrides_option(parser, "any other TrainConfig field")


def ensure_synth(out: Path, train: int, eval_: int, seed: int, workers: int) -> dict[str, Any]:
    """Synthesize the data unless `out` already holds exactly this request; returns timing figures."""
    from handmesh.data.freihand import synth_info
    from handmesh.data.synth import SynthConfig, synthesize

    cfg = SynthConfig(train=train, eval=eval_, seed=seed, size=224, workers=workers)
    info = synth_info(out)
    same = info.get("config", {})
    if same and all(same.get(k) == getattr(cfg, k) for k in ("train", "eval", "seed", "size", "versions")):
        return {"reused": True}
    return {"reused": False, **synthesize(cfg, out)}


def read_curves(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of a TensorBoard folder as (step, value) lists."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def plot_curves(curves: dict[str, list[tuple[int, float]]], baseline: dict[str, float], path: Path) -> Path:
    """Training loss, learning rate and validation PA errors (with the baseline) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    loss = curves.get("train/loss_total", [])
    if loss:
        axes[0].plot(*zip(*loss, strict=True), lw=0.8, color="tab:blue")
    axes[0].set(title="training loss (weighted sum)", xlabel="step", yscale="log")
    for tag, label, colour in (
        ("val/pa_mpjpe_mm", "PA-MPJPE", "tab:red"),
        ("val/pa_mpvpe_mm", "PA-MPVPE", "tab:orange"),
    ):
        series = curves.get(tag, [])
        if series:
            axes[1].plot(*zip(*series, strict=True), marker="o", ms=3, color=colour, label=f"trained {label}")
        key = "pa_mpjpe_mm" if "mpjpe" in tag else "pa_mpvpe_mm"
        if key in baseline:
            axes[1].axhline(baseline[key], ls="--", color=colour, alpha=0.6, label=f"mean-pose {label}")
    axes[1].set(title="validation error (mm, Procrustes-aligned)", xlabel="step")
    axes[1].legend(fontsize=8)
    lr = curves.get("train/lr", [])
    if lr:
        axes[2].plot(*zip(*lr, strict=True), color="tab:green")
    axes[2].set(title="learning rate", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pick(scores: dict[str, Any]) -> dict[str, Any]:
    keys = ("pa_mpjpe_mm", "pa_mpvpe_mm", "pa_f5", "pa_f15", "mpjpe_mm", "mpvpe_mm", "num_samples")
    return {k: scores[k] for k in keys if k in scores}


def run(args: argparse.Namespace) -> int:
    """Run the whole proof and write the results."""
    import torch

    from handmesh import config as cfgutil
    from handmesh.evaluate import evaluate
    from handmesh.evaluation.config import EvaluateConfig
    from handmesh.train import train

    t0 = time.perf_counter()
    work, results = Path(args.work), Path(args.results)
    data, run_dir = work / "synth", work / "run"
    train_cfg, model_cfg = bench_configs()
    model_cfg = config_from_args(model_cfg, args)
    cfg = replace(
        config_from_args(train_cfg, args), data=str(data), out=str(run_dir), time_budget_min=args.minutes
    )
    cfg = cfgutil.apply_overrides(cfg, args.overrides)
    synth = ensure_synth(data, args.train, args.eval, cfg.seed, args.synth_workers)
    print(
        f"[bench train] data ready in {data} ({'reused' if synth['reused'] else 'synthesized'})", flush=True
    )

    baseline = evaluate(None, data, work / "baseline", EvaluateConfig(baseline="mean"))
    print(f"[bench train] mean-pose baseline PA-MPJPE {baseline['pa_mpjpe_mm']:.2f} mm", flush=True)

    if run_dir.exists():  # a fresh run each time: the budget and the schedule start from zero
        import shutil

        shutil.rmtree(run_dir)
    summary = train(cfg, model_cfg)
    ckpt = run_dir / "best.pt"
    trained = evaluate(ckpt, data, work / "trained", EvaluateConfig(workers=cfg.workers), progress=False)
    print(f"[bench train] trained PA-MPJPE {trained['pa_mpjpe_mm']:.2f} mm", flush=True)

    curves = read_curves(run_dir / "tb")
    png = plot_curves(curves, baseline, results / f"{NAME}_curves.png")
    ratio = trained["pa_mpjpe_mm"] / baseline["pa_mpjpe_mm"]
    record = {
        "benchmark": "handmesh bench train",
        "variant": model_cfg.variant,
        "img_size": model_cfg.img_size,
        "train_images": args.train,
        "eval_images": args.eval,
        "train_minutes_budget": args.minutes,
        "epochs": summary["epochs"],
        "steps": summary["steps"],
        "train_images_per_s": summary["images_per_s"],
        "train_elapsed_s": summary["train_elapsed_s"],
        "wall_s": time.perf_counter() - t0,
        "baseline_mean_pose": _pick(baseline),
        "trained": _pick(trained),
        "trained_over_baseline_pa_mpjpe": ratio,
        "target_met": bool(ratio < 0.5),
        "synth": synth,
        "train_config": cfgutil.to_dict(cfg),
        "curves_png": str(png),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    write_result(results / f"{NAME}.json", record, indent=2)
    print(
        json.dumps(
            {
                k: record[k]
                for k in (
                    "baseline_mean_pose",
                    "trained",
                    "trained_over_baseline_pa_mpjpe",
                    "target_met",
                    "epochs",
                    "train_images_per_s",
                    "wall_s",
                )
            },
            indent=2,
        )
    )
    print(f"[bench train] wrote {png}")
    return 0
