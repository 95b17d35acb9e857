"""Learning curve by images seen: train on the synthetic stream, score a fixed held-out set at milestones.

    handmesh bench learn --run easy_keypoint --step easy --images 50000
    handmesh bench learn --run standard_keypoint --step standard --images 200000 --checkpoint bench/results/learn_standard.pt

Each run trains a fresh model (random initialization unless --set backbone_weights=PATH) on the endless
synthetic stream (`handmesh.data.stream`: every training image is new) with the project's model, losses,
loss weights and optimizer, and at fixed numbers of training images seen scores PA-MPJPE, PA-MPVPE and the
unaligned MPJPE on a held-out synthetic set rendered from another seed (never trained on), next to the
mean-pose baseline on the same set. Counting images instead of minutes makes curves from different
machines comparable. Results accumulate per run name in bench/results/learning_curve.json (rewritten at
every milestone, so a stopped run keeps its points) and are drawn into learning_curve.png.

`--cache DIR[,count=K]` trains on a foreground cache instead (`handmesh synth-cache`, built with the
step's settings: each hand reused on fresh scenes, unaugmented like the stream) and scores the same
held-out stream images: the cost of reusing foregrounds, by images seen.

Steps: "easy" = named poses only, little noise, facing the camera, no occluders/blur/noise; "standard" = `handmesh synth` defaults. Extra synth settings: --synth KEY=VALUE.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from handmesh.benchmarks.common import machine_info, write_result
from handmesh.config import add_overrides_option

RESULTS = Path("bench/results")
STEPS: dict[str, str] = {
    "easy": "appearance=plain,named_pose_prob=1.0,pose_noise=0.05,tilt_deg=0,back_prob=0,occluder_prob=0,"
    "camera.blur_prob=0,camera.noise_prob=0",
    "standard": "",  # the default stream (realistic pictures)
    "plain": "appearance=plain",  # the standard step as it was before realistic pictures
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench learn`."""
    parser.add_argument("--run", required=True, help="name of this run in the results file")
    parser.add_argument("--step", choices=sorted(STEPS), default="standard", help="synthetic data step")
    parser.add_argument(
        "--synth", action="append", default=[], metavar="KEY=VALUE", help="extra synth setting"
    )
    parser.add_argument(
        "--cache",
        default=None,
        metavar="DIR[,count=K]",
        help="train on this foreground cache instead of the stream",
    )
    parser.add_argument("--variant", default="fastvit_t8")
    parser.add_argument("--head", default="keypoint", help="MANO head (handmesh.models.HEADS)")
    parser.add_argument("--img-size", dest="img_size", type=int, default=64)
    parser.add_argument("--images", type=int, default=50_000, help="training images to see in all")
    parser.add_argument(
        "--milestones", default="", help="comma-separated images-seen counts to score at (default: ~10 steps)"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="wall-clock budget: the schedule's end follows the measured speed, a last point is scored at the stop",
    )
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", dest="weight_decay", type=float, default=1e-4)
    parser.add_argument("--warmup-images", dest="warmup_images", type=int, default=3000)
    parser.add_argument("--eval-images", dest="eval_images", type=int, default=400)
    parser.add_argument(
        "--workers", type=int, default=1, help="render workers of the stream (0 = in process)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", choices=("off", "bf16"), default="off", help="bf16 autocast (GPU)")
    parser.add_argument("--checkpoint", default=None, help="write the best model (by PA-MPJPE) here")
    parser.add_argument("--json", default=str(RESULTS / "learning_curve.json"))
    parser.add_argument("--png", default=str(RESULTS / "learning_curve.png"))
    add_overrides_option(parser, "any ModelConfig field of the trained model")


def default_milestones(total: int) -> list[int]:
    """About ten scoring points, denser early where the curve moves fastest."""
    points = {int(total * f) for f in (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)}
    return sorted(p for p in points if p > 0)


def step_spec(step: str, extra: list[str] | tuple[str, ...] = ()) -> str:
    """The --data spec of a data step plus extra synth settings."""
    return "synth:" + ",".join(filter(None, [STEPS[step], *extra]))


