"""`handmesh evaluate`: score a mesh source on any labelled dataset the trainer reads.

    handmesh evaluate CKPT --data DIR --out OUT                      # the model, labelled boxes
    handmesh evaluate --source landmark-fit --data DIR --out OUT     # MediaPipe + the fit, no training
    handmesh evaluate CKPT --data DIR --out OUT --detect             # find the hands first, as predict

DATA is a FreiHAND-layout folder (FreiHAND, or `handmesh synth`), a custom folder with
annotations.jsonl, or several folders joined by "+" (scored one by one and together; mix weights are
ignored). The split: FreiHAND's evaluation split, or a custom folder's lines marked "split": "test" (every
line when none is); `--split training` / `val` score what training saw or validated on. Every label a hand
has is scored: 3D joints and vertices with the official FreiHAND metrics (PA-MPJPE / PA-MPVPE in mm,
AUC, F-scores), 2D keypoints (labelled, or the 3D joints projected with a labelled K) with PCK at 0.05 /
0.1 / 0.2 of the hand's size, its AUC over 0-0.2 and the median distance (handmesh.metrics2d).

Mesh sources: a model file (`.pt` checkpoint with torch, `.onnx` with ONNX Runtime), or
`--source landmark-fit` (MediaPipe on each image, the hand model fitted to its landmarks). By default each
hand is cut out around its labelled box as training crops it (FreiHAND's protocol: the whole 224 px image)
and the model's 3D joints are projected through that crop's camera, so the whole model is measured;
`--detect` instead runs each image through the pipeline as `handmesh predict` does and reports the share
of labelled hands it found. A hand that was not found counts as wrong in every PCK figure; the 3D scores
are over the hands found (`found_only`) and over every hand with a miss filled by the mean hand
(what a submission gets).

For a single FreiHAND-layout folder, OUT/pred.json is the official submission file (`[xyz, verts]`,
metres, camera coordinates, split order) and the 3D figures are exactly what `handmesh score` gives for
it. OUT/scores.json holds every figure, the split used and the share of hands found.
`--baseline mean` scores the mean hand placed on each ground-truth root instead (FreiHAND layout).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from handmesh.config import add_bool_option, add_config_options, config_from_args
from handmesh.evaluation.config import EvaluateConfig


def print_scores(record: dict[str, Any], out: Any = None) -> None:
    """The tables of a scores record (3D when present, 2D when present) and what was scored."""
    out = out or sys.stdout
    from handmesh.metrics import format_table
    from handmesh.metrics2d import format_table_2d

    print(f"{record.get('model', record['source'])} on {record['data']}: {record.get('split')}", file=out)
    if "boxes" in record:
        print(
            f"hands: {record['boxes']} boxes; found {record['found'] * 100:.1f} % of {record['num_hands']}",
            file=out,
        )
    if "pa_mpjpe_mm" in record:
        print(format_table(record), file=out)
        if "found_only" in record:
            f = record["found_only"]
            print(
                f"found hands only ({f['num_samples']}): PA-MPJPE {f['pa_mpjpe_mm']:.2f} mm, "
                f"PA-MPVPE {f['pa_mpvpe_mm']:.2f} mm",
                file=out,
            )
    if "keypoints2d" in record:
        print(format_table_2d(record["keypoints2d"]), file=out)
    for note in record.get("notes", []):
        print(f"note: {note}", file=out)


def run(args: argparse.Namespace) -> int:
    """`handmesh evaluate`: score, print the tables, name the files written."""
    from handmesh.evaluate import evaluate

    config = config_from_args(EvaluateConfig(), args)
    record = evaluate(args.checkpoint, args.data, args.out, config, progress=not args.quiet)
    print_scores(record)
    written = [n for n in ("pred.json", "scores.json") if (Path(args.out) / n).is_file()]
    print(f"wrote {', '.join(str(Path(args.out) / n) for n in written)}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh evaluate`."""
    parser.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        metavar="CKPT",
        help="model file: .pt checkpoint or .onnx export",
    )
    parser.add_argument(
        "--data", required=True, help="FreiHAND-layout or custom folder, or folders joined by '+'"
    )
    parser.add_argument("--out", required=True, help="output folder for scores.json (and pred.json)")
    add_config_options(parser, EvaluateConfig)
    add_bool_option(parser, "--quiet", "no progress bar")
