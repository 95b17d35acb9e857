"""`handmesh check-dataset DIR`: validate a dataset folder and report every problem with its line."""

from __future__ import annotations

import argparse
import sys

from handmesh.config import add_bool_option


DESCRIPTION = """Report every problem of a dataset folder (line numbers for annotations.jsonl); exit status 1
when there are problems."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `handmesh check-dataset`."""
    p.add_argument("dir", help="dataset folder")
    add_bool_option(p, "--decode", "read every image's header (--no-decode: only check the files exist)", True)
    add_bool_option(
        p,
        "--full-decode",
        "FreiHAND layout: also decode every JPEG's data (finds files cut short with an end marker appended; "
        "a few ms an image)",
    )
    add_bool_option(p, "--quiet", "print problems only, not warnings")


def run(args: argparse.Namespace) -> int:
    """Print problems and warnings; 0 when the dataset is clean, 1 otherwise."""
    from handmesh.data.checks import check_dataset

    kind, problems, warnings, summary = check_dataset(args.dir, decode=args.decode, full=args.full_decode)
    for w in [] if args.quiet else warnings:
        print(f"warning: {w}")
    for p in problems:
        print(f"problem: {p}")
    status = "OK" if not problems else f"{len(problems)} problem(s)"
    print(f"{args.dir} ({kind}): {summary}; {status}, {len(warnings)} warning(s)", file=sys.stderr)
    return 1 if problems else 0
