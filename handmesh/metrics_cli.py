"""`handmesh score`: score a FreiHAND submission file against ground truth with the official metrics."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from handmesh.errors import HandmeshError

DESCRIPTION = """Score a submission [xyz_list, verts_list] (metres, camera frame) against DIR/{split}_xyz.json
and DIR/{split}_verts.json: mean errors, AUC and F-scores, unaligned and Procrustes-aligned, as the
official FreiHAND evaluation defines them."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `handmesh score PRED_JSON --gt DIR [--split evaluation] [--json OUT]`."""
    p.add_argument("pred_json", help="submission file: [xyz_list, verts_list], 21x3 and 778x3 per sample")
    p.add_argument(
        "--gt", default=os.path.join("data", "freihand"), help="FreiHAND root (default: data/freihand)"
    )
    p.add_argument("--split", default="evaluation", help="ground-truth split name (default: evaluation)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the scores to this JSON file")


def run(args: argparse.Namespace) -> int:
    """Load, validate and score; print the table and optionally write the JSON scores."""
    from handmesh.metrics import format_table, load_ground_truth, load_submission, score_arrays

    if args.json_out and os.path.realpath(args.json_out) == os.path.realpath(args.pred_json):
        raise HandmeshError(
            f"--json {args.json_out} is the submission itself: choose another file for the scores"
        )
    xyz_gt, verts_gt = load_ground_truth(args.gt, args.split)
    xyz, verts = load_submission(args.pred_json, num_samples=len(xyz_gt))
    start = time.perf_counter()
    scores = score_arrays(xyz, verts, xyz_gt, verts_gt)
    print(format_table(scores))
    print(f"(scored in {time.perf_counter() - start:.1f} s)", file=sys.stderr)
    if args.json_out:
        parent = os.path.dirname(os.path.abspath(args.json_out))
        os.makedirs(parent, exist_ok=True)
        with open(args.json_out, "w") as fh:
            json.dump(scores, fh, indent=2)
            fh.write("\n")
        print(f"wrote {args.json_out}", file=sys.stderr)
    return 0