def score(model, data: dict, img_size: int, device, batch: int = 100) -> dict[str, float]:
    """PA-MPJPE / PA-MPVPE / unaligned MPJPE (mm) of a model on an in-memory set, in eval mode."""
    import torch

    from handmesh.models.camera import predict_camera_space

    was_training = model.training
    model.eval()
    joints, verts = [], []
    with torch.no_grad():
        for i in range(0, len(data["image"]), batch):
            j, v, _ = predict_camera_space(
                model, data["image"][i : i + batch].to(device), data["K"][i : i + batch].to(device), img_size
            )
            joints.append(j.double().cpu())
            verts.append(v.double().cpu())
    model.train(was_training)
    return errors_mm(torch.cat(joints), torch.cat(verts), data)


def errors_mm(joints, verts, data: dict) -> dict[str, float]:
    """The curve's figures (mm) of camera-space predictions against a set's labels."""
    from handmesh.metrics import pa_errors, point_errors

    gt_j, gt_v = data["joints3d"].double(), data["vertices"].double()
    return {
        "pa_mpjpe_mm": round(float(pa_errors(joints, gt_j).mean() * 1000), 3),
        "pa_mpvpe_mm": round(float(pa_errors(verts, gt_v).mean() * 1000), 3),
        "mpjpe_mm": round(float(point_errors(joints, gt_j).mean() * 1000), 3),
    }


def baseline(data: dict) -> dict[str, float]:
    """The mean-pose baseline on the same set (mean hand, root joint placed on the ground truth's)."""
    import torch

    from handmesh.evaluate import mean_hand_prediction

    j, v = mean_hand_prediction(data["joints3d"].double().numpy())
    return errors_mm(torch.as_tensor(j), torch.as_tensor(v), data)


