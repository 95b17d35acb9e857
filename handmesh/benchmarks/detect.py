"""Hands found in still images, their sides, duplicates and time per image, per search setting; and side switches of tracked hands in clips.

Still images: every labelled hand of the real sets (custom-dataset folders, default
bench/realsets/detect: COCO-WholeBody scenes, InterHand2.6M studio close-ups, CMU Panoptic HandDB; see
its SOURCES.md) and of realistic renders (`SynthStream(...).record(i, side)`, a right and a left hand per
scene, seeds no training run uses). Each setting detects every image: "today" is what `predict` and
`label` ran before the still-image search (MediaPipe's lite landmark model, one still-image pass), "fast"
and "thorough" are `handmesh.pipeline.search` presets. A detection is a labelled hand's when their
keypoints lie within 30 % of the hand's size of each other on average (one detection per hand, closest
first); a second detection of a matched hand is a duplicate; one matching no labelled hand is
"unmatched" (a false hand, or a hand the labels skip: COCO-WholeBody labels only clear hands). Hands are
bucketed by size (the longer side of their labelled keypoints' box): < 40, 40-100, > 100 px. Time per
640x480 image: each real image letterboxed into 640x480; the settings take turns on each image (after
one untimed run each), so the machine's load hits them alike, and each setting's time ratio to the first
setting is the median of the per-image ratios; `--rounds` passes over the images in one process give
that ratio's spread (each round's ratio and load average are stored), and the process's CPU time per
image gives a ratio that other jobs on the machine disturb less than wall time.

Clips: 30-frame videos of one unchanging picture (each real photo of `--clip-real`, by default the
detection set and the 2D keypoint set, with a hand of 40 px or more, and the first `--still-renders`
renders), written as H.264 and read back like a user's video, and rendered clips of two moving hands
(`handmesh.pipeline.synthetic`), through the video path (MediaPipe tracking, the landmark fit), with the
side votes of `handmesh.pipeline.tracking.TrackSides` off (per-frame labels, as before) and on: side
switches per track-minute (all, and after each track's first `SideVoteConfig.settle` frames, where its
side is established), and the share of frames whose side is right. Writes
bench/results/detect_cpu.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from handmesh.benchmarks.common import photo_source, scene_records, timing_stats, write_result
from handmesh.config import add_bool_option

RESULTS = Path("bench/results/detect_cpu.json")
REALSET = Path("bench/realsets/detect")
CLIP_REALSETS = (REALSET, Path("bench/realsets/keypoints"))  # still-photo clips: more single hands
SETTINGS = ("today", "fast", "thorough")
BUCKETS = (("<40", 0.0, 40.0), ("40-100", 40.0, 100.0), (">100", 100.0, float("inf")))
MATCH = 0.3  # mean keypoint distance / hand size below which a detection is that hand
BENCH_SEED = 400_000  # render seeds: training uses 0 on and 100,000 on, bench handedness 200,000 on
CLIP_FPS = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench detect`."""
    parser.add_argument(
        "--real",
        action="append",
        default=None,
        help=f"a custom-dataset folder of labelled photos (repeatable; default {REALSET})",
    )
    parser.add_argument(
        "--renders", type=int, default=30, help="rendered scenes (a right and a left hand each)"
    )
    parser.add_argument("--render-size", dest="render_size", type=int, default=224, help="render side, px")
    parser.add_argument("--seed", type=int, default=0, help=f"render seed (plus {BENCH_SEED})")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma list of today, fast, thorough")
    parser.add_argument(
        "--max-hands",
        dest="max_hands",
        type=int,
        default=2,
        help="hands asked for per image (predict's default)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per 640x480 image and round")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="passes over the 640x480 images (each round's time ratio is stored: their spread)",
    )
    parser.add_argument("--clip-frames", dest="clip_frames", type=int, default=30, help="frames per clip")
    parser.add_argument(
        "--clip-real",
        dest="clip_real",
        action="append",
        default=None,
        help="a labelled folder whose photos become still clips (repeatable; default "
        + ", ".join(str(f) for f in CLIP_REALSETS)
        + ")",
    )
    parser.add_argument(
        "--still-renders",
        dest="still_renders",
        type=int,
        default=20,
        help="clips of the first renders, each a still picture like the photos' clips",
    )
    parser.add_argument(
        "--render-clips", dest="render_clips", type=int, default=2, help="rendered clips of two moving hands"
    )
    add_bool_option(parser, "--clips", "time the clip part too (--no-clips: skip it)", True)
    parser.add_argument("--json", default=str(RESULTS), help="output JSON")
    parser.add_argument("--note", default="", help="a remark stored with the result (e.g. what else ran)")


