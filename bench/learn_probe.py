"""Memorization probes: how fast the regressor learns a fixed small set, per step, under each setting.

    .venv/bin/python bench/learn_probe.py --cache runs/fg128v2 --hands 64 --init runs/start_epoch22.pt \
        --steps 120 --variant today --variant lr3e-3:lr=0.003 --variant noclip:grad_clip=0 \
        --run probe_from_epoch22

A network that cannot fit 64 pictures quickly is held back by its optimization or its loss, not by its
data. Each variant starts from the same weights (`--init`, a model or training checkpoint; none: random)
and trains on the same `--hands` cached foregrounds, composited once (unaugmented) and then fixed, in
batches of `--batch-size` drawn from a seeded shuffle, at a constant learning rate after a short warm-up.
With `--fresh` it trains on the whole cache instead, augmented as the trainer sees it, new pictures every
step in the same order for every variant (the check of a probe's winner on the real data). At every
`--eval-every` steps it scores PA-MPJPE on those pictures (how fast it memorizes) and on
`--held-out` renders of the stream's held-out seed (what the trainer validates on), each beside the
mean-pose baseline of the same set, and on the held-out renders the median 2D joint distance as a share
of the crop (the model's projected joints: the camera and the pose together). A variant is `NAME:KEY=VALUE,KEY=VALUE`: any `TrainConfig` field the
step uses (lr, weight_decay, grad_clip, loss_*) and the probe's own knobs: `optimizer` (adamw | sgd, SGD
with momentum 0.9), `bn` (train | frozen: batch norm in eval mode, its statistics fixed), `dropout` (the
head's dropout). The first step's gradient norm of every weighted loss term alone is recorded too
(which term steers the shared weights). Writes bench/results/learn_probe.json (one entry per run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handmesh.benchmarks.common import machine_info  # noqa: E402

RESULTS = Path("bench/results/learn_probe.json")
PROBE_KNOBS = {"optimizer": ("adamw", "sgd"), "bn": ("train", "frozen"), "dropout": None}


def parse_variant(text: str) -> tuple[str, list[str], dict[str, str]]:
    """'NAME:K=V,K=V' -> (name, TrainConfig overrides, probe knobs)."""
    name, _, rest = text.partition(":")
    overrides, knobs = [], {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: {item!r} is not KEY=VALUE")
        if key in PROBE_KNOBS:
            allowed = PROBE_KNOBS[key]
            if allowed is not None and value not in allowed:
                raise SystemExit(f"--variant {text!r}: {key} must be one of {', '.join(allowed)}")
            knobs[key] = value
        else:
            overrides.append(item)
    return name.strip(), overrides, knobs


def load_start(init: str | None, img_size: int):
    """The model every variant starts from: a model/training checkpoint, or a fresh keypoint-head t8."""
    from handmesh.models import ModelConfig, build_model_from_config, load_model

    if init:
        return load_model(init)
    return build_model_from_config(ModelConfig(variant="fastvit_t8", img_size=img_size, head="keypoint"))


def set_modes(model, knobs: dict[str, str]) -> None:
    """Training mode, with the probe's batch-norm and dropout knobs applied."""
    import torch

    model.train()
    for m in model.modules():
        if knobs.get("bn") == "frozen" and isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
        if "dropout" in knobs and isinstance(m, torch.nn.Dropout):
            m.p = float(knobs["dropout"])


def make_optimizer(model, cfg, knobs: dict[str, str]):
    """The trainer's AdamW groups, or SGD with momentum over the same groups."""
    import torch

    from handmesh.optim import build_optimizer

    opt = build_optimizer(model, cfg.lr, cfg.weight_decay)
    if knobs.get("optimizer") == "sgd":
        return torch.optim.SGD(opt.param_groups, lr=cfg.lr, momentum=0.9)
    return opt


def term_gradients(model, batch, cfg, img_size: int) -> dict[str, float]:
    """Gradient norm (all trained weights) of each weighted loss term alone, on one batch."""
    import torch

    from handmesh.losses import compute_losses

    params = [p for p in model.parameters() if p.requires_grad]
    out = model(batch["image"])
    losses = compute_losses(out, batch, cfg.loss_weights(), img_size)
    norms = {}
    names = [k for k, w in cfg.loss_weights().items() if w > 0 and k in losses]
    for i, name in enumerate(names):
        grads = torch.autograd.grad(
            cfg.loss_weights()[name] * losses[name],
            params,
            retain_graph=i < len(names) - 1,
            allow_unused=True,
        )
        norms[name] = round(float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None))), 4)
    return norms


def error_2d(model, data: dict, img_size: int) -> float:
    """Median over pictures of the mean 2D joint distance, as a share of the crop (the model's own
    projected joints against the labels: what the real-photo figure measures, there per hand size)."""
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        pred = torch.cat(
            [model(data["image"][i : i + 100])["joints2d"] for i in range(0, len(data["image"]), 100)]
        )
    model.train(was_training)
    dist = (pred.float() - data["joints2d"].float()).norm(dim=-1).mean(dim=1) / img_size
    return round(float(dist.median()), 4)


