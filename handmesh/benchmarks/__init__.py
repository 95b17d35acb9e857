"""Benchmarks run by `handmesh bench NAME` (see handmesh/bench_cli.py)."""
