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


def test_every_command_is_built_from_its_module_by_one_path(capsys):
    """`handmesh NAME --help` answers for every command in cli.SUBCOMMANDS with its module's description;
    no module registers a parser of its own (config.add_command builds them all)."""
    import importlib

    from handmesh.cli import SUBCOMMANDS, main

    for name, (module_name, _) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        assert not hasattr(module, "add_parser") and callable(module.add_arguments), name
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0, name
        out = capsys.readouterr().out
        description = getattr(module, "DESCRIPTION", None) or module.__doc__
        assert out.startswith(f"usage: handmesh {name} ") and description.splitlines()[0] in out, name


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
