"""Training images per second on the endless stream against the foreground cache.

    handmesh synth-cache --out runs/fg128 --count 1500 --size 128
    handmesh bench cache --cache runs/fg128 --img-size 128

Both sources go through the trainer's own data path (`build_training_data`, augmented as in training):
`--data synth:` renders every hand in the loader worker; `--data cache:DIR` composites a cached hand onto
a cached or fresh scene. Two figures per source, in alternating rounds so machine load hits both alike:
the loader's CPU milliseconds per image (in this process, one thread: what the data costs), and training
images/s of the project's model (fastvit_t8 keypoint head, one torch thread, `--workers` loader
processes): what a run gets. The learning curves of both by images seen are `handmesh bench learn` runs
(`--cache` trains on the cache), in bench/results/learning_curve.json.

The training step's own CPU time per image is timed too (in this process: the loader runs in its workers),
so the result also says where the cache's speed-up holds, from CPU times alone (load-independent): images
per CPU-second of loader plus step on this CPU, the loader-bound limit (a machine whose model step costs
the host no CPU, e.g. a GPU fed by CPU loader workers: the loader's ratio), and the step cost per image
below which the training speed-up reaches the target. These are projections from the measured parts,
labelled as such in the result, not timings of such a machine.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from handmesh.benchmarks.common import write_result

RESULT = Path("bench/results/cache_cpu.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench cache`."""
    parser.add_argument("--cache", required=True, help="cache folder (handmesh synth-cache)")
    parser.add_argument("--img-size", dest="img_size", type=int, default=128)
    parser.add_argument("--images", type=int, default=40, help="images per loader round and source")
    parser.add_argument("--batches", type=int, default=4, help="timed training batches per round and source")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="loader processes in the training figure")
    parser.add_argument("--json", default=str(RESULT))


