"""Plausibility threshold: how many good hands each --min-plausibility would drop, how many bad ones it keeps.

Runs `handmesh predict`'s pipeline (still images, MediaPipe with predict's still-image search, no K: the
default field of view) on
realistic renders of the synthetic stream (right and left hands, seeds no training run uses) and on
the real labelled photos under bench/realsets/ (detect: 20 hands in scenes; keypoints: close-ups), for
each mesh source asked for (the landmark fit; the model when `--checkpoint` is given). Every found hand
is matched to a labelled hand by its projected joints: it is *good* when its mean 2D joint error is
below `--good` times the labelled hand's size (the longer side of its keypoints' box), else *bad* (a
hand in the wrong place, a false detection, a broken fit or regression). For each threshold of the sweep
the JSON gives the good hands it would drop and the bad ones it would keep, and the same for the
"implausible" flag (a check below 0.5: drawn grey, tagged "?"). Writes bench/results/plausibility_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from handmesh.benchmarks.common import add_scene_arguments, scene_records, write_result

RESULTS = Path("bench/results/plausibility_cpu.json")
REALSETS = ("bench/realsets/detect", "bench/realsets/keypoints")
BENCH_SEED = 300_000  # stream seeds from here: training uses 0 on, held-out validation 100,000 on
SWEEP = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench plausibility`."""
    add_scene_arguments(parser, count=100, size=256, seed_base=BENCH_SEED)
    parser.add_argument("--realsets", nargs="*", default=list(REALSETS), help="labelled photo folders")
    parser.add_argument(
        "--checkpoint", default=None, help="also measure the model as mesh source (a .pt or .onnx file)"
    )
    parser.add_argument("--detector", default="mediapipe", help="detector spec (as `handmesh predict`)")
    parser.add_argument(
        "--search",
        default="fast",
        choices=("fast", "thorough"),
        help="still-image search (as `handmesh predict`)",
    )
    parser.add_argument(
        "--good", type=float, default=0.2, help="a good hand's mean 2D joint error, as a share of its size"
    )
    parser.add_argument("--json", default=str(RESULTS), help="output JSON")


class _NoOverlay:
    """The overlay is not measured: skip the GL render."""

    def overlay(self, frame, meshes, K, opacity, **kwargs):
        return frame


def _labelled_photos(folder: Path) -> list[tuple[str, list]]:
    """(image path, [(keypoints (21,2), labelled mask (21,))]) per photo of a custom-format folder."""
    import numpy as np

    by_image: dict[str, list] = {}
    for line in (folder / "annotations.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        ann = json.loads(line)
        kp = np.asarray(ann["keypoints2d"], dtype=np.float64)
        mask = kp[:, 2] > 0 if kp.shape[1] == 3 else np.ones(len(kp), bool)
        by_image.setdefault(str(folder / ann["image"]), []).append((kp[:, :2], mask))
    return list(by_image.items())


def _grade(hands: list[dict], labels: list, good: float) -> list[tuple[float, bool, bool]]:
    """(plausibility, flagged implausible, good) per found hand; each label matches one hand at most."""
    import numpy as np

    from handmesh.metrics2d import hand_size

    graded, free = [], list(range(len(labels)))
    for hand in sorted(hands, key=lambda h: -h["score"]):
        uv = np.asarray(hand["joints2d"], dtype=np.float64)
        best, best_err = None, np.inf
        for i in free:
            kp, mask = labels[i]
            size = hand_size(kp, mask, divisor=True)
            err = float(np.linalg.norm(uv[mask] - kp[mask], axis=1).mean()) / size
            if err < best_err:
                best, best_err = i, err
        ok = best is not None and best_err < good
        if ok:
            free.remove(best)
        graded.append((float(hand["plausibility"]), bool(hand["implausible"]), ok))
    return graded


def _sweep(graded: list[tuple[float, bool, bool]]) -> dict:
    """Per threshold: good hands dropped and bad hands kept; the flag's misses the same way."""
    good = [p for p, _, ok in graded if ok]
    bad = [p for p, _, ok in graded if not ok]
    return {
        "hands": len(graded),
        "good": len(good),
        "bad": len(bad),
        "min_plausibility": {
            str(t): {"good_dropped": sum(p < t for p in good), "bad_kept": sum(p >= t for p in bad)}
            for t in SWEEP
        },
        "flag": {
            "good_flagged": sum(f for _, f, ok in graded if ok),
            "bad_unflagged": sum(not f for _, f, ok in graded if not ok),
        },
        "plausibility_good": sorted(round(p, 4) for p in good),
        "plausibility_bad": sorted(round(p, 4) for p in bad),
    }


def run(args: argparse.Namespace) -> int:
    """Render, run every mesh source, grade each found hand, sweep the threshold; write the JSON."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

    import numpy as np

    from handmesh.data.stream import SynthStream
    from handmesh.data.synth import SynthConfig
    from handmesh.geometry_np import project_points_np
    from handmesh.pipeline.media import read_image
    from handmesh.pipeline.pipeline import PipelineConfig
    from handmesh.pipeline.predictor import SourceConfig, build_pipeline, run_on_image

    seed = BENCH_SEED + int(args.seed)
    stream = SynthStream(SynthConfig(seed=seed, size=int(args.size)))
    renders = [
        (rec.image, [(project_points_np(rec.joints3d, rec.K), np.ones(21, bool))])
        for _, _, rec in scene_records(stream, args.count)
    ]
    photos = [
        (p, labels)
        for folder in args.realsets
        if (Path(folder) / "annotations.jsonl").is_file()
        for p, labels in _labelled_photos(Path(folder))
    ]
    sources = [("landmark-fit", None)] + ([("model", args.checkpoint)] if args.checkpoint else [])
    out: dict = {
        "detector": args.detector,
        "search": args.search,
        "good_below": float(args.good),
        "synth": {"scenes": int(args.count), "size": int(args.size), "stream_seed": seed},
        "realsets": [f for f in args.realsets if (Path(f) / "annotations.jsonl").is_file()],
        "photos": len(photos),
        "labelled_photo_hands": sum(len(labels) for _, labels in photos),
        "sources": {},
    }
    t0 = time.perf_counter()
    for source, model in sources:
        onnx = model is not None and str(model).endswith(".onnx")
        files = {"onnx": model} if onnx else {"checkpoint": model}
        pipe = build_pipeline(
            SourceConfig(**files, detector=args.detector, search=args.search),
            mode=source,
            config=PipelineConfig(min_plausibility=0.0),
            renderer=_NoOverlay(),
        )
        graded = {"renders": [], "photos": []}
        for name, items in (("renders", renders), ("photos", photos)):
            for image, labels in items:
                data = run_on_image(pipe, read_image(image) if isinstance(image, str) else image).data
                graded[name] += _grade(data["hands"], labels, float(args.good))
        graded["all"] = graded["renders"] + graded["photos"]
        per_set = {name: _sweep(g) for name, g in graded.items()}
        out["sources"][source] = {"model": pipe.model_name, **per_set}
        for name in ("renders", "photos"):
            r = per_set[name]
            print(f"{source}, {name}: {r['hands']} hands found, {r['good']} good, {r['bad']} bad")
        for t, r in per_set["all"]["min_plausibility"].items():
            print(f"  --min-plausibility {t}: drops {r['good_dropped']} good, keeps {r['bad_kept']} bad")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_result(args.json, out)
    return 0
