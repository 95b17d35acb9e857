"""The helpers every benchmark shares: CPU facts from /proc/cpuinfo, timing statistics, the result writer."""

from __future__ import annotations

import json

import pytest

from handmesh.benchmarks import write_result
from handmesh.benchmarks.common import KERNEL_FLAGS, machine_info, parse_cpuinfo, timing_stats

CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni amx_tile sse4_2
processor\t: 1
model name\t: some other name
flags\t\t: fpu
"""


def test_parse_cpuinfo_reads_model_and_kernel_flags():
    model, flags = parse_cpuinfo(CPUINFO)
    assert model == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    # only kernel-relevant flags, in KERNEL_FLAGS order, from the first processor
    assert flags == ["avx2", "fma", "avx512f", "avx512_vnni", "amx_tile"]
    assert "sse2" not in flags and "avx" not in flags  # "avx" is a prefix of avx2, not the flag itself
    assert parse_cpuinfo("") == (None, [])


def test_machine_info_describes_this_machine():
    info = machine_info(threads=3)
    assert info["threads"] == 3 and info["cpu_count"] >= 1 and info["cpus_usable"] >= 1
    assert info["cpu"] and set(info["cpu_flags"]) <= set(KERNEL_FLAGS)
    assert info["torch"] and info["numpy"]  # installed: versions come from package metadata
    json.dumps(info)  # JSON-ready


def test_timing_stats():
    values = [float(v) for v in range(1, 101)]
    s = timing_stats(values)
    assert s["median_ms"] == 50.5 and s["mean_ms"] == 50.5 and s["n"] == 100
    assert s["p10_ms"] < s["median_ms"] < s["p90_ms"]
    assert 9 < s["p10_ms"] < 12 and 89 < s["p90_ms"] < 92
    assert timing_stats([2.0], unit="s") == {
        "median_s": 2.0,
        "p10_s": 2.0,
        "p90_s": 2.0,
        "mean_s": 2.0,
        "n": 1,
    }
    with pytest.raises(ValueError):
        timing_stats([])


def test_write_result_adds_machine_and_keeps_a_given_one(tmp_path, capsys):
    out = write_result(tmp_path / "sub" / "r.json", {"fps": 1.5}, threads=2)
    data = json.loads(out.read_text())
    assert data["fps"] == 1.5 and data["machine"]["threads"] == 2 and data["machine"]["cpu_flags"] is not None
    assert f"wrote {out}" in capsys.readouterr().out
    out = write_result(tmp_path / "r2.json", {"machine": {"cpu": "recorded at start"}})
    assert json.loads(out.read_text())["machine"] == {"cpu": "recorded at start"}
