"""What every benchmark shares: the machine it ran on, timing statistics, the result writer, and the
synthetic scenes of the benchmarks that render them.

Every result JSON carries the same ``machine`` record (CPU model and the vector-instruction flags that
decide which kernels torch and ONNX Runtime pick, core count, library versions, threads, load), so a
figure can be compared with another only when the machines match.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

# The /proc/cpuinfo flags that change which CPU kernels torch (oneDNN) and ONNX Runtime (MLAS) run.
KERNEL_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
LIBRARIES = ("torch", "timm", "onnxruntime", "numpy", "pyrender", "mediapipe")


def parse_cpuinfo(text: str) -> tuple[str | None, list[str]]:
    """The CPU model name and the kernel-relevant flags (in KERNEL_FLAGS order) of /proc/cpuinfo text."""
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, [f for f in KERNEL_FLAGS if f in flags]


def _library_versions() -> dict[str, str | None]:
    # metadata, not imports: asking for a version must not load torch or mediapipe into a worker
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """The machine record stored in every result: CPU, flags, cores, versions, threads, load, date."""
    try:
        model, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:  # not Linux
        model, flags = None, []
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu": model or platform.processor() or platform.machine(),
        "cpu_flags": flags,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        **_library_versions(),
        "threads": threads,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    torch = sys.modules.get("torch")  # only when the benchmark already loaded it
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def photo_source(name: str) -> str:
    """Where a labelled picture came from: its file name's first word ("coco", "handgraph", "render")."""
    return name.rsplit("/", 1)[-1].split("_", 1)[0]


def timing_stats(values: Sequence[float], unit: str = "ms", digits: int = 3) -> dict[str, float]:
    """Median, 10th/90th percentiles, mean and count of repeated timings, keys suffixed with `unit`."""
    if not values:
        raise ValueError("timing_stats needs at least one value")
    # statistics.quantiles needs two points; one timing is its own every percentile
    q = statistics.quantiles(values, n=10) if len(values) >= 2 else [values[0]] * 9
    return {
        f"median_{unit}": round(statistics.median(values), digits),
        f"p10_{unit}": round(q[0], digits),
        f"p90_{unit}": round(q[-1], digits),
        f"mean_{unit}": round(statistics.fmean(values), digits),
        "n": len(values),
    }


def write_result(
    path: str | Path, result: dict[str, Any], indent: int = 1, threads: int | None = None
) -> Path:
    """Write a benchmark's JSON (creating its folder) with the machine record added, and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a benchmark may record the machine itself (e.g. at its start); otherwise it is taken now
    result = {**result, "machine": result.get("machine") or machine_info(threads)}
    path.write_text(json.dumps(result, indent=indent) + "\n")
    print(f"wrote {path}")
    return path


# ---- synthetic scenes ------------------------------------------------------------------------------------

# each scene is rendered twice: with the right hand, and with its mirror image, the left hand, under the
# same lights (`SynthStream.record(i, side)`), so that neither side can be told by the picture's light
SCENE_SIDES = ("right", "left")


def add_scene_arguments(parser: argparse.ArgumentParser, count: int, size: int, seed_base: int) -> None:
    """`--count`, `--size` and `--seed` of a benchmark on synthetic scenes (see `scene_records`)."""
    parser.add_argument(
        "--count", type=int, default=count, help="synthetic scenes (a right and a left hand each)"
    )
    parser.add_argument("--size", type=int, default=size, help="picture side, pixels")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help=f"synthetic stream seed (plus {seed_base}, away from the seeds training uses)",
    )


def scene_records(stream, count: int) -> Iterator[tuple[int, str, Any]]:
    """(i, side, record) for scenes 0 .. count-1 of a SynthStream, each as a right and as a left hand."""
    for i in range(int(count)):
        for side in SCENE_SIDES:
            yield i, side, stream.record(i, side)
