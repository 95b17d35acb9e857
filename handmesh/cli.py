"""The `handmesh` command: a thin dispatcher over subcommands that live beside the code they run."""

from __future__ import annotations

import argparse
import importlib
import sys

from handmesh.errors import DEBUG_ENV, HandmeshError, debug_enabled, one_line

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


def build_parser(only: str | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser; with `only`, import just that subcommand's module, and with `prog`,
    name that subcommand `prog` in its usage and errors (a script such as train_freihand.py)."""
    parser = argparse.ArgumentParser(prog=prog or "handmesh", description=__doc__)
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the full traceback of an error instead of one line (or set {DEBUG_ENV}=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f"(see handmesh {name} --help)")
            continue
        importlib.import_module(module).add_parser(sub)
        if prog is not None:
            sub.choices[name].prog = prog
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of the `handmesh` console script (`prog`: the script name a subcommand runs under)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first if first in SUBCOMMANDS else None, prog)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    debug = args.debug or debug_enabled()
    try:
        return int(args.func(args) or 0)
    except (HandmeshError, OSError) as exc:
        # only errors about the user's input or files become one line; anything else is a bug and keeps
        # its traceback
        if debug:
            raise
        print(f"handmesh {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
