"""`handmesh bench NAME ...`: a small registry of benchmarks, one module per benchmark.

A benchmark module lives in `handmesh/benchmarks/` and exposes ``add_arguments(parser)`` and
``run(args) -> int``; its first docstring line is its help text. Keep module top levels light (import
torch and friends inside ``run``): every registered module is imported to build `handmesh bench --help`.
To add one, add a line to BENCHMARKS.
"""

from __future__ import annotations

import argparse
import importlib

from handmesh.config import add_command

DESCRIPTION = """Run a benchmark; each writes its figures, with the machine they were measured on, to
bench/results/*.json (docs/benchmarks.md). `handmesh bench NAME --help` gives a benchmark's options."""

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One action per benchmark (`handmesh bench NAME`); without one, the list."""
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for name, module_path in BENCHMARKS.items():
        module = importlib.import_module(module_path)
        add_command(sub, name, module, help=(module.__doc__ or name).strip().splitlines()[0])

    def _help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=_help)
