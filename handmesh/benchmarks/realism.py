"""Realism of the synthetic pictures as judged by a model trained on real photos (MediaPipe Hands).

Renders N scenes per side (right and left, the left being the mirrored scene under the same lights) at
seeds no training run uses, for the plain and the realistic appearance, each with clean settings (no
occluders, objects or camera effects) and with the defaults. MediaPipe's full landmark model (static
images) looks at every picture as rendered and padded to twice its size by repeating its border (where
it finds 7 of 8 real FreiHAND crops). Reported per setting and view: the share of hands found, the share
of found hands whose side MediaPipe names right (handmesh's detector already turns MediaPipe's
mirrored-selfie label into the side seen in the picture), and the median distance between its 21
landmarks and the labels as a share of the hand's size (the longer side of the labels' 2D box).
The cost of a picture (images/s at the benchmark's size, `handmesh synth` with 1 and 2 workers) is
measured for both appearances in the same run, in alternating rounds (plain, realistic, plain, ...), so a
change in the machine's load hits both alike: each round gives a ratio, and the median and range of
the rounds are reported. The same judge on real labelled photos (bench/realsets/keypoints and
bench/realsets/detect, when present; each photo and its mirror image) gives the reference: MediaPipe's
landmarks and the labels differ by definition (where a joint centre is), so even real photos do not reach
a zero distance. Mirror pairs (a scene's two sides, a photo and its mirror image) show how often the
judge reads a hand's chirality at all: it names the two sides of a pair differently. Writes
bench/results/realism_cpu.json and, with --sheet, a contact sheet of default-setting realistic pictures.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from handmesh.benchmarks.common import machine_info, photo_source, write_result
from handmesh.metrics2d import hand_size

RESULTS = Path("bench/results/realism_cpu.json")
# real photos with labelled 2D keypoints (measurement only): the same judge on them is the reference
REAL_SETS = "bench/realsets/keypoints,bench/realsets/detect"
SHEET = Path("docs/images/synth_sheet.png")
BENCH_SEED = 300_000  # away from training (0..), held-out (100,000..) and the handedness bench (200,000..)
VIEWS = ("as_rendered", "padded")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench realism`."""
    parser.add_argument(
        "--count", type=int, default=100, help="scenes per setting (a right and a left hand each)"
    )
    parser.add_argument("--size", type=int, default=224, help="picture side, pixels")
    parser.add_argument("--seed", type=int, default=0, help=f"stream seed (plus {BENCH_SEED})")
    parser.add_argument(
        "--appearances", default="plain,realistic", help="comma-separated appearances to compare"
    )
    parser.add_argument("--cost-images", type=int, default=48, help="pictures per cost measurement (0: skip)")
    parser.add_argument("--cost-rounds", type=int, default=3, help="alternating cost rounds per appearance")
    parser.add_argument("--sheet", default=None, help=f"write a contact sheet here (e.g. {SHEET})")
    parser.add_argument(
        "--real",
        default=REAL_SETS,
        help="comma-separated folders of real labelled photos judged the same way (those present)",
    )
    parser.add_argument("--json", default=str(RESULTS), help="output JSON")


def judge_real(detector, folder: Path) -> dict | None:
    """The same judge on real labelled photos (custom layout), per source (the file name's prefix): each
    photo and its mirror image (a photo of the other side), in pairs, as the renders' two sides are."""
    import json

    from handmesh.data.io import read_image
    from handmesh.pipeline.detector import flip_handedness

    annotations = folder / "annotations.jsonl"
    if not annotations.is_file():
        return None
    by_source: dict[str, list[dict]] = {}
    for line in annotations.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        keypoints = np.asarray(entry["keypoints2d"], np.float64)[:, :2]
        image = read_image(folder / entry["image"])
        source = photo_source(entry["image"])
        side = entry.get("handedness", "right")
        mirrored = keypoints * [-1.0, 1.0] + [image.shape[1] - 1, 0.0]
        by_source.setdefault(source, []).extend(
            [
                judge(detector, image, keypoints, side),
                judge(detector, np.ascontiguousarray(image[:, ::-1]), mirrored, flip_handedness(side)),
            ]
        )
    return {source: summarize(results) for source, results in sorted(by_source.items())}


