"""docs/training.md's FreiHAND recipe agrees with `train_freihand.py --help`, and its commands parse."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "docs" / "training.md"


def _recipe() -> str:
    text = RECIPE.read_text()
    return text[text.index("## Recipe: FastViT on FreiHAND") : text.index("## Training details")]


def _train_parser() -> argparse.ArgumentParser:
    from handmesh.cli import build_parser

    parser = build_parser("train", prog="train_freihand.py")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def _commands(text: str) -> list[list[str]]:
    """The recipe's train_freihand.py command lines (continuations joined), as argument lists."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(ln.split("train_freihand.py", 1)[1]) for ln in lines if "train_freihand.py" in ln]


def test_recipe_defaults_are_the_help_defaults():
    parser = _train_parser()
    table = _recipe().split("Defaults (`python train_freihand.py --help`):", 1)[1].split("\n\n")[1]
    rows = re.findall(r"^\| `(--[\w-]+)` \| ([^|]+?) \|", table, flags=re.M)
    assert len(rows) >= 8
    by_option = {opt: action for action in parser._actions for opt in action.option_strings}
    for option, value in rows:
        # what --help prints: "... (default: 100)" / "(default: 'fastvit_t8')"
        shown = re.search(r"\(default: (.+)\)$", by_option[option].help).group(1).strip("'")
        if re.fullmatch(r"[\d.]+", shown):
            assert float(value) == pytest.approx(float(shown)), option
        else:
            assert value.strip() == shown, option


def test_recipe_commands_parse():
    parser = _train_parser()
    commands = _commands(_recipe())
    assert len(commands) >= 3
    for args in commands:
        from handmesh.config import options_given

        parsed = parser.parse_args(args)  # an unknown option or a bad value exits with status 2
        assert options_given(parsed)["data"] == "data/freihand"
