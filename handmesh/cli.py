"""The `handmesh` command: a thin dispatcher over subcommands that live beside the code they run."""

from __future__ import annotations

import argparse
import importlib
import sys

from handmesh.config import add_bool_option, add_command
from handmesh.errors import DEBUG_ENV, HandmeshError, debug_enabled, one_line

# name -> (its command module, its one-line help: this table is the help line's one home). A command
# module exposes `add_arguments(parser)` and `run(args)`, and its `DESCRIPTION` or docstring is its
# `--help` text (`config.add_command`). Modules are imported lazily: `handmesh --help` lists the commands
# from this table without importing torch, and a subcommand's heavy dependencies (torch, mediapipe,
# gradio) load only when it runs.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "predict": ("handmesh.predict", "hand meshes for images, folders and videos"),
    "synth": ("handmesh.data.synth_cli", "render a synthetic dataset in FreiHAND's exact layout"),
    "synth-cache": ("handmesh.data.cache_cli", "render hand foregrounds once, for --data cache:DIR training"),
    "check-dataset": (
        "handmesh.data.check_cli",
        "validate a custom (annotations.jsonl) or FreiHAND-layout dataset",
    ),
    "mano": ("handmesh.hand_model.cli", "MANO model files: import official pickles"),
    "score": ("handmesh.metrics_cli", "score a FreiHAND submission (pred.json) with the official metrics"),
    "train": ("handmesh.train.cli", "train the regressor (FreiHAND or a custom dataset)"),
    "evaluate": (
        "handmesh.evaluate_cli",
        "score a model file or the landmark fit on a labelled dataset (3D and 2D scores)",
    ),
    "label": ("handmesh.label", "pseudo-label a video or image folder with landmark fits (a custom dataset)"),
    "export": ("handmesh.export_cli", "export a model checkpoint to ONNX (fused, hand model inside)"),
    "bench": ("handmesh.bench_cli", "run a benchmark (model, ...) and write bench/results/*.json"),
}

DESCRIPTION = """3D hand meshes from RGB photos, videos and webcams.

  handmesh predict photo.jpg --out results/     meshes, overlays and JSON (landmark fit, no model needed)
  handmesh predict clip.mp4 --out results/ --checkpoint model.pt   the trained regressor instead
  python demo_app.py                            the browser demo (webcam, images, videos)

`handmesh COMMAND --help` explains each command; docs: README.md and docs/."""


def build_parser(only: str | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser; with `only`, import just that subcommand's module (without, none: the
    commands are listed from SUBCOMMANDS), and with `prog`, name that subcommand `prog` in its usage
    and errors (a script such as train_freihand.py)."""
    parser = argparse.ArgumentParser(
        prog=prog or "handmesh", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_bool_option(
        parser, "--debug", f"show the full traceback of an error instead of one line (or set {DEBUG_ENV}=1)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_line) in SUBCOMMANDS.items():
        if name != only:
            sub.add_parser(name, help=help_line)
            continue
        add_command(sub, name, importlib.import_module(module), help_line)
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