@dataclasses.dataclass
class Truth:
    """One labelled hand: keypoints (21, 2) px, which are labelled, its side and size."""

    keypoints: np.ndarray
    labelled: np.ndarray
    side: str

    @property
    def size(self) -> float:
        """The hand's size in px (`handmesh.metrics2d.hand_size`)."""
        from handmesh.metrics2d import hand_size

        return hand_size(self.keypoints, self.labelled)


@dataclasses.dataclass
class Item:
    """One image and its labelled hands."""

    name: str
    image: np.ndarray
    hands: list[Truth]
    kind: str  # "real" | "render"


def bucket(size: float) -> str:
    """The size bucket's name."""
    return next(name for name, lo, hi in BUCKETS if lo <= size < hi)


def real_items(folder: Path) -> list[Item]:
    """The labelled photos of a custom-dataset folder (hands with 2D keypoints), one item per image."""
    from handmesh.data.custom import read_annotations
    from handmesh.errors import HandmeshError
    from handmesh.pipeline.media import read_image

    if not (folder / "annotations.jsonl").is_file() and (folder / "build.py").is_file():
        # the project's real sets are built from their public sources on the machine, never committed
        raise HandmeshError(
            f"{folder}: not built here; build it with python {folder}/build.py SOURCES_FOLDER"
            f" (see {folder}/SOURCES.md), or name another set with --real"
        )
    anns, problems, _ = read_annotations(folder)
    if problems:
        raise HandmeshError(f"{folder}: {problems[0]}")
    by_image: dict[Path, list[Truth]] = {}
    for a in anns:
        if a.keypoints2d is None:
            continue
        labelled = a.keypoints_conf > 0 if a.keypoints_conf is not None else np.ones(21, bool)
        by_image.setdefault(a.image, []).append(Truth(a.keypoints2d, labelled, a.side))
    return [
        Item(f"{folder.name}/{p.name}", read_image(p), hands, "real") for p, hands in sorted(by_image.items())
    ]


def render_items(count: int, size: int, seed: int) -> list[Item]:
    """Realistic renders: scene i as a right hand and as its mirror image, a left hand."""
    from handmesh.data.stream import SynthStream
    from handmesh.data.synth import SynthConfig
    from handmesh.geometry_np import project_points_np

    stream = SynthStream(SynthConfig(seed=BENCH_SEED + seed, size=size))
    items = []
    for i, side, rec in scene_records(stream, count):
        kp = rec.keypoints2d if rec.keypoints2d is not None else project_points_np(rec.joints3d, rec.K)
        truth = Truth(np.asarray(kp, dtype=np.float64), np.ones(21, bool), side)
        items.append(Item(f"render_{i}_{side}", rec.image, [truth], "render"))
    return items


def match(truths: list[Truth], found: list) -> tuple[dict[int, int], int, int]:
    """Labelled hand -> detection (one each, closest first), duplicates, unmatched detections."""
    from handmesh.metrics2d import hand_size

    close = []
    for ti, t in enumerate(truths):
        size = hand_size(t.keypoints, t.labelled, divisor=True)
        for di, d in enumerate(found):
            if d.keypoints2d is None:
                continue
            err = np.linalg.norm(d.keypoints2d[t.labelled] - t.keypoints[t.labelled], axis=1).mean()
            if err < MATCH * size:
                close.append((err / size, ti, di))
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for _, ti, di in sorted(close):
        if ti not in pairs and di not in used:
            pairs[ti] = di
            used.add(di)
    near = {di for _, _, di in close}
    duplicates = len(near - used)
    unmatched = len(set(range(len(found))) - near)
    return pairs, duplicates, unmatched