def _update_results(path: Path, run: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Merge one run into the results file (other runs are kept) and write it."""
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.setdefault("benchmark", "handmesh bench learn")
    results.setdefault("runs", {})[run] = entry
    write_result(path, results)
    return results


def plot(results: dict[str, Any], png: Path) -> None:
    """PA-MPJPE against images seen for every run, each with its mean-pose baseline (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for i, (name, run) in enumerate(sorted(results.get("runs", {}).items())):
        colour = f"C{i}"
        pts = run.get("curve", [])
        if not pts:
            continue
        ax.plot(
            [p["images_seen"] for p in pts], [p["pa_mpjpe_mm"] for p in pts], "o-", color=colour, label=name
        )
        base = run["baseline_mean_pose"]["pa_mpjpe_mm"]
        ax.axhline(base, color=colour, ls="--", lw=0.8)
        ax.axhline(base * run["target_ratio"], color=colour, ls=":", lw=0.8)
    ax.set_xlabel("training images seen")
    ax.set_ylabel("PA-MPJPE on held-out synthetic set (mm)")
    ax.set_title("handmesh learning curves (dashed: mean pose, dotted: target)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    print(f"wrote {png}")


TARGET_RATIO = {"easy": 0.3, "standard": 0.5}


def run(args: argparse.Namespace) -> int:
    """Train, score at the milestones, write the curve (and the best checkpoint)."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ["LP_NUM_THREADS"] = "1"  # 64 px renders: llvmpipe's extra threads only cost hand-offs
    import torch

    from handmesh.config import apply_overrides
    from handmesh.data.mix import EpochSampler, build_training_data, load_stream_batch
    from handmesh.data.stream import HELD_OUT_SEED
    from handmesh.losses import compute_losses
    from handmesh.models import ModelConfig, build_model_from_config, save_model
    from handmesh.optim import WarmupCosine, build_optimizer
    from handmesh.train.config import TrainConfig

    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    spec = step_spec(args.step, args.synth) if args.cache is None else f"cache:{args.cache}"
    # the trainer's own data path: the stream, and its held-out images from another seed
    stream, held_out_set = build_training_data(
        spec, args.img_size, augment=False, val_fraction=0.0, seed=args.seed, val_images=args.eval_images
    )
    t0 = time.perf_counter()
    test_set = load_stream_batch(held_out_set, args.eval_images)
    print(f"held-out set: {args.eval_images} images in {time.perf_counter() - t0:.1f} s", flush=True)
    base = baseline(test_set)

    model_cfg = apply_overrides(
        ModelConfig(variant=args.variant, img_size=args.img_size, head=args.head), args.overrides or []
    )
    model = build_model_from_config(model_cfg).to(device).train()
    for p in model.hand_model.parameters():  # fixed geometry, never trained
        p.requires_grad_(False)
    weights = TrainConfig().loss_weights()
    opt = build_optimizer(model, args.lr, args.weight_decay)
    steps = -(-args.images // args.batch_size)
    sched = WarmupCosine(opt, steps, args.warmup_images // args.batch_size, min_ratio=0.02)
    milestones = sorted(int(m) for m in args.milestones.split(",") if m) or default_milestones(args.images)

    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=args.batch_size,
        sampler=EpochSampler(args.images),
        num_workers=args.workers,
        multiprocessing_context=stream.multiprocessing_context if args.workers > 0 else None,
        persistent_workers=args.workers > 0,
        prefetch_factor=4 if args.workers > 0 else None,
    )
    entry: dict[str, Any] = {
        "settings": {
            "step": args.step,
            "data": spec,
            "head": args.head,
            "variant": args.variant,
            "img_size": args.img_size,
            "images": args.images,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "warmup_images": args.warmup_images,
            "threads": args.threads,
            "minutes": args.minutes,
            "render_workers": args.workers,
            "device": str(device),
            "amp": args.amp,
            "seed": args.seed,
            "eval_seed": args.seed + HELD_OUT_SEED,
            "eval_images": args.eval_images,
            "init": "ImageNet weights" if model_cfg.backbone_weights else "random",
            "overrides": list(args.overrides or []),
        },
        "baseline_mean_pose": base,
        "target_ratio": TARGET_RATIO[args.step],
        "curve": [],
        "machine": machine_info(threads=args.threads),
    }
    json_path, best = Path(args.json), float("inf")
    seen, step, t_start = 0, 0, time.perf_counter()
    print(
        f"mean-pose baseline PA-MPJPE {base['pa_mpjpe_mm']:.2f} mm; training {args.images} images", flush=True
    )
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16")
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with amp:
            out = model(batch["image"])
        losses = compute_losses(out, batch, weights, args.img_size)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        seen += len(batch["image"])
        out_of_time = False
        if args.minutes is not None and step % 20 == 0:
            elapsed = time.perf_counter() - t_start
            out_of_time = elapsed >= args.minutes * 60
            if step * args.batch_size > args.warmup_images:
                # fit the cosine decay's end to the images this budget will see at the measured speed
                left = max(0.0, args.minutes * 60 - elapsed) * seen / elapsed
                sched.set_horizon(min(steps, step + int(left / args.batch_size)))
        if (milestones and seen >= milestones[0]) or out_of_time or seen >= args.images:
            while milestones and seen >= milestones[0]:
                milestones.pop(0)
            point = {
                "images_seen": seen,
                **score(model, test_set, args.img_size, device),
                "train_loss": round(float(losses["total"].detach()), 5),
                "wall_s": round(time.perf_counter() - t_start, 1),
            }
            point["ratio_to_baseline"] = round(point["pa_mpjpe_mm"] / base["pa_mpjpe_mm"], 4)
            entry["curve"].append(point)
            entry["images_per_s"] = round(seen / (time.perf_counter() - t_start), 2)
            if point["pa_mpjpe_mm"] < best:
                best = point["pa_mpjpe_mm"]
                entry["best"] = point
                if args.checkpoint:
                    save_model(model, args.checkpoint, extra={"learning_curve_run": args.run, **point})
            entry["target_met"] = best <= base["pa_mpjpe_mm"] * TARGET_RATIO[args.step]
            print(json.dumps(point), flush=True)
            plot(_update_results(json_path, args.run, entry), Path(args.png))
        if seen >= args.images or out_of_time:
            break
    return 0
