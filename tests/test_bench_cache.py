"""bench cache's projection: where the cache's training speed-up holds, from CPU ms per image."""

from __future__ import annotations

import pytest

from handmesh.benchmarks.cache import projection


def test_projection_ratios_and_break_even():
    loader = {"stream": 85.0, "cache": 6.0}
    p = projection(loader, step_cpu_ms=300.0, target=4.0)
    assert p["images_per_cpu_s"]["stream"] == pytest.approx(1000 / 385, abs=1e-3)
    assert p["cpu_speedup"] == pytest.approx(385 / 306, abs=1e-3)
    assert p["loader_bound_speedup"] == pytest.approx(85 / 6, abs=0.01)
    # at the break-even step cost the cache trains exactly `target` times as many images per CPU-second
    s = p["target_holds_below_step_cpu_ms"]
    assert (85 + s) / (6 + s) == pytest.approx(4.0, abs=1e-3)
    assert projection(loader, s, 4.0)["cpu_speedup"] == pytest.approx(4.0, abs=2e-3)
    assert projection(loader, 2 * s, 4.0)["cpu_speedup"] < 4.0


def test_projection_never_reaches_a_target_above_the_loader_ratio():
    p = projection({"stream": 30.0, "cache": 10.0}, step_cpu_ms=0.0, target=4.0)
    assert p["loader_bound_speedup"] == 3.0
    assert p["target_holds_below_step_cpu_ms"] == 0.0
