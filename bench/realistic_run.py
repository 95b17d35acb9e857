"""A background training run's learning curve: held-out renders at every epoch, real photos at each snapshot.

    .venv/bin/python bench/realistic_run.py runs/realistic128 --snapshots runs/snapshots \
        --run realistic_keypoint_128px --model-out bench/results/learn_realistic.pt

Reads the run's history from its last.pt (`handmesh train`: validation PA-MPJPE on the stream's held-out
renders after every epoch), adds the mean-pose baseline on the same held-out renders (the first
`--val-images` images of the held-out seed, as the trainer validates), and scores every snapshot model
(copies of last.pt taken as the run went) on the real 2D keypoint set (`handmesh bench real2d`'s
protocol, labelled boxes) beside the landmark fit -- real photos measure only: the committed model is the
run's best.pt, picked by held-out renders. Writes the run into bench/results/learning_curve.json and the
best model (weights only) to `--model-out`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handmesh.benchmarks.common import machine_info  # noqa: E402

REAL = Path("bench/realsets/keypoints")


def real_scores(models: list[Path], data: Path) -> dict[str, Any]:
    """Median 2D distance (share of the hand's size) and PCK of each model and of the landmark fit."""
    try:
        from handmesh.benchmarks.real2d import compare, score_run
    except ImportError:
        return {"not_measured": "handmesh bench real2d is not in this tree"}
    if not (data / "annotations.jsonl").is_file():
        return {"not_measured": f"no labelled photos at {data}"}
    fit = score_run("landmark-fit", None, str(data), False, "fast")
    out: dict[str, Any] = {
        "data": str(data),
        "boxes": "labelled",
        "landmark_fit": fit["scores"],
        "models": {},
    }
    from handmesh.checkpoint import load_checkpoint

    for path in models:
        epoch = load_checkpoint(path).get("extra", {}).get("epoch")
        name = f"epoch {epoch}" if path.name != "best.pt" else f"best.pt (epoch {epoch})"
        run = score_run("model", str(path), str(data), False, "fast")
        out["models"][name] = {"epoch": epoch, "scores": run["scores"], "compare": compare(run, fit)}
        print(
            f"{name}: real median {run['scores']['median_error_hand']:.3f}, {compare(run, fit)}", flush=True
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--run", required=True, help="name of the run in learning_curve.json")
    parser.add_argument("--snapshots", type=Path, default=None, help="folder of last.pt copies to score")
    parser.add_argument("--real", type=Path, default=REAL)
    parser.add_argument("--model-out", default=None, help="write the best model (weights only) here")
    parser.add_argument("--notes", default="", help="a sentence on how the run went (data changes, resumes)")
    parser.add_argument("--json", default="bench/results/learning_curve.json")
    args = parser.parse_args()

    import torch

    from handmesh.benchmarks.learn import TARGET_RATIO, _update_results, baseline, held_out, plot
    from handmesh.models import load_model, save_model
    from handmesh.train.plan import load_resume_point

    torch.set_num_threads(1)
    point = load_resume_point(args.run_dir / "last.pt")
    cfg, model_cfg, state = point.train_config, point.model_config, point.state
    size = int(model_cfg.img_size)
    # the trainer's validation set: the stream's first val_images held-out renders for the run's seed
    base = baseline(held_out("synth:", cfg.val_images, size, cfg.seed))
    curve = []
    for record in state["history"]:
        pa = record["val_pa_mpjpe_mm"]
        curve.append(
            {
                "images_seen": int(record["epoch"]) * int(cfg.epoch_images),
                "epoch": int(record["epoch"]),
                "pa_mpjpe_mm": round(pa, 3),
                "pa_mpvpe_mm": round(record.get("val_pa_mpvpe_mm", float("nan")), 3),
                "train_loss": round(record["train_loss"], 5),
                "images_per_s": round(record["images_per_s"], 2),
                "ratio_to_baseline": round(pa / base["pa_mpjpe_mm"], 4),
            }
        )
    snapshots = sorted(args.snapshots.glob("*.pt"), key=lambda p: p.stat().st_mtime) if args.snapshots else []
    real = real_scores([args.run_dir / "best.pt", *snapshots], args.real)
    for model in real.get("models", {}).values():
        for p in curve:
            if p["epoch"] == model["epoch"]:  # measured only: never used to pick the model
                p["real_median_2d"] = round(model["scores"]["median_error_hand"], 4)
                p["real_pck_0.2"] = round(model["scores"]["pck_0.2"], 4)
                p["real_ratio_to_fit"] = model["compare"].get("ratio")
    best = min(curve, key=lambda p: p["pa_mpjpe_mm"]) if curve else None
    entry = {
        "settings": {
            "command": "torchrun --nproc_per_node 2 train_freihand.py (one thread per process), resumed with --resume",
            "data": cfg.data,
            "variant": model_cfg.variant,
            "head": model_cfg.head,
            "img_size": size,
            "batch_size_per_process": cfg.batch_size,
            "processes": 2,
            "lr": cfg.lr,
            "epoch_images": cfg.epoch_images,
            "time_budget_min": cfg.time_budget_min,
            "val_images": cfg.val_images,
            "init": "random",
            "notes": args.notes,
        },
        "baseline_mean_pose": base,
        "target_ratio": TARGET_RATIO["standard"],
        "curve": curve,
        "best": best,
        "target_met": bool(best and best["ratio_to_baseline"] <= TARGET_RATIO["standard"]),
        "steps": int(state["step"]),
        "train_elapsed_s": round(float(state["elapsed_s"]), 1),
        "real_photos": real,
        "machine": machine_info(threads=1),
    }
    if args.model_out:
        model = load_model(args.run_dir / "best.pt")
        save_model(
            model,
            args.model_out,
            extra={"learning_curve_run": args.run, "trained_on": cfg.data, **(best or {})},
        )
        print(f"wrote {args.model_out}")
    results = _update_results(Path(args.json), args.run, entry)
    plot(results, Path(args.json).with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