def loader_ms(dataset, start: int, count: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per sample of `count` samples from index `start`, in this process."""
    c0, w0 = time.process_time(), time.perf_counter()
    for i in range(start, start + count):
        dataset[i]
    return 1000 * (time.process_time() - c0) / count, 1000 * (time.perf_counter() - w0) / count


def training_rate(model, loader, batches: int, img_size: int) -> tuple[float, float]:
    """(training images/s, the step's CPU ms per image in this process) over `batches` steps after one
    untimed step (the loader's start-up)."""
    from handmesh.losses import compute_losses
    from handmesh.optim import build_optimizer
    from handmesh.train.config import TrainConfig

    weights = TrainConfig().loss_weights()
    opt = build_optimizer(model, 1e-4, 1e-4)
    it = iter(loader)
    t0, images, step_cpu = None, 0, 0.0
    for step in range(batches + 1):
        batch = next(it)
        c0 = time.process_time()
        out = model(batch["image"])
        losses = compute_losses(out, batch, weights, img_size)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        if step == 0:
            t0 = time.perf_counter()
        else:
            images += len(batch["image"])
            step_cpu += time.process_time() - c0
    return images / (time.perf_counter() - t0), 1000 * step_cpu / images


def projection(loader_cpu_ms: dict[str, float], step_cpu_ms: float, target: float) -> dict[str, float]:
    """Where the cache's training speed-up holds, from CPU ms per image alone: images per CPU-second of
    loader + step for each source, their ratio on this CPU, the ratio when the step costs the host nothing
    (loader-bound), and the step cost per image at and below which the ratio reaches `target`."""
    stream, cache = loader_cpu_ms["stream"], loader_cpu_ms["cache"]
    per_cpu_s = {n: 1000 / (ms + step_cpu_ms) for n, ms in loader_cpu_ms.items()}
    return {
        "images_per_cpu_s": {n: round(v, 3) for n, v in per_cpu_s.items()},
        "cpu_speedup": round(per_cpu_s["cache"] / per_cpu_s["stream"], 3),
        "loader_bound_speedup": round(stream / cache, 2),
        # (stream + s) / (cache + s) >= target  <=>  s <= (stream - target * cache) / (target - 1)
        "target_holds_below_step_cpu_ms": round(max(0.0, (stream - target * cache) / (target - 1)), 2),
    }


def run(args: argparse.Namespace) -> int:
    """Measure both sources in alternating rounds and write the result."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ["LP_NUM_THREADS"] = "1"
    import json

    import numpy as np
    import torch

    from handmesh.data.cache import read_cache_info
    from handmesh.data.mix import EpochSampler, build_training_data
    from handmesh.models import ModelConfig, build_model_from_config

    torch.set_num_threads(1)
    info = read_cache_info(args.cache)
    specs = {"stream": "synth:", "cache": f"cache:{args.cache}"}
    sets = {
        name: build_training_data(spec, args.img_size, True, 0.0, 0, 1)[0] for name, spec in specs.items()
    }
    model = build_model_from_config(
        ModelConfig(variant="fastvit_t8", img_size=args.img_size, head="keypoint")
    )
    for p in model.hand_model.parameters():
        p.requires_grad_(False)
    model.train()
    per_round = args.batches + 1
    loaders = {
        name: torch.utils.data.DataLoader(
            ds,
            batch_size=args.batch_size,
            sampler=EpochSampler(args.batch_size * per_round * args.rounds),
            num_workers=args.workers,
            multiprocessing_context=ds.multiprocessing_context if args.workers else None,
            persistent_workers=args.workers > 0,
        )
        for name, ds in sets.items()
    }
    iters = {name: iter(loader) for name, loader in loaders.items()}
    figures: dict[str, dict[str, list[float]]] = {
        n: {"cpu_ms": [], "wall_ms": [], "train": [], "step_cpu_ms": []} for n in specs
    }
    for name in specs:  # warm-up: renderer, memory maps, first scenes
        loader_ms(sets[name], 10**6, 2)
    for r in range(args.rounds):
        for name in specs:
            cpu, wall = loader_ms(sets[name], 10**6 + r * args.images, args.images)
            figures[name]["cpu_ms"].append(round(cpu, 2))
            figures[name]["wall_ms"].append(round(wall, 2))
            rate, step = training_rate(model, _Batches(iters[name], per_round), args.batches, args.img_size)
            figures[name]["train"].append(round(rate, 3))
            figures[name]["step_cpu_ms"].append(round(step, 2))
            print(
                f"round {r} {name}: loader {cpu:.1f} ms CPU/image, training {rate:.2f} images/s "
                f"(step {step:.0f} ms CPU/image)",
                flush=True,
            )
    med = {n: {k: float(np.median(v)) for k, v in f.items()} for n, f in figures.items()}
    loader_cpu = {n: round(m["cpu_ms"], 2) for n, m in med.items()}
    # the step is the same model on the same image size for both sources: one figure from all rounds
    step_cpu = float(np.median([s for f in figures.values() for s in f["step_cpu_ms"]]))
    target = 4.0
    result: dict[str, Any] = {
        "benchmark": "handmesh bench cache",
        "img_size": args.img_size,
        "cache": {k: info[k] for k in ("count", "size", "backgrounds")},
        "model": "fastvit_t8 keypoint head, 1 torch thread",
        "batch_size": args.batch_size,
        "loader_workers": args.workers,
        "rounds": figures,
        "loader_cpu_ms_per_image": loader_cpu,
        "loader_speedup": round(med["stream"]["cpu_ms"] / med["cache"]["cpu_ms"], 2),
        "training_images_per_s": {n: round(m["train"], 3) for n, m in med.items()},
        "training_speedup": round(med["cache"]["train"] / med["stream"]["train"], 3),
        "target_speedup": target,
        "step_cpu_ms_per_image": round(step_cpu, 2),
        "projection": {
            "basis": "CPU ms per image of the loader and of the training step (one thread each), not a "
            "timing of another machine: images_per_cpu_s = 1000 / (loader + step) on this CPU; "
            "loader_bound_speedup = the training speed-up where the step costs the host no CPU (a GPU fed "
            "by CPU loader workers); target_holds_below_step_cpu_ms = the step's host CPU per image at "
            "or below which the cache trains >= target_speedup times as many images per CPU-second",
            **projection(loader_cpu, step_cpu, target),
        },
    }
    write_result(args.json, result, threads=1)
    summary = {k: result[k] for k in ("loader_speedup", "training_speedup", "step_cpu_ms_per_image")}
    print(json.dumps(summary | {k: v for k, v in result["projection"].items() if k != "basis"}))
    return 0


class _Batches:
    """`count` batches of a shared loader iterator (each round continues where the last one stopped)."""

    def __init__(self, it, count: int) -> None:
        self.it, self.count = it, count

    def __iter__(self):
        for _ in range(self.count):
            yield next(self.it)
