"""Issue 20 §5: checkpoints and ONNX files are readable like any other output (the umask's mode, not 0600)."""

from __future__ import annotations

import os
import stat

import pytest


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_checkpoint_and_atomic_targets_follow_the_umask(tmp_path, umask_022):
    from handmesh.checkpoint import save_checkpoint
    from handmesh.files import atomic_target

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    ckpt = save_checkpoint(tmp_path / "runs" / "last.pt", {"step": 1})
    onnx_tmp = atomic_target(tmp_path / "m.onnx")  # what export and quantize rename into place
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (plain, ckpt, onnx_tmp)}
    assert modes == {"plain.txt": 0o644, "last.pt": 0o644, onnx_tmp.name: 0o644}
    os.umask(0o077)
    assert stat.S_IMODE(atomic_target(tmp_path / "private.onnx").stat().st_mode) == 0o600
