"""Benchmarks run by `handmesh bench NAME` (see handmesh/bench_cli.py); shared helpers in `common`."""

from __future__ import annotations

from handmesh.benchmarks.common import machine_info, timing_stats, write_result

__all__ = ["machine_info", "timing_stats", "write_result"]
