"""How training should use a CPU's cores: one process with N threads against torchrun with N one-thread processes.

    handmesh bench cores                       # 2 cores: 1 x 2 threads vs torchrun 2 x 1 thread (gloo)

Both modes run the real trainer (`train_freihand.py`) on the same small synthetic folder (made once under
--work; rendering is not what is measured), fastvit_t8 with the keypoint head at 64 px, batch 16 per
process, no loader workers. Each mode runs --rounds times, the modes taking turns so a slow spell of a
shared machine does not land on one of them; the figure is the training images/s of each run's last epoch
as the trainer logs it (DDP counts the images of every rank). Writes bench/results/cores_cpu.json.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

from handmesh.benchmarks.common import machine_info, write_result

REPO = Path(__file__).resolve().parents[2]
RATE = re.compile(r"\(([\d.]+) img/s\)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench cores`."""
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="cores to use in both modes")
    parser.add_argument("--images", type=int, default=384, help="synthetic training images per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (the last one is timed)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per mode, taking turns")
    parser.add_argument("--img-size", dest="img_size", type=int, default=64)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    parser.add_argument("--work", default="bench/tmp/cores")
    parser.add_argument("--json", default="bench/results/cores_cpu.json")


def _command(mode: str, args: argparse.Namespace, data: Path, out: Path) -> tuple[list[str], dict]:
    """The command line and environment of one run of a mode ("threads" or "ddp")."""
    train = [
        str(REPO / "train_freihand.py"),
        "--data",
        str(data),
        "--out",
        str(out),
        "--overwrite",
        "--img-size",
        str(args.img_size),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-progress",
        "--image-grid",
        "0",
        "--set",
        "val_fraction=0.05",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if mode == "threads":
        env["OMP_NUM_THREADS"] = str(args.cores)
        return [sys.executable, *train], env
    env["OMP_NUM_THREADS"] = "1"
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(args.cores),
    ]
    return [*launcher, *train], env


def run(args: argparse.Namespace) -> int:
    """Time both modes in turns and write the result."""
    from handmesh.data.synth import SynthConfig, synthesize

    work = Path(args.work)
    data = work / "synth"
    if not (data / "training_K.json").is_file():
        synthesize(SynthConfig(train=args.images, eval=0, size=args.img_size, workers=args.cores), data)
    rates: dict[str, list[float]] = {"threads": [], "ddp": []}
    for r in range(args.rounds):
        for mode in rates:
            cmd, env = _command(mode, args, data, work / f"run_{mode}")
            proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
            found = RATE.findall(proc.stderr)
            if proc.returncode != 0 or not found:
                print(proc.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"bench cores: the {mode} run failed (exit {proc.returncode})")
            rates[mode].append(float(found[-1]))
            print(f"round {r + 1}: {mode}: {rates[mode][-1]:.1f} images/s", flush=True)
    median = {mode: statistics.median(v) for mode, v in rates.items()}
    faster = max(median, key=median.get)
    write_result(
        args.json,
        {
            "benchmark": "handmesh bench cores",
            "workload": {
                "variant": "fastvit_t8",
                "head": "keypoint",
                "img_size": args.img_size,
                "batch_per_process": args.batch_size,
                "images_per_epoch": args.images,
                "epochs": args.epochs,
            },
            "modes": {
                "threads": f"1 process x {args.cores} threads",
                "ddp": f"torchrun {args.cores} processes x 1 thread (gloo)",
            },
            "images_per_s": rates,
            "median_images_per_s": median,
            "ddp_over_threads": round(median["ddp"] / median["threads"], 3),
            "faster": faster,
            "machine": machine_info(threads=args.cores),
        },
    )
    return 0
