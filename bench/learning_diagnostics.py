"""Why the proof of learning misses its target: short, controlled training runs on synthetic data.

Each experiment trains a fresh fastvit_t8 with the project's own model, losses and loss weights
(`handmesh.train.TrainConfig`) for a few minutes on images held in memory (no loader cost, no
augmentation), with AdamW, a 100-step warm-up and a cosine decay fitted to the budget, then scores
PA-MPJPE on the synthetic evaluation split (eval mode) and on the last 100 training batches
(train mode, as seen). The mean-pose baseline is scored on the same split.

  .venv/bin/python bench/learning_diagnostics.py --data bench/tmp/train_synthetic/synth
  .venv/bin/python bench/learning_diagnostics.py --data DIR --only overfit_64 --minutes 1

- overfit_64: 64 training images seen again and again. Can the model, the losses and the labels be
  fitted at all? (If not, a bug in the model, the losses or the data.)
- fresh: every training image new (or nearly): does anything learned carry over to unseen images?
- joints2d_x10, articulation_only: does reweighting the losses change how fast that happens?
Writes bench/results/learning_diagnostics.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handmesh.benchmarks.common import write_result  # noqa: E402
from handmesh.data.freihand import FreiHANDDataset  # noqa: E402
from handmesh.data.transforms import AugmentConfig  # noqa: E402
from handmesh.evaluate import mean_hand_prediction  # noqa: E402
from handmesh.losses import compute_losses  # noqa: E402
from handmesh.metrics import pa_errors  # noqa: E402
from handmesh.models import build_model  # noqa: E402
from handmesh.models.camera import predict_camera_space  # noqa: E402
from handmesh.train import TrainConfig, freeze_hand_model  # noqa: E402

EXPERIMENTS = {
    "overfit_64": {"images": 64, "batch": 16, "lr": 1e-3, "weights": {}},
    "fresh": {"images": None, "batch": 64, "lr": 2e-3, "weights": {}},
    "joints2d_x10": {"images": None, "batch": 64, "lr": 2e-3, "weights": {"joints2d": 20.0}},
    "articulation_only": {
        "images": None,
        "batch": 64,
        "lr": 2e-3,
        "weights": {"joints3d": 0.0, "vertices": 0.0, "mano_pose": 0.5},
    },
}


def load_split(root: str, split: str, img_size: int, limit: int | None) -> dict[str, torch.Tensor]:
    """A split's samples stacked into tensors (model-ready images, labels)."""
    ds = FreiHANDDataset(root, split=split, cfg=AugmentConfig(img_size=img_size), augment=False, versions=1)
    n = len(ds) if limit is None else min(limit, len(ds))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(n)), batch_size=100, num_workers=2)
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in loader:
        for k, v in batch.items():
            parts.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in parts.items()}


def pa_mpjpe_mm(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """Mean PA-MPJPE in millimetres."""
    return float(pa_errors(pred.double(), gt.double()).mean() * 1000.0)


def run_experiment(name: str, spec: dict, train: dict, val: dict, minutes: float, seed: int) -> dict:
    """Train for `minutes` and score; returns the experiment's figures."""
    torch.manual_seed(seed)
    n = len(train["image"]) if spec["images"] is None else min(spec["images"], len(train["image"]))
    data = {k: v[:n] for k, v in train.items()}
    size = int(data["image"].shape[-1])
    model = build_model("fastvit_t8", img_size=size)
    freeze_hand_model(model)
    weights = {**TrainConfig().loss_weights(), **spec["weights"]}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=spec["lr"], weight_decay=1e-4)
    budget, bs = minutes * 60.0, spec["batch"]
    seen: list[float] = []
    curve: list[tuple[int, float]] = []
    perm, pos, step, t0 = torch.randperm(n), 0, 0, time.perf_counter()
    model.train()
    while (elapsed := time.perf_counter() - t0) < budget:
        lr = (
            spec["lr"]
            * min(1.0, (step + 1) / 100)
            * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * elapsed / budget)))
        )
        for group in opt.param_groups:
            group["lr"] = lr
        if pos + bs > n:
            perm, pos = torch.randperm(n), 0
        idx = perm[pos : pos + bs]
        pos += bs
        batch = {k: v[idx] for k, v in data.items()}
        out = model(batch["image"])
        loss = compute_losses(out, batch, weights, size)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        seen.append(pa_mpjpe_mm(out["joints"].detach(), batch["joints3d"]))
        if step % 50 == 0:
            curve.append((step, round(sum(seen[-50:]) / 50, 2)))
            print(
                f"[{name}] step {step} ({elapsed:.0f} s): PA-MPJPE of training batches {curve[-1][1]:.2f} mm",
                flush=True,
            )
    wall = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        joints, _, _ = predict_camera_space(model, val["image"], val["K"], size)
    result = {
        "images": n,
        "batch": bs,
        "lr": spec["lr"],
        "loss_weights": weights,
        "steps": step,
        "samples_seen": step * bs,
        "epochs": round(step * bs / n, 2),
        "images_per_s": round(step * bs / wall, 1),
        "train_batches_pa_mpjpe_mm_last100": round(sum(seen[-100:]) / max(1, len(seen[-100:])), 2),
        "eval_pa_mpjpe_mm": round(pa_mpjpe_mm(joints, val["joints3d"]), 2),
        "curve_train_batches": curve,
    }
    print(
        f"[{name}] {json.dumps({k: v for k, v in result.items() if k != 'curve_train_batches'})}", flush=True
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a `handmesh synth` folder")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per experiment")
    parser.add_argument("--max-train", type=int, default=None, help="training images to load (default all)")
    parser.add_argument("--only", nargs="*", default=None, choices=list(EXPERIMENTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="bench/results/learning_diagnostics.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    train = load_split(args.data, "train", args.img_size, args.max_train)
    val = load_split(args.data, "evaluation", args.img_size, None)
    base_j, _ = mean_hand_prediction(val["joints3d"].double().numpy())
    baseline = pa_mpjpe_mm(torch.as_tensor(base_j), val["joints3d"])
    print(
        f"{len(train['image'])} training images, {len(val['image'])} evaluation images; mean-pose baseline {baseline:.2f} mm"
    )
    results = {
        name: run_experiment(name, EXPERIMENTS[name], train, val, args.minutes, args.seed)
        for name in (args.only or EXPERIMENTS)
    }
    out = {
        "data": args.data,
        "train_images_available": len(train["image"]),
        "eval_images": len(val["image"]),
        "img_size": args.img_size,
        "minutes_per_experiment": args.minutes,
        "variant": "fastvit_t8 (random init)",
        "baseline_mean_pose_pa_mpjpe_mm": round(baseline, 2),
        "experiments": results,
    }
    write_result(args.json, out, threads=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
