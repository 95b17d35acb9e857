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


def test_handmesh_help_answers_without_torch():
    """`handmesh --help` lists every command without importing torch (or numpy, cv2)."""
    import os
    import subprocess

    code = (
        "import sys\nfrom handmesh.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('torch', 'numpy', 'cv2', 'mediapipe', 'gradio') if m in sys.modules])"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "HEAVY []" in out.stdout, out.stdout[-400:]
    assert "handmesh predict photo.jpg" in out.stdout and "check-dataset" in out.stdout


def test_command_list_matches_each_commands_own_help():
    """The one-line helps `handmesh --help` lists (cli.SUBCOMMANDS) are the ones the modules register."""
    import argparse

    from handmesh.cli import SUBCOMMANDS, build_parser

    for name, (_, line) in SUBCOMMANDS.items():
        parser = build_parser(name)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert {a.dest: a.help for a in sub._choices_actions}[name] == line, name


def test_subcommand_helps_do_not_import_torch():
    """`handmesh train --help`, `evaluate --help` and `bench --help` build their parsers without torch."""
    import os
    import subprocess

    code = (
        "import sys\n"
        "from handmesh.cli import main\n"
        "for argv in (['train', '--help'], ['evaluate', '--help'], ['bench', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('heavy:', sorted(m for m in ('torch', 'timm', 'gradio') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[-1] == "heavy: []"
    assert "--epochs" in out.stdout and "--detect" in out.stdout and "BENCHMARK" in out.stdout
