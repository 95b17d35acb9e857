"""Checkpoints and ONNX files are readable like any other output (the umask's mode, not 0600)."""

from __future__ import annotations

import os
import stat

import pytest


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_checkpoint_and_atomic_writes_follow_the_umask(tmp_path, umask_022):
    from handmesh.atomic import atomic_path, atomic_write
    from handmesh.checkpoint import save_checkpoint

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    ckpt = save_checkpoint(tmp_path / "runs" / "last.pt", {"step": 1})
    with atomic_path(tmp_path / "m.onnx") as onnx_tmp:  # what export and quantize write into
        tmp_mode = stat.S_IMODE(onnx_tmp.stat().st_mode)
        onnx_tmp.write_bytes(b"onnx")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (plain, ckpt, tmp_path / "m.onnx")}
    assert modes == {"plain.txt": 0o644, "last.pt": 0o644, "m.onnx": 0o644} and tmp_mode == 0o644
    os.umask(0o077)
    assert stat.S_IMODE(atomic_write(tmp_path / "private.json", "{}").stat().st_mode) == 0o600
