"""Benchmarks run by `handmesh bench NAME` (see handmesh/bench_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_result(path: str | Path, result: dict[str, Any], indent: int = 1) -> Path:
    """Write a benchmark's JSON (creating its folder) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=indent) + "\n")
    print(f"wrote {path}")
    return path
