"""`handmesh bench NAME ...`: a small registry of benchmarks, one module per benchmark.

A benchmark module lives in `handmesh/benchmarks/` and exposes ``add_arguments(parser)`` and
``run(args) -> int``; its first docstring line is its help text. Keep module top levels light (import
torch and friends inside ``run``): every registered module is imported to build `handmesh bench --help`.
To add one, add a line to BENCHMARKS.
"""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS: dict[str, str] = {
    "data": "handmesh.benchmarks.data",
    "synth": "handmesh.benchmarks.synth",
    "model": "handmesh.benchmarks.model",
    "fit": "handmesh.benchmarks.fit",
    "pipeline": "handmesh.benchmarks.pipeline",
    "handedness": "handmesh.benchmarks.handedness",
    "detect": "handmesh.benchmarks.detect",
    "train": "handmesh.benchmarks.train",
    "learn": "handmesh.benchmarks.learn",
    "cache": "handmesh.benchmarks.cache",
    "cores": "handmesh.benchmarks.cores",
    "quantize": "handmesh.benchmarks.quantize",
    "plausibility": "handmesh.benchmarks.plausibility",
    "realism": "handmesh.benchmarks.realism",
    "real2d": "handmesh.benchmarks.real2d",
    "fit3d": "handmesh.benchmarks.fit3d",
    "hostile": "handmesh.benchmarks.hostile",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `handmesh bench` and one sub-subcommand per benchmark."""
    parser = subparsers.add_parser(
        "bench", help="run a benchmark (model, ...) and write bench/results/*.json"
    )
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for name, module_path in BENCHMARKS.items():
        module = importlib.import_module(module_path)
        doc = (module.__doc__ or name).strip().splitlines()[0]
        bench = sub.add_parser(name, help=doc, description=module.__doc__)
        module.add_arguments(bench)
        bench.set_defaults(func=module.run)

    def _help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=_help)
