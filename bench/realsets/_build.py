"""What the real sets' build scripts share: MMPose's hand labels as custom-dataset lines (docs/datasets.md).

Each `bench/realsets/*/build.py` reads its sources its own way and hands every hand here as (image,
keypoints, side); this module makes the keypoints' 0/1 labelled column, the line with its box, and the
annotations.jsonl file, so both sets have one format.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

ANNOTATIONS = "annotations.jsonl"


def git_show(repo: Path, commit: str, path: str) -> bytes:
    """The bytes of `path` at `commit` of the git checkout `repo`."""
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"], check=True, capture_output=True
    ).stdout


def labelled_keypoints(values) -> np.ndarray:
    """(21, 3) keypoints from a COCO-style flat list (u, v, c per joint): c becomes 1 where > 0, else 0."""
    kp = np.asarray(values, dtype=np.float64).reshape(21, 3)
    kp[:, 2] = kp[:, 2] > 0  # COCO-WholeBody stores float confidences, the others 0/1/2 visibility
    return kp


def annotation_line(image: str, kp: np.ndarray, side: str, **extra) -> dict:
    """One annotations.jsonl object: keypoints (21, 3) with a 0/1 labelled column, box = the labelled
    keypoints' box, then `extra` keys (e.g. split="test")."""
    seen = kp[kp[:, 2] > 0, :2]
    box = np.concatenate([seen.min(axis=0), seen.max(axis=0)])
    return {
        "image": image,
        "handedness": side,
        "keypoints2d": np.round(kp, 2).tolist(),
        "box": np.round(box, 2).tolist(),
        **extra,
    }


def write_annotations(folder: Path, lines: Iterable[dict]) -> None:
    """`folder`/annotations.jsonl, one line a hand."""
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (folder / ANNOTATIONS).write_text(text, encoding="utf-8")


def run_build(argv: list[str], doc: str, folder: Path, build: Callable[[Path], list[dict]]) -> int:
    """A build script's main: `build(source)` writes `folder`/images/ and returns the lines, written here
    to `folder`/annotations.jsonl; the usage (`doc`) when the one argument is missing."""
    if len(argv) != 1:
        print(doc, file=sys.stderr)
        return 2
    lines = build(Path(argv[0]))
    write_annotations(folder, lines)
    print(f"{len(lines)} hands in {len({line['image'] for line in lines})} images -> {folder}")
    return 0
