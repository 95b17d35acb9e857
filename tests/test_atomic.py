"""handmesh.atomic: whole files or none, unique temporary names, synced to disk."""

from __future__ import annotations

import os

import pytest

from handmesh.atomic import atomic_path, atomic_write, temp_glob


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.json"
    atomic_write(target, "old")
    atomic_write(target, b"new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert list(tmp_path.glob(temp_glob(target.name))) == []


def test_concurrent_writers_get_their_own_temporary_files(tmp_path):
    target = tmp_path / "last.pt"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second
        assert {first.name, second.name} <= {p.name for p in tmp_path.glob(temp_glob(target.name))}
        first.write_text("a")
        second.write_text("b")
    assert target.read_text() == "a"  # the outer block finished last


def test_durable_writes_sync_file_and_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    atomic_write(tmp_path / "a.json", "{}")
    assert len(synced) == 2  # the file's data, then the folder's entry
    atomic_write(tmp_path / "frame.jpg", b"x", durable=False)
    assert len(synced) == 2
