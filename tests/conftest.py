"""Shared test fixtures and the rule for tests that need a system tool."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests must never pick up a developer's real MANO files unless asked to.
os.environ.setdefault("HANDMESH_MANO_DIR", os.path.join(os.path.dirname(__file__), "_no_mano_here"))


def require(condition: bool, reason: str) -> None:
    """Skip when a system tool is missing on a developer's machine, but fail under CI=true."""
    if condition:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs this: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    import torch

    torch.set_num_threads(2)
    yield


@pytest.fixture
def restore_determinism():
    """train(deterministic=True) switches torch to deterministic algorithms; undo it for other tests."""
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)