def pad_border(image: np.ndarray) -> np.ndarray:
    """The picture in the middle of one twice its size, the border repeated outward."""
    import cv2

    h, w = image.shape[:2]
    return cv2.copyMakeBorder(image, h // 2, h - h // 2, w // 2, w - w // 2, cv2.BORDER_REPLICATE)


def judge(detector, image: np.ndarray, joints2d: np.ndarray, side: str) -> dict:
    """MediaPipe on one picture as rendered and padded: found, side right, landmark distance / hand size."""
    out = {}
    h, w = image.shape[:2]
    for view in VIEWS:
        img = image if view == "as_rendered" else pad_border(image)
        offset = np.zeros(2) if view == "as_rendered" else np.array([w // 2, h // 2])
        dets = [d for d in detector.detect(img, static=True) if d.keypoints2d is not None]
        if not dets:
            out[view] = None
            continue
        # the found hand nearest the labelled one (a picture holds one hand)
        dists = [np.linalg.norm(d.keypoints2d - offset - joints2d, axis=1) for d in dets]
        best = int(np.argmin([np.median(d) for d in dists]))
        out[view] = {
            "side_right": dets[best].handedness == side,
            "distance": float(np.median(dists[best]) / hand_size(joints2d, divisor=True)),
        }
    return out


def mirror_flips(results: list[dict], view: str) -> dict:
    """Consecutive results are a picture and its mirror image: of the pairs found in both, the share whose
    two sides the judge names differently. A judge that reads a hand's chirality flips every pair; one that
    guesses from cues a mirror keeps (pose, view, priors) names both pictures alike, so it cannot be right
    on both."""
    pairs = [
        (a[view], b[view]) for a, b in zip(results[::2], results[1::2], strict=True) if a[view] and b[view]
    ]
    # the true sides differ, so the named sides differ exactly when both are right or both are wrong
    flips = [a["side_right"] == b["side_right"] for a, b in pairs]
    return {"pairs_found": len(pairs), "sides_flip": round(float(np.mean(flips)), 4) if flips else None}


def summarize(results: list[dict]) -> dict:
    """Found share, side-right share of found, median normalized distance, mirror flips, per view."""
    summary = {}
    for view in VIEWS:
        found = [r[view] for r in results if r[view] is not None]
        summary[view] = {
            "pictures": len(results),
            "found": round(len(found) / max(len(results), 1), 4),
            "side_right": round(float(np.mean([f["side_right"] for f in found])), 4) if found else None,
            "median_distance": round(float(np.median([f["distance"] for f in found])), 4) if found else None,
            "mirror": mirror_flips(results, view),
        }
    return summary


def settings(appearance: str, seed: int, size: int) -> dict:
    """The clean and default SynthConfigs of an appearance."""
    from handmesh.data.photo import NO_EFFECTS
    from handmesh.data.synth import SynthConfig

    default = SynthConfig(seed=seed, size=size, appearance=appearance)
    clean = replace(default, occluder_prob=0.0, object_prob=0.0, camera=NO_EFFECTS)
    return {"clean": clean, "default": default}


def render_cost(cfg, images: int) -> dict:
    """`handmesh synth` images/s with 1 and 2 workers for one config (its labels included)."""
    from handmesh.data.synth import synthesize

    out = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            stats = synthesize(replace(cfg, train=images, eval=0, workers=workers), tmp)
        out[f"workers_{workers}"] = {
            "images_per_s": stats["images_per_s"],
            "cpu_ms_per_image": stats["cpu_ms_per_image"],
        }
    return out


def cost_rounds(cfgs: dict, images: int, rounds: int) -> tuple[dict, dict]:
    """Per appearance, the median cost over `rounds` alternating rounds (and each round's figures); the
    ratio of the first appearance's images/s to each other's per round: median and range."""
    measured: dict[str, list[dict]] = {name: [] for name in cfgs}
    for _ in range(max(int(rounds), 1)):
        for name, cfg in cfgs.items():
            measured[name].append(render_cost(cfg, images))
    costs = {}
    for name, runs in measured.items():
        costs[name] = {
            k: {m: round(float(np.median([r[k][m] for r in runs])), 2) for m in runs[0][k]} for k in runs[0]
        }
        costs[name]["rounds"] = runs
    first, *others = list(cfgs)
    ratios = {}
    for other in others:
        for k in measured[first][0]:
            per_round = [
                a[k]["images_per_s"] / max(b[k]["images_per_s"], 1e-9)
                for a, b in zip(measured[first], measured[other], strict=True)
            ]
            ratios[k] = {
                "median": round(float(np.median(per_round)), 3),
                "range": [round(min(per_round), 3), round(max(per_round), 3)],
            }
    return costs, ratios


def run(args: argparse.Namespace) -> int:
    """Render, judge, measure the cost; write the JSON (and the sheet)."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    from handmesh.data.stream import SynthStream
    from handmesh.geometry_np import project_points_np
    from handmesh.pipeline.detector import MediaPipeDetector

    detector = MediaPipeDetector(max_hands=2, model_complexity=1)
    seed = BENCH_SEED + int(args.seed)
    out: dict = {"count": int(args.count), "size": int(args.size), "stream_seed": seed, "appearances": {}}
    sheet_tiles = []
    for appearance in [a.strip() for a in args.appearances.split(",") if a.strip()]:
        entry: dict = {}
        for name, cfg in settings(appearance, seed, int(args.size)).items():
            stream = SynthStream(cfg)
            results = []
            t0 = time.perf_counter()
            for i in range(int(args.count)):
                for side in ("right", "left"):
                    rec = stream.record(i, side)
                    uv = project_points_np(rec.joints3d, rec.K)
                    results.append(judge(detector, rec.image, uv, side))
                    if (
                        args.sheet
                        and appearance == "realistic"
                        and name == "default"
                        and len(sheet_tiles) < 24
                        and side == ("right", "left")[i % 2]  # one side of each scene, in turn
                    ):
                        sheet_tiles.append(rec.image)
            stream.close()
            entry[name] = summarize(results)
            entry[name]["seconds"] = round(time.perf_counter() - t0, 1)
            padded = entry[name]["padded"]
            print(
                f"{appearance} {name}: found {padded['found']:.3f} padded,"
                f" {entry[name]['as_rendered']['found']:.3f} as rendered; side right {padded['side_right']};"
                f" distance {padded['median_distance']}; sides flip {padded['mirror']['sides_flip']}"
                f" of {padded['mirror']['pairs_found']} mirror pairs"
            )
        out["appearances"][appearance] = entry
    compared = [a for a in ("plain", "realistic") if a in out["appearances"]]
    if args.cost_images > 0 and compared:
        cfgs = {a: settings(a, seed, int(args.size))["default"] for a in compared}
        costs, ratios = cost_rounds(cfgs, int(args.cost_images), int(args.cost_rounds))
        for a, cost in costs.items():
            out["appearances"][a]["cost"] = cost
            medians = {k: v for k, v in cost.items() if k != "rounds"}
            print(f"{a} cost (median of {args.cost_rounds} rounds): {medians}")
        if ratios:
            out["cost_ratio_realistic_to_plain"] = ratios
            print(f"cost ratio realistic / plain (images/s per round): {ratios}")
    real: dict = {}
    for folder in [f.strip() for f in args.real.split(",") if f.strip()]:
        found = judge_real(detector, Path(folder)) or {}
        real.update({f"{Path(folder).name}/{source}": summary for source, summary in found.items()})
    if real:
        out["real_reference"] = real
        for source, summary in real.items():
            print(
                f"real {source}: found {summary['padded']['found']:.3f} padded; side right"
                f" {summary['padded']['side_right']}; distance {summary['padded']['median_distance']};"
                f" sides flip {summary['padded']['mirror']['sides_flip']}"
                f" of {summary['padded']['mirror']['pairs_found']} mirror pairs"
            )
    out["machine"] = machine_info()
    if args.sheet and sheet_tiles:
        write_sheet(sheet_tiles, Path(args.sheet))
    write_result(args.json, out)
    return 0


def write_sheet(tiles: list[np.ndarray], path: Path, columns: int = 6) -> None:
    """A grid of pictures as one PNG."""
    import cv2

    columns = min(columns, len(tiles))
    rows = len(tiles) // columns
    grid = np.concatenate([np.concatenate(tiles[r * columns : (r + 1) * columns], 1) for r in range(rows)], 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grid[..., ::-1])
