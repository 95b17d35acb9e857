"""The `handmesh` command: a thin dispatcher over subcommands that live beside the code they run."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> module exposing `add_parser(subparsers)`; imported lazily so `handmesh --help` stays fast
# and a subcommand's heavy dependencies (torch, mediapipe, gradio) load only when it runs.
SUBCOMMANDS: dict[str, str] = {
    "predict": "handmesh.predict",
    "synth": "handmesh.data.synth_cli",
    "check-dataset": "handmesh.data.check_cli",
    "mano": "handmesh.hand_model.cli",
    "score": "handmesh.metrics_cli",
    "train": "handmesh.train",
    "evaluate": "handmesh.evaluate",
    "label": "handmesh.label",
    "export": "handmesh.export",
    "bench": "handmesh.bench_cli",
}


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit status 2."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser; with `only`, import just that subcommand's module."""
    parser = argparse.ArgumentParser(prog="handmesh", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f"(see handmesh {name} --help)")
            continue
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `handmesh` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first if first in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, ValueError) as exc:
        print(f"handmesh {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