def _detector(setting: str, max_hands: int):
    from handmesh.pipeline.detector import MediaPipeDetector
    from handmesh.pipeline.search import StillImageDetector

    if setting == "today":
        return MediaPipeDetector(max_hands=max_hands, model_complexity=0)
    return StillImageDetector(max_hands=max_hands, search=setting)


def score_setting(items: list[Item], detect: Callable) -> dict:
    """Found, side right, duplicates and unmatched per kind and size bucket (hands of 40 px or more found
    per source too: one source's many pictures would hide another's); time per image."""
    table: dict[str, dict[str, dict[str, int]]] = {}
    sources: dict[str, dict[str, int]] = {}
    times: dict[str, list[float]] = {}
    misses = []
    for item in items:
        t0 = time.perf_counter()
        found = detect(item.image)
        times.setdefault(item.kind, []).append((time.perf_counter() - t0) * 1000.0)
        pairs, dup, unmatched = match(item.hands, found)
        kind = table.setdefault(item.kind, {})
        for ti, t in enumerate(item.hands):
            row = kind.setdefault(bucket(t.size), dict(hands=0, found=0, side_right=0))
            row["hands"] += 1
            if ti in pairs:
                row["found"] += 1
                row["side_right"] += int(found[pairs[ti]].handedness == t.side)
            elif t.size >= 40:
                misses.append(f"{item.name} ({t.side}, {t.size:.0f} px)")
            if t.size >= 40:
                per = sources.setdefault(photo_source(item.name), dict(hands_40px_or_more=0, found=0))
                per["hands_40px_or_more"] += 1
                per["found"] += int(ti in pairs)
        extra = kind.setdefault("all", dict(duplicates=0, unmatched=0, images=0))
        extra["duplicates"] += dup
        extra["unmatched"] += unmatched
        extra["images"] += 1
    for kind in table.values():
        for name, row in kind.items():
            if name != "all":
                row["found_share"] = round(row["found"] / max(row["hands"], 1), 4)
                row["side_right_share_of_found"] = round(row["side_right"] / max(row["found"], 1), 4)
    return {
        "by_kind": table,
        "by_source": sources,
        "ms_per_image": {k: timing_stats(v) for k, v in times.items()},
        "missed_40px_or_more": misses,
    }


def headline(scored: dict, kinds: tuple[str, ...]) -> dict:
    """Hands of 40 px or more (and under 40) over the given kinds: found share, side right share."""
    big = {"hands": 0, "found": 0, "side_right": 0}
    small = {"hands": 0, "found": 0}
    dup = 0
    for kind in kinds:
        for name, row in scored["by_kind"].get(kind, {}).items():
            if name == "all":
                dup += row["duplicates"]
            elif name == "<40":
                small["hands"] += row["hands"]
                small["found"] += row["found"]
            else:
                for k in big:
                    big[k] += row[k]
    return {
        "hands_40px_or_more": big["hands"],
        "found_40px_or_more": round(big["found"] / max(big["hands"], 1), 4),
        "side_right_of_found": round(big["side_right"] / max(big["found"], 1), 4),
        "hands_under_40px": small["hands"],
        "found_under_40px": round(small["found"] / max(small["hands"], 1), 4),
        "duplicates": dup,
    }