def load_window(ds, start: int, count: int) -> dict[str, Any]:
    """Samples start ... start+count-1 of an endless dataset, stacked."""
    import torch

    items = [ds[i] for i in range(start, start + count)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def run_variant(args, start_state, data, held, bases, text: str, fresh=None) -> dict[str, Any]:
    """Train one variant from the start weights; its curve on the fixed set and on held-out renders."""
    import torch

    from handmesh.benchmarks.learn import score
    from handmesh.config import apply_overrides
    from handmesh.losses import compute_losses
    from handmesh.optim import WarmupCosine
    from handmesh.train.config import TrainConfig

    name, overrides, knobs = parse_variant(text)
    cfg = apply_overrides(replace(TrainConfig(), lr=args.lr), overrides)
    torch.manual_seed(args.seed)
    model = load_start(args.init, args.img_size)
    model.load_state_dict(start_state)
    for p in model.hand_model.parameters():
        p.requires_grad_(False)
    opt = make_optimizer(model, cfg, knobs)
    sched = WarmupCosine(opt, args.steps, args.warmup_steps, min_ratio=1.0)  # constant after the warm-up
    clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
    weights = cfg.loss_weights()
    n = len(data["image"])
    gen = torch.Generator().manual_seed(args.seed)
    order: list[int] = []
    curve, norms, t0 = [], [], time.perf_counter()

    def point(step: int, loss: float | None) -> None:
        fit, out = score(model, data, args.img_size, "cpu"), score(model, held, args.img_size, "cpu")
        curve.append(
            {
                "step": step,
                "images": step * args.batch_size,
                "fixed_pa_mpjpe_mm": fit["pa_mpjpe_mm"],
                "fixed_ratio": round(fit["pa_mpjpe_mm"] / bases[0], 4),
                "held_out_pa_mpjpe_mm": out["pa_mpjpe_mm"],
                "held_out_ratio": round(out["pa_mpjpe_mm"] / bases[1], 4),
                "held_out_2d": error_2d(model, held, args.img_size),
                "train_loss": None if loss is None else round(loss, 5),
                "grad_norm_median": round(statistics.median(norms), 4) if norms else None,
                "wall_s": round(time.perf_counter() - t0, 1),
            }
        )
        print(f"[{name}] {json.dumps(curve[-1])}", flush=True)

    point(0, None)
    set_modes(model, knobs)
    first = {k: v[: args.batch_size] for k, v in data.items()}
    grads_by_term = term_gradients(model, first, cfg, args.img_size)
    recent: list[float] = []
    for step in range(1, args.steps + 1):
        if fresh is not None:  # new augmented pictures every step, the same sequence for every variant
            batch = load_window(fresh, (step - 1) * args.batch_size, args.batch_size)
        else:
            if len(order) < args.batch_size:
                order += torch.randperm(n, generator=gen).tolist()
            idx, order = order[: args.batch_size], order[args.batch_size :]
            batch = {k: v[idx] for k, v in data.items()}
        losses = compute_losses(model(batch["image"]), batch, weights, args.img_size)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)))
        opt.step()
        sched.step()
        recent.append(float(losses["total"].detach()))
        if step % args.eval_every == 0 or step == args.steps:
            point(step, statistics.mean(recent))
            recent = []
            set_modes(model, knobs)
    return {
        "name": name,
        "overrides": overrides,
        "knobs": knobs,
        "lr": cfg.lr,
        "grad_clip": cfg.grad_clip,
        "weight_decay": cfg.weight_decay,
        "first_step_gradient_norm_by_term": grads_by_term,
        "curve": curve,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, help="foreground cache folder (handmesh synth-cache)")
    parser.add_argument("--hands", type=int, default=64, help="fixed pictures: the cache's first N hands")
    parser.add_argument("--held-out", dest="held_out", type=int, default=100)
    parser.add_argument("--init", default=None, help="start weights (model or training checkpoint)")
    parser.add_argument("--img-size", dest="img_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate unless a variant sets lr")
    parser.add_argument("--warmup-steps", dest="warmup_steps", type=int, default=5)
    parser.add_argument("--eval-every", dest="eval_every", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="train on the whole cache, augmented, new pictures every step (the fixed set is still scored)",
    )
    parser.add_argument("--variant", action="append", required=True, help="NAME:KEY=VALUE,... (repeatable)")
    parser.add_argument("--run", required=True, help="name of this run in the results file")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()

    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    import torch

    from handmesh.benchmarks.learn import baseline
    from handmesh.data.mix import build_training_data, load_stream_batch

    torch.set_num_threads(1)
    fixed_set, held_set = build_training_data(
        f"cache:{args.cache},count={args.hands}", args.img_size, False, 0.0, args.seed, args.held_out
    )
    data, held = load_stream_batch(fixed_set, args.hands), load_stream_batch(held_set, args.held_out)
    fresh = None
    if args.fresh:  # the real training data instead: the whole cache, augmented as the trainer sees it
        fresh, _ = build_training_data(f"cache:{args.cache}", args.img_size, True, 0.0, args.seed, 1)
    bases = (baseline(data)["pa_mpjpe_mm"], baseline(held)["pa_mpjpe_mm"])
    print(f"mean pose: fixed set {bases[0]:.2f} mm, held-out {bases[1]:.2f} mm", flush=True)
    start_state = {k: v.clone() for k, v in load_start(args.init, args.img_size).state_dict().items()}
    entry: dict[str, Any] = {
        "settings": {
            k: getattr(args, k)
            for k in ("cache", "hands", "held_out", "init", "img_size", "steps", "batch_size", "lr", "fresh")
        }
        | {"warmup_steps": args.warmup_steps, "seed": args.seed, "threads": 1},
        "baseline_mean_pose_mm": {"fixed": bases[0], "held_out": bases[1]},
        "variants": [],
        "machine": machine_info(threads=1),
    }
    for text in args.variant:
        entry["variants"].append(run_variant(args, start_state, data, held, bases, text, fresh))
        results = json.loads(args.json.read_text()) if args.json.is_file() else {}
        results[args.run] = entry
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
