"""`handmesh predict INPUT --out DIR`: hand meshes for images, folders and videos, without a browser.

Per image: `NAME_overlay.png`, meshes (`NAME.glb` with every hand, `NAME_handN.obj/.ply`) and `NAME.json`
(model, camera, per-stage times, each hand's handedness, box, parameters, 3D and 2D joints). Per video:
`NAME_overlay.mp4` (or .webm) and `NAME.json` with one entry per frame. A file that cannot be read is
reported on one line and the others are still processed (exit status 1 if any failed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from handmesh.config import add_dataclass_args, dataclass_from_args
from handmesh.errors import HandmeshError, MissingFileError


def add_parser(subparsers) -> None:
    """Register `handmesh predict`."""
    from handmesh.pipeline.pipeline import PipelineConfig

    p = subparsers.add_parser(
        "predict",
        help="hand meshes for images, folders and videos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="an image, a video, or a folder of them")
    p.add_argument("--out", required=True, help="output folder (created)")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--checkpoint", help="trained model file (.pt); --runtime: ONNX Runtime on CPU, torch on GPU"
    )
    src.add_argument("--onnx", help="exported model (.onnx, ONNX Runtime; its .json sidecar beside it)")
    p.add_argument(
        "--mode",
        default="auto",
        choices=("auto", "model", "landmark-fit"),
        help="mesh source: the model when one is given, else landmark fitting (default auto)",
    )
    p.add_argument(
        "--detector",
        default="mediapipe",
        help="mediapipe | mediapipe-full | static:X0,Y0,X1,Y1[,left|right][;...] (fixed boxes)",
    )
    p.add_argument("--formats", default="obj,glb,ply", help="mesh files to write (comma list of obj,glb,ply)")
    p.add_argument("--video-ext", default=".mp4", choices=(".mp4", ".webm"), help="overlay video container")
    p.add_argument("--max-frames", type=int, default=None, help="stop each video after this many frames")
    add_dataclass_args(p, PipelineConfig)
    p.set_defaults(func=run)


def collect_inputs(path: Path) -> list[Path]:
    """The image and video files to process: the file itself, or a folder's (sorted, non-recursive)."""
    from handmesh.pipeline.media import IMAGE_EXTS, VIDEO_EXTS

    if not path.exists():
        raise MissingFileError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
    if not files:
        raise HandmeshError(f"{path}: no images or videos in this folder")
    return files


def predict_image(pipeline, path: Path, out: Path, formats: list[str]) -> dict:
    """Overlay, meshes and JSON for one image file."""
    from handmesh.pipeline.media import export_meshes, read_image, write_image
    from handmesh.pipeline.pipeline import result_to_dict

    image = read_image(path)
    result = pipeline.process(image, static=True)
    write_image(out / f"{path.stem}_overlay.png", result.frame)
    meshes = [(h.vertices, h.faces, pipeline.color_of(h.handedness)) for h in result.hands]
    files = export_meshes(meshes, out / path.stem, formats) if meshes else []
    data = result_to_dict(result)
    data["input"] = str(path)
    data["mesh_files"] = [f.name for f in files]
    (out / f"{path.stem}.json").write_text(json.dumps(data))
    return data


def predict_video(
    pipeline, path: Path, out: Path, video_ext: str = ".mp4", max_frames: int | None = None, progress=None
) -> dict:
    """Overlay video and per-frame JSON for one video file; `progress(done, total)` is called per frame."""
    from handmesh.pipeline.media import VideoWriter, iter_video, video_info
    from handmesh.pipeline.pipeline import result_to_dict
    from handmesh.pipeline.stream import process_stream

    fps, total, size = video_info(path)
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    pipeline.reset()
    frames = []
    video_path = out / f"{path.stem}_overlay{video_ext}"
    t0 = time.perf_counter()
    with VideoWriter(video_path, fps, size) as writer:
        video = ((frame, None, i / fps) for i, frame in enumerate(iter_video(path, max_frames)))
        for i, result in enumerate(process_stream(pipeline, video)):  # stages overlap across frames
            writer.write(result.frame)
            entry = result_to_dict(result)
            del entry["K"], entry["model"]
            entry["frame"] = i
            frames.append(entry)
            if progress is not None:
                progress(i + 1, total)
    elapsed = time.perf_counter() - t0
    data = {
        "input": str(path),
        "model": pipeline.model_name,
        "fps": fps,
        "K": result.K.tolist() if frames else None,
        "frames": frames,
        "overlay": video_path.name,
        "processing_fps": round(len(frames) / elapsed, 2) if elapsed > 0 else None,
    }
    (out / f"{path.stem}.json").write_text(json.dumps(data))
    return data


def run(args) -> int:
    """Entry point of `handmesh predict`."""
    from handmesh.pipeline.factory import build_pipeline
    from handmesh.pipeline.media import VIDEO_EXTS
    from handmesh.pipeline.pipeline import PipelineConfig

    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    inputs = collect_inputs(Path(args.input))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = dataclass_from_args(PipelineConfig(), args)
    pipeline = build_pipeline(args.checkpoint, args.onnx, args.mode, args.detector, config)
    print(f"handmesh predict: {len(inputs)} input(s), meshes from {pipeline.model_name}", file=sys.stderr)
    failed = 0
    for path in inputs:
        try:
            if path.suffix.lower() in VIDEO_EXTS:
                data = predict_video(pipeline, path, out, args.video_ext, args.max_frames)
                hands = sum(len(f["hands"]) for f in data["frames"])
                print(f"{path}: {len(data['frames'])} frames, {hands} hand detections -> {data['overlay']}")
            else:
                data = predict_image(pipeline, path, out, formats)
                print(f"{path}: {len(data['hands'])} hand(s)")
        except (HandmeshError, OSError) as exc:
            failed += 1
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"handmesh predict: error: {message}", file=sys.stderr)
    if failed:
        print(f"handmesh predict: {failed} of {len(inputs)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0
