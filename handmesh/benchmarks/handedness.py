"""Handedness accuracy on synthetic left and right hands: the detector's label vs the fit of both sides.

The synthetic stream renders hands of the hand model (random poses, shapes, orientations -- palm or back
towards the camera -- and backgrounds) at seeds no training run uses; every scene is rendered twice, with
the right hand and with its mirror image, the left hand, under the same light rig. (Flipping a rendered
image instead, as this benchmark once did, flips the renderer's light rig too -- it is fixed in the
camera frame -- and gives the side away: MediaPipe's label was then wrong for 32 % of hands, against
about half on the fair renders.) MediaPipe (static images) finds the hands; each found hand is then
labelled by three rules: "detector" (MediaPipe's label), "fit" (whichever side's fit misses the
landmarks by less, `handmesh.pipeline.handedness`), "fit, uncertain dropped" (the fit's side only
where its margin is at least `--min-margin`) and "detector and fit agree" (a side only where both say
it, with that margin; the rest are what `handmesh label` drops). Reports accuracy
over all found hands, and for the dropping rule the share kept and the share of kept hands whose written
side is wrong. Writes bench/results/handedness_cpu.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from handmesh.benchmarks.common import add_scene_arguments, scene_records, write_result

RESULTS = Path("bench/results/handedness_cpu.json")
BENCH_SEED = 200_000  # stream seeds from here: training runs use 0 on and HELD_OUT_SEED (100,000) on
SCORE_SWEEP = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench handedness`."""
    add_scene_arguments(parser, count=600, size=256, seed_base=BENCH_SEED)
    parser.add_argument(
        "--detector",
        default="mediapipe-full",
        choices=("mediapipe", "mediapipe-full"),
        help="landmark model (default: the full one, as `handmesh label` uses)",
    )
    parser.add_argument(
        "--min-margin",
        dest="min_margin",
        type=float,
        default=None,
        help="relative fit-error margin below which a side is uncertain (default: the library's)",
    )
    parser.add_argument("--json", default=str(RESULTS), help="output JSON")


def _rule_summary(truth: list[str], said: list[str | None]) -> dict:
    """Accuracy over all hands; for rules that may abstain, the share kept and the wrong share of kept."""
    kept = [(t, s) for t, s in zip(truth, said, strict=True) if s is not None]
    wrong = sum(t != s for t, s in kept)
    return {
        "hands": len(truth),
        "kept": len(kept),
        "kept_share": round(len(kept) / max(len(truth), 1), 4),
        "wrong": wrong,
        "wrong_share_of_kept": round(wrong / max(len(kept), 1), 4),
        "correct_share_of_all": round((len(kept) - wrong) / max(len(truth), 1), 4),
    }


def run(args: argparse.Namespace) -> int:
    """Render, detect, decide, score; write the JSON."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

    from handmesh.data.photo import NO_EFFECTS
    from handmesh.data.stream import SynthStream
    from handmesh.data.synth import SynthConfig
    from handmesh.pipeline.crop import default_intrinsics
    from handmesh.pipeline.detector import MediaPipeDetector
    from handmesh.pipeline.handedness import MIN_MARGIN, decide_sides

    margin = MIN_MARGIN if args.min_margin is None else float(args.min_margin)
    # clean renders: occluders, blur and noise make MediaPipe miss hands, not mislabel them
    cfg = SynthConfig(
        seed=BENCH_SEED + int(args.seed),
        size=int(args.size),
        occluder_prob=0.0,
        object_prob=0.0,
        camera=NO_EFFECTS,
    )
    stream = SynthStream(cfg)
    detector = MediaPipeDetector(max_hands=1, model_complexity=1 if args.detector == "mediapipe-full" else 0)
    truth: list[str] = []
    scores: list[float] = []
    rules: dict[str, list[str | None]] = {
        "detector": [],
        "fit": [],
        "fit_uncertain_dropped": [],
        "detector_and_fit_agree": [],
    }
    margins: list[tuple[float, bool]] = []
    t0 = time.perf_counter()
    for _, side, rec in scene_records(stream, args.count):
        dets = detector.detect(rec.image, static=True)
        if not dets or dets[0].keypoints3d is None:
            continue
        K = default_intrinsics(rec.image.shape[1], rec.image.shape[0])
        decision = decide_sides(dets[:1], K, margin)[0]
        truth.append(side)
        scores.append(float(dets[0].score))
        rules["detector"].append(dets[0].handedness)
        rules["fit"].append(decision.fit_side)
        rules["fit_uncertain_dropped"].append(decision.side)
        agree = decision.side is not None and decision.side == dets[0].handedness
        rules["detector_and_fit_agree"].append(decision.side if agree else None)
        margins.append((decision.margin, decision.fit_side == side))
    seconds = time.perf_counter() - t0
    wrong_margins = sorted(m for m, ok in margins if not ok)
    sure = {
        str(t): _rule_summary(
            truth, [s if c >= t else None for s, c in zip(rules["detector"], scores, strict=True)]
        )
        for t in SCORE_SWEEP
    }
    out = {
        "images": 2 * int(args.count),
        "hands_found": len(truth),
        "found_share": round(len(truth) / max(2 * int(args.count), 1), 4),
        "detector": args.detector,
        "min_margin": margin,
        "rules": {name: _rule_summary(truth, said) for name, said in rules.items()},
        "fit_wrong_margins": [round(m, 4) for m in wrong_margins],
        # how often the landmarks' fit names the detector's side: near 1 means the 3D landmarks follow
        # the detector's own guess and cannot check it
        "fit_agrees_with_detector": round(
            sum(a == b for a, b in zip(rules["fit"], rules["detector"], strict=True)) / max(len(truth), 1), 4
        ),
        # the detector's side only where its own score reaches the value: does its confidence mean anything?
        "detector_score_sweep": sure,
        "synth": {"scenes": int(args.count), "size": cfg.size, "stream_seed": cfg.seed},
        # every found hand: true side, detector's side and score
        "hands": [[t, d, round(c, 4)] for t, d, c in zip(truth, rules["detector"], scores, strict=True)],
        "seconds": round(seconds, 1),
    }
    for name, r in out["rules"].items():
        print(
            f"{name}: {r['kept']}/{r['hands']} hands given a side, {r['wrong']} wrong"
            f" ({100 * r['wrong_share_of_kept']:.1f} % of those), correct {100 * r['correct_share_of_all']:.1f} %"
        )
    write_result(args.json, out)
    return 0
