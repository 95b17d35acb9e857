"""`handmesh check-dataset DIR`: validate a dataset folder and report every problem with its line."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `handmesh check-dataset`."""
    p = subparsers.add_parser(
        "check-dataset",
        help="validate a custom (annotations.jsonl) or FreiHAND-layout dataset",
        description="Report every problem of a dataset folder (line numbers for annotations.jsonl); "
        "exit status 1 when there are problems.",
    )
    p.add_argument("dir", help="dataset folder")
    p.add_argument("--no-decode", action="store_true", help="check image files exist without decoding them")
    p.add_argument("--quiet", action="store_true", help="print problems only, not warnings")
    p.set_defaults(func=run)
    return p


def check_freihand(root) -> tuple[list[str], str]:
    """Load every FreiHAND split present; problems are the loader's one-line errors."""
    from handmesh.data.freihand import FreiHANDAnnotations
    from handmesh.errors import HandmeshError

    problems, summary = [], []
    for split in ("training", "evaluation"):
        if not (root / f"{split}_K.json").is_file():
            continue
        try:
            ann = FreiHANDAnnotations(root, split)
            summary.append(f"{split}: {len(ann)} samples x {ann.versions} version(s)")
        except HandmeshError as exc:
            problems.append(str(exc))
    return problems, "; ".join(summary)


def run(args: argparse.Namespace) -> int:
    """Print problems and warnings; 0 when the dataset is clean, 1 otherwise."""
    from pathlib import Path

    from handmesh.data import custom, dataset_kind

    root = Path(args.dir)
    kind = dataset_kind(root)
    warnings: list[str] = []
    if kind == "freihand":
        problems, summary = check_freihand(root)
    else:
        anns, problems, warnings = custom.read_annotations(root, check_files=True)
        if not args.no_decode:
            problems += custom.check_images([a for a in anns if a.image.is_file()])
        problems.sort(key=lambda s: int(s.split(":")[0].split()[1]) if s.startswith("line ") else 0)
        summary = f"{len(anns)} annotation(s)"
    for w in [] if args.quiet else warnings:
        print(f"warning: {w}")
    for p in problems:
        print(f"problem: {p}")
    status = "OK" if not problems else f"{len(problems)} problem(s)"
    print(f"{root} ({kind}): {summary}; {status}, {len(warnings)} warning(s)", file=sys.stderr)
    return 1 if problems else 0
