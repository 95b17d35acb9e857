"""Synthetic-data generation speed: `handmesh synth` images per second for each worker count.

Besides wall-clock images/s the CPU time per image (this process, its workers and their GL threads) is
recorded: divided into the core count it gives the rate an otherwise idle machine reaches, which is
what the figure means on a shared machine. Worker start-up (spawn + EGL) is included in the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from handmesh.benchmarks.common import write_result

RESULTS = Path("bench/results/synth_cpu.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench synth`."""
    parser.add_argument("--images", type=int, default=200, help="training images per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--json", default=str(RESULTS), help=f"output JSON (default {RESULTS})")


def run(args: argparse.Namespace) -> int:
    """Generate `--images` images per worker count in a temporary folder; write the JSON."""
    from handmesh.data.synth import SynthConfig, synthesize

    cores = os.cpu_count() or 1
    runs = []
    for w in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            load0 = os.getloadavg()[0]
            stats = synthesize(SynthConfig(train=args.images, eval=0, workers=w, size=args.size), tmp)
        stats["load_average_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
        stats["idle_machine_images_per_s"] = round(cores * 1000.0 / stats["cpu_ms_per_image"], 1)
        print(json.dumps(stats), flush=True)
        runs.append(stats)
    result = {
        "benchmark": "handmesh synth",
        "size": args.size,
        "runs": runs,
    }
    write_result(args.json, result)
    return 0
