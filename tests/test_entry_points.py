"""The repository's scripts answer --help under their own names with the options their docs promise."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_script(name: str, args: list[str], monkeypatch) -> int:
    monkeypatch.setattr(sys, "argv", [name, *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / name), run_name="__main__")
    return exit_info.value.code


def test_train_freihand_help_names_the_script(monkeypatch, capsys):
    assert run_script("train_freihand.py", ["--help"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: train_freihand.py ") and "handmesh train" not in out
    assert "--epochs" in out
    assert run_script("train_freihand.py", ["--no-such-option"], monkeypatch) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("train_freihand.py: error:")


def test_demo_app_help_lists_runtime(monkeypatch, capsys):
    assert run_script("demo_app.py", ["--help"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: demo_app.py ") and "--runtime {auto,onnx,torch}" in out
