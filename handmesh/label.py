"""`handmesh label INPUT --out DATASET`: pseudo-label a video or a folder of images with landmark fits.

Each detected hand (MediaPipe landmarks) is fitted with the hand model (`handmesh.fit`) and written as one
line of a custom dataset (`annotations.jsonl`, see docs/datasets.md, section Custom datasets) beside a
copy of its image: K, handedness, box, the detector's 2D keypoints, the fitted MANO parameters (in the
convention of the hand's own side) and 3D joints in the camera frame, and a confidence. The labels are
only as good as the landmarks; the confidence says how well the fit agreed with them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from handmesh.config import add_config_options, config_from_args, option
from handmesh.errors import HandmeshError, MissingFileError
from handmesh.pipeline.search import DEFAULT_SEARCH, SEARCHES

ANNOTATIONS = "annotations.jsonl"
REPORT = "label_report.json"
IMAGES = "images"
# Scales of the confidence terms: a fit this far from the 3D landmarks (metres), or whose joints
# project this far from the 2D landmarks (fraction of the box side), is worth exp(-1) of a perfect one.
FIT_ERROR_SCALE = 0.008
REPROJECTION_SCALE = 0.1
HANDEDNESS_MODES = ("checked", "detector", "fit")


@dataclass
class LabelConfig:
    """Settings of `handmesh label` (each field is an option: help and choices live here)."""

    min_confidence: float = field(default=0.5, metadata=option("drop hands below this confidence, 0-1"))
    keep_low: bool = field(
        default=False,
        metadata=option("keep low-confidence hands (their confidence weights them), listed in the report"),
    )
    fov: float = field(default=60.0, metadata=option("horizontal field of view of the camera, degrees"))
    every: int = field(default=1, metadata=option("video: label every n-th frame"))
    max_frames: int = field(default=0, metadata=option("video: read at most this many frames (0: all)"))
    max_hands: int = field(default=2, metadata=option("hands per frame"))
    detector: str = field(
        default="mediapipe-full",  # the larger landmark model: labelling is offline
        metadata=option("MediaPipe's landmark model", choices=("mediapipe", "mediapipe-full")),
    )
    search: str = field(
        default=DEFAULT_SEARCH,
        metadata=option(
            "how hard images are searched for hands (videos are tracked): fast, or thorough (several"
            " times slower; body-guided hands and the body's side as a second vote)",
            choices=SEARCHES,
        ),
    )
    handedness: str = field(
        default="checked",
        metadata=option(
            "checked: write a side only where the detector's label and the fit of both sides agree"
            " clearly (other hands are dropped and listed); detector: trust its label; fit: keep"
            " whichever side the landmarks fit better",
            choices=HANDEDNESS_MODES,
        ),
    )
    overwrite: bool = field(default=False, metadata=option("replace an existing annotations.jsonl"))


@dataclass
class Frame:
    """One input picture: its output name, pixels, the file it came from (images) and whether it is video."""

    name: str
    image: np.ndarray
    source: Path | None
    video: bool


def iter_frames(
    path: Path, every: int = 1, max_frames: int = 0, failed: list[str] | None = None
) -> Iterator[Frame]:
    """Frames of a video file, a single image, or every image under a folder (sorted). With `failed`, an
    unreadable image of a folder is reported on one line, appended there and skipped (the rest still run)."""
    from handmesh.pipeline.media import IMAGE_EXTS, VIDEO_EXTS, iter_video, read_image

    if not path.exists():
        raise MissingFileError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if path.is_file() and suffix in VIDEO_EXTS:
        for i, frame in enumerate(iter_video(path, max_frames or None)):
            if i % every == 0:
                yield Frame(f"{path.stem}_{i:06d}.jpg", frame, None, True)
        return
    if path.is_file():
        if suffix not in IMAGE_EXTS:
            raise HandmeshError(f"{path}: not an image ({', '.join(sorted(IMAGE_EXTS))}) or a video")
        files, base = [path], path.parent
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
        base = path
        if not files:
            raise HandmeshError(f"{path}: no images found in this folder")
    for f in files:
        try:
            image = read_image(f)
        except HandmeshError as exc:
            if failed is None or len(files) == 1:
                raise
            print(f"handmesh label: error: {exc}", file=sys.stderr)
            failed.append(str(exc))
            continue
        # Folder structure flattened into the name, so images in different sub-folders cannot collide.
        yield Frame("__".join(f.relative_to(base).parts), image, f, False)


def hand_confidence(score: float, fit_error: float, reprojection_px: float, box: np.ndarray) -> float:
    """Detector score x agreement of the fit with the 3D landmarks x with the 2D landmarks, in [0, 1]."""
    side = max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0)
    q3 = np.exp(-((fit_error / FIT_ERROR_SCALE) ** 2))
    q2 = np.exp(-((reprojection_px / side / REPROJECTION_SCALE) ** 2))
    return float(np.clip(score, 0.0, 1.0) * q3 * q2)


def hand_doubts(found, K: np.ndarray, check_sides: bool = True) -> list[list[str]]:
    """Why each fitted hand should not become a label: failed plausibility checks, an uncertain side.

    The side is uncertain unless the fit of both sides (`handmesh.pipeline.handedness`) clearly prefers
    the side the detector named; MediaPipe's label alone is wrong for about half of rendered hands.
    """
    from handmesh.pipeline.handedness import decide_sides
    from handmesh.pipeline.plausibility import PlausibilityConfig, check_hand

    limits = PlausibilityConfig()
    decisions = decide_sides(found.detections, K) if check_sides else None
    doubts = []
    for i, d in enumerate(found.detections):
        check = check_hand(found.fit.joints[i], K, d.keypoints2d, d.box, config=limits)
        why = list(check.reasons) if check.factor < limits.min_factor else []
        if decisions is not None and decisions[i].side != d.handedness:
            why.append("uncertain side" if decisions[i].side is None else "sides disagree")
        if check_sides and d.sides_agree is False:
            why.append("body's side disagrees")
        doubts.append(why)
    return doubts


def _round(a, digits: int) -> list:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


def annotation_line(image: str, K: np.ndarray, det, fit, i: int, own: dict, confidence: float) -> dict:
    """One annotations.jsonl object for hand i of a fit (metres rounded to micrometres, pixels to 0.01)."""
    pose = np.concatenate([own["global_orient"][i], own["hand_pose"][i]])
    # the detector's confidence in the side written; a side the fit chose against it is the other one's
    side_conf = det.side_confidence if fit.sides[i] == det.handedness else 1.0 - det.side_confidence
    return {
        "image": image,
        "K": _round(K, 4),
        "handedness": fit.sides[i],
        "side_confidence": round(float(side_conf), 4),
        "box": _round(det.box, 2),
        "keypoints2d": _round(det.keypoints2d, 2),
        "mano": {
            "pose": _round(pose, 6),
            "betas": _round(own["betas"][i], 6),
            "transl": _round(own["transl"][i], 6),
        },
        "joints3d": _round(fit.joints[i], 6),
        "confidence": round(confidence, 4),
    }


def label(input_path: str | Path, out: str | Path, cfg: LabelConfig | None = None, detector=None) -> dict:
    """Detect, fit and write the dataset; returns the report (also saved as label_report.json)."""
    from handmesh.pipeline.crop import check_view_options, default_intrinsics
    from handmesh.pipeline.media import write_image
    from handmesh.pipeline.predictor import build_detector, fit_landmarks

    cfg = cfg or LabelConfig()
    if cfg.handedness not in HANDEDNESS_MODES:
        raise HandmeshError(
            f"--handedness must be one of {', '.join(HANDEDNESS_MODES)}, got {cfg.handedness!r}"
        )
    if cfg.every < 1:
        raise HandmeshError("--every must be at least 1")
    if not 0.0 <= cfg.min_confidence <= 1.0:
        raise HandmeshError("--min-confidence must be in [0, 1]")
    check_view_options(cfg.fov, cfg.max_hands)
    input_path, out = Path(input_path), Path(out)
    failed: list[str] = []
    frames = iter_frames(input_path, cfg.every, cfg.max_frames, failed)
    first = next(frames, None)  # fails on bad input before anything is written
    if first is None:
        raise HandmeshError(f"{input_path}: no readable image ({len(failed)} could not be read)")
    ann_path = out / ANNOTATIONS
    if ann_path.exists() and not cfg.overwrite:
        raise HandmeshError(f"{ann_path} exists: pass --overwrite to replace it, or choose another --out")
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    detector = detector if detector is not None else build_detector(cfg.detector, cfg.max_hands, cfg.search)

    stats = {"frames": 0, "frames_with_hands": 0, "hands_detected": 0, "hands_kept": 0, "hands_dropped": 0}
    low: list[dict] = []
    doubtful: list[dict] = []  # dropped for an uncertain side or an implausible hand, with the reasons
    fit_ms: list[float] = []
    lines = 0
    with open(ann_path, "w", encoding="utf-8") as fh:
        for frame in _chain(first, frames):
            stats["frames"] += 1
            h, w = frame.image.shape[:2]
            K = default_intrinsics(w, h, cfg.fov)
            sides = "detector" if cfg.handedness == "checked" else cfg.handedness
            found = fit_landmarks(detector, frame.image, K, sides, static=not frame.video)
            if found is None:
                continue
            dets, fit, own = found.detections, found.fit, found.own
            stats["frames_with_hands"] += 1
            stats["hands_detected"] += len(dets)
            fit_ms.append(found.ms_per_hand)
            image_rel = f"{IMAGES}/{frame.name}"
            wrote_image = False
            doubts = hand_doubts(found, K, check_sides=cfg.handedness == "checked")
            for i, d in enumerate(dets):
                conf = hand_confidence(d.score, float(fit.error[i]), float(fit.reprojection[i]), d.box)
                if conf >= cfg.min_confidence and doubts[i]:
                    stats["hands_dropped"] += 1
                    doubtful.append({"image": image_rel, "hand": i, "why": doubts[i]})
                    continue
                if conf < cfg.min_confidence:
                    entry = {"image": image_rel, "hand": i, "confidence": round(conf, 4)}
                    if not cfg.keep_low:
                        stats["hands_dropped"] += 1
                        low.append(dict(entry, kept=False))
                        continue
                    low.append(dict(entry, kept=True, line=lines + 1))
                if not wrote_image:
                    _save_image(frame, out / image_rel, write_image)
                    wrote_image = True
                fh.write(json.dumps(annotation_line(image_rel, K, d, fit, i, own, conf)) + "\n")
                lines += 1
                stats["hands_kept"] += 1
    report = {
        "input": str(input_path),
        "dataset": str(out),
        **stats,
        "annotations": lines,
        "low_confidence": low,
        "doubtful": doubtful,
        "failed_inputs": failed,
        "fit_ms_per_hand_median": round(float(np.median(fit_ms)), 3) if fit_ms else None,
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
    }
    (out / REPORT).write_text(json.dumps(report, indent=2))
    return report


def _chain(first: Frame, rest: Iterator[Frame]) -> Iterator[Frame]:
    yield first
    yield from rest


def _save_image(frame: Frame, dest: Path, write_image) -> None:
    if frame.source is not None:
        shutil.copyfile(frame.source, dest)  # the original bytes: no second lossy encoding
    else:
        write_image(dest, frame.image)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `handmesh label`."""
    p.add_argument("input", help="a video file (e.g. a webcam recording), an image, or a folder of images")
    p.add_argument("--out", required=True, help="dataset folder to write (annotations.jsonl, images/)")
    add_config_options(p, LabelConfig)


def run(args: argparse.Namespace) -> int:
    """Label, print a one-line summary, exit 0 (1 when no hand was kept)."""
    cfg = config_from_args(LabelConfig(), args)
    report = label(args.input, args.out, cfg)
    n_low = sum(1 for e in report["low_confidence"] if e["kept"])
    print(
        f"{report['frames']} frame(s), {report['hands_detected']} hand(s) detected: {report['hands_kept']} labelled"
        f" ({n_low} low-confidence kept), {report['hands_dropped']} dropped -> {Path(args.out) / ANNOTATIONS};"
        f" check it with `handmesh check-dataset {args.out}`",
        file=sys.stderr,
    )
    if report["failed_inputs"]:
        print(f"handmesh label: {len(report['failed_inputs'])} image(s) could not be read", file=sys.stderr)
    return 0 if report["hands_kept"] and not report["failed_inputs"] else 1