def letterbox(image: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """The image scaled to fit width x height, centred on black (the timing size)."""
    import cv2

    h, w = image.shape[:2]
    s = min(width / w, height / h)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.zeros((height, width, 3), np.uint8)
    y, x = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def time_640x480(images: list[np.ndarray], detectors: dict, repeats: int, rounds: int = 1) -> dict[str, dict]:
    """Per-image ms of each setting on 640x480 letterboxed images, in `rounds` passes over the images in
    one process. The settings take turns on each image (after one untimed run each), so a change in the
    machine's load hits them alike; each setting's time ratio to the first one is the median of the
    per-image ratios, over all rounds and per round (its spread), of wall time and of the process's CPU
    time (less sensitive to other jobs on the machine than wall time)."""
    wall: dict[str, list[float]] = {name: [] for name in detectors}
    cpu: dict[str, list[float]] = {name: [] for name in detectors}
    per_round: list[tuple[int, int, float | None]] = []  # (first, end) sample index, load at its start
    for im in images:
        for det in detectors.values():
            det.detect(im, static=True)
    for _ in range(max(1, rounds)):
        start = len(next(iter(wall.values())))
        load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
        for im in images:
            for _ in range(repeats):
                for name, det in detectors.items():
                    c0, t0 = time.process_time(), time.perf_counter()
                    det.detect(im, static=True)
                    wall[name].append((time.perf_counter() - t0) * 1000.0)
                    cpu[name].append((time.process_time() - c0) * 1000.0)
        per_round.append((start, len(next(iter(wall.values()))), load))
    first = next(iter(detectors))

    def ratios(values: dict[str, list[float]], name: str, lo: int = 0, hi: int | None = None) -> float:
        pairs = zip(values[name][lo:hi], values[first][lo:hi], strict=True)
        return round(float(np.median([v / max(b, 1e-9) for v, b in pairs])), 2)

    out = {}
    for name, values in wall.items():
        by_round = [
            dict(ratio=ratios(wall, name, lo, hi), cpu_ratio=ratios(cpu, name, lo, hi), load_1min=load)
            for lo, hi, load in per_round
        ]
        out[name] = dict(
            timing_stats(values),
            ratio_to_first_median=ratios(wall, name),
            cpu_ms_median=round(float(np.median(cpu[name])), 3),
            cpu_ratio_to_first_median=ratios(cpu, name),
            rounds=by_round,
            ratio_range_over_rounds=[min(r["ratio"] for r in by_round), max(r["ratio"] for r in by_round)],
        )
    return out


# --- clips -----------------------------------------------------------------------------------------


def _video_frames(image: np.ndarray, frames: int, folder: Path) -> list[np.ndarray]:
    """`frames` copies of a photo written as a video file and read back (compression noise included)."""
    from handmesh.pipeline.media import VideoWriter, iter_video

    h, w = image.shape[:2]
    image = np.ascontiguousarray(image[: h - h % 2, : w - w % 2])  # H.264 wants even sides
    path = folder / "clip.mp4"
    with VideoWriter(path, CLIP_FPS, (image.shape[1], image.shape[0])) as writer:
        for _ in range(frames):
            writer.write(image)
    return list(iter_video(path))


def clip_sides(frames, votes: bool, K=None, truth=None) -> dict[int, list[tuple[str, bool | None]]]:
    """Each track's reported side per frame through the video path (detect and estimate stages), and
    whether it is right where `truth` (per frame, the true detections) is given."""
    from handmesh.pipeline.detector import MediaPipeDetector
    from handmesh.pipeline.estimator import LandmarkFitEstimator
    from handmesh.pipeline.pipeline import HandMeshPipeline, PipelineConfig
    from handmesh.pipeline.tracking import box_iou

    detector = MediaPipeDetector(max_hands=2)
    pipe = HandMeshPipeline(LandmarkFitEstimator(), detector, PipelineConfig(side_votes=votes))
    tracks: dict[int, list[tuple[str, bool | None]]] = {}
    try:
        for i, frame in enumerate(frames):
            job = pipe.estimate(pipe.detect(frame, K, i / CLIP_FPS))
            for d in job.detections:
                right = None
                if truth is not None:
                    ious = [(box_iou(np.asarray(d.box), t.box), t.handedness) for t in truth[i]]
                    best = max(ious, default=(0.0, None))
                    right = best[1] == d.handedness if best[0] >= 0.3 else None
                tracks.setdefault(d.track_id, []).append((d.handedness, right))
    finally:
        detector.close()
    return tracks


def switches(sides: list[str]) -> int:
    """How often a sequence of sides changes."""
    return sum(a != b for a, b in zip(sides, sides[1:], strict=False))


def clip_summary(runs: list[dict[int, list[tuple[str, bool | None]]]]) -> dict:
    """Side switches per track-minute over clips, and the share of frames with the right side (if known)."""
    seqs = [[side for side, _ in s] for tracks in runs for s in tracks.values()]
    judged = [ok for tracks in runs for s in tracks.values() for _, ok in s if ok is not None]
    n_switch = sum(switches(s) for s in seqs)
    frames = sum(len(s) for s in seqs)
    out = {
        "tracks": len(seqs),
        "track_frames": frames,
        "side_switches": n_switch,
        "switches_per_track_minute": round(n_switch / max(frames / CLIP_FPS / 60.0, 1e-9), 2),
        "tracks_with_a_switch": sum(switches(s) > 0 for s in seqs),
    }
    from handmesh.pipeline.tracking import SideVoteConfig

    # after a track's first `SideVoteConfig.settle` frames its side is established: switches there are flicker
    settle = SideVoteConfig().settle
    late = [s[settle - 1 :] for s in seqs if len(s) > settle]
    late_minutes = sum(len(s) - 1 for s in late) / CLIP_FPS / 60.0
    out["established_side_switches"] = sum(switches(s) for s in late)
    out["established_switches_per_track_minute"] = round(
        out["established_side_switches"] / max(late_minutes, 1e-9), 2
    )
    if judged:
        out["frames_side_right"] = round(sum(judged) / len(judged), 4)
    return out


def _letters(tracks) -> dict[str, str]:
    return {str(k): "".join(side[0].upper() for side, _ in v) for k, v in tracks.items()}


def _truth_detections(item: Item) -> list:
    """An item's labelled hands as detections (box and side), for judging a clip's sides."""
    from handmesh.pipeline.detector import HandDetection

    out = []
    for t in item.hands:
        kp = t.keypoints[t.labelled]
        out.append(HandDetection(box=np.concatenate([kp.min(axis=0), kp.max(axis=0)]), handedness=t.side))
    return out


def run_clips(items: list[Item], args) -> dict:
    """Clips of still pictures (real photos, renders) and rendered moving clips, side votes off and on."""
    from handmesh.pipeline.synthetic import render_hand_video

    photos = [it for f in (args.clip_real or CLIP_REALSETS) for it in real_items(Path(f))]
    stills = [it for it in photos if any(t.size >= 40 for t in it.hands)]
    stills += [it for it in items if it.kind == "render"][: args.still_renders]
    with tempfile.TemporaryDirectory(prefix="handmesh-bench-detect-") as tmp:
        videos = [_video_frames(it.image, args.clip_frames, Path(tmp)) for it in stills]
    moving = [
        render_hand_video(3 * args.clip_frames, hands=2, seed=BENCH_SEED + args.seed + c)
        for c in range(args.render_clips)
    ]
    out: dict[str, dict] = {"still_photos": {}, "still_renders": {}, "moving_renders": {}}
    for votes in (False, True):
        key = "votes" if votes else "per_frame"
        for kind, part in (("real", "still_photos"), ("render", "still_renders")):
            chosen = [(it, v) for it, v in zip(stills, videos, strict=True) if it.kind == kind]
            runs = [clip_sides(v, votes, truth=[_truth_detections(it)] * len(v)) for it, v in chosen]
            out[part][key] = dict(
                clip_summary(runs),
                sides={it.name: _letters(t) for (it, _), t in zip(chosen, runs, strict=True)},
            )
        if moving:
            runs = [clip_sides(v.frames, votes, v.K, v.detections) for v in moving]
            out["moving_renders"][key] = dict(clip_summary(runs), sides=[_letters(t) for t in runs])
    out["still_photos"]["frames_per_clip"] = out["still_renders"]["frames_per_clip"] = args.clip_frames
    out["moving_renders"]["frames_per_clip"] = 3 * args.clip_frames
    return out


def run(args: argparse.Namespace) -> int:
    """Detect, match, time; the clips; write the JSON."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    from handmesh.benchmarks.common import machine_info
    from handmesh.errors import HandmeshError

    machine = machine_info()
    settings = [s.strip() for s in str(args.settings).split(",") if s.strip()]
    if not settings or any(s not in SETTINGS for s in settings):
        raise HandmeshError(f"--settings: choose from {', '.join(SETTINGS)} (got {args.settings!r})")
    folders = [Path(f) for f in (args.real or [REALSET])]
    items = [it for f in folders for it in real_items(f)]
    n_real = len(items)
    items += render_items(int(args.renders), int(args.render_size), int(args.seed))
    boxed = [letterbox(it.image) for it in items[:n_real]]
    detectors = {setting: _detector(setting, int(args.max_hands)) for setting in settings}
    results: dict[str, dict] = {}
    try:
        for setting, det in detectors.items():
            t0 = time.perf_counter()
            scored = score_setting(items, lambda im, det=det: det.detect(im, static=True))
            scored["seconds"] = round(time.perf_counter() - t0, 1)
            scored["real"] = headline(scored, ("real",))
            scored["render"] = headline(scored, ("render",))
            results[setting] = scored
        timed = time_640x480(boxed, detectors, int(args.repeats), int(args.rounds))
    finally:
        for det in detectors.values():
            det.close()
    for setting, scored in results.items():
        scored["ms_640x480"] = timed[setting]
        r = scored["real"]
        print(
            f"{setting}: real photos {100 * r['found_40px_or_more']:.0f} % of {r['hands_40px_or_more']} hands"
            f" >= 40 px found, sides right {100 * r['side_right_of_found']:.0f} %, under 40 px"
            f" {100 * r['found_under_40px']:.0f} % of {r['hands_under_40px']}; renders"
            f" {100 * scored['render']['found_40px_or_more']:.0f} % found; duplicates"
            f" {r['duplicates'] + scored['render']['duplicates']};"
            f" {timed[setting]['median_ms']:.0f} ms per 640x480 image"
            f" ({timed[setting]['ratio_to_first_median']}x {settings[0]}, rounds"
            f" {'-'.join(str(r) for r in timed[setting]['ratio_range_over_rounds'])}x, CPU time"
            f" {timed[setting]['cpu_ratio_to_first_median']}x)"
        )
        per = ", ".join(f"{k} {v['found']}/{v['hands_40px_or_more']}" for k, v in scored["by_source"].items())
        print(f"  found >= 40 px by source: {per}")
    out = {
        "settings": results,
        "real_sets": [str(f) for f in folders],
        "real_images": n_real,
        "renders": {
            "scenes": int(args.renders),
            "size": int(args.render_size),
            "seed": BENCH_SEED + int(args.seed),
        },
        "max_hands": int(args.max_hands),
        "time_ratios_to": settings[0],
        "match": f"mean keypoint distance < {MATCH} x hand size, one detection per hand",
        "machine_at_start": machine,
    }
    if args.clips:
        out["clips"] = run_clips(items, args)
        out["clip_real_sets"] = [str(f) for f in (args.clip_real or CLIP_REALSETS)]
        for name, part in out["clips"].items():
            for key in ("per_frame", "votes"):
                if key in part:
                    print(
                        f"clips, {name}, {key}: {part[key]['switches_per_track_minute']} side switches per"
                        f" track-minute ({part[key]['established_switches_per_track_minute']} once established),"
                        f" frames with the right side {part[key].get('frames_side_right')}"
                    )
    if args.note:
        out["note"] = args.note
    write_result(args.json, out)
    return 0
