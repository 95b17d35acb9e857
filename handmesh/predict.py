"""`handmesh predict INPUT --out DIR`: hand meshes for images, folders and videos, without a browser.

NAME is the input's whole file name (`hand.jpg`), so inputs that differ only in their extension never
share output files. Per image: `NAME_overlay.png`, meshes (`NAME.glb` with every hand,
`NAME_handN.obj/.ply`) and `NAME.json` (model, camera, per-stage times, each hand's handedness, box,
parameters, 3D and 2D joints). Per video: `NAME_overlay.mp4` (or .webm) and `NAME.json` with one entry
per frame. Every image is processed on its own (no state from the images before it, so results do not
depend on file order); a video's frames are tracked and smoothed as a stream. A file that cannot be read is
reported on one line and the others are still processed (exit status 1 if any failed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from handmesh.config import add_bool_option, add_config_options, config_from_args
from handmesh.errors import HandmeshError, MissingFileError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `handmesh predict`."""
    from handmesh.pipeline.pipeline import PipelineConfig
    from handmesh.pipeline.predictor import MODES, SourceConfig

    p.add_argument("input", help="an image, a video, or a folder of them")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument(
        "--mode",
        default="auto",
        choices=MODES,
        help="mesh source: the model when one is given, else landmark fitting (default auto)",
    )
    p.add_argument("--formats", default="obj,glb,ply", help="mesh files to write (comma list of obj,glb,ply)")
    p.add_argument("--video-ext", default=".mp4", choices=(".mp4", ".webm"), help="overlay video container")
    p.add_argument("--max-frames", type=int, default=None, help="stop each video after this many frames")
    add_bool_option(
        p,
        "--mesh-sequence",
        "videos: also write every frame's meshes to NAME_meshes.npz (vertices (frames, hands, 778, 3))",
    )
    add_config_options(p.add_argument_group("mesh source (fixed for the run)"), SourceConfig)
    add_config_options(p.add_argument_group("pipeline (per frame)"), PipelineConfig)


def collect_inputs(path: Path) -> list[Path]:
    """The image and video files to process: the file itself, or a folder's (sorted, non-recursive)."""
    from handmesh.pipeline.media import IMAGE_EXTS, VIDEO_EXTS

    if not path.exists():
        raise MissingFileError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    if not path.is_dir():  # a FIFO would block and /dev/zero never ends
        raise HandmeshError(f"{path}: not a regular file or a folder (a FIFO or device?)")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
    if not files:
        raise HandmeshError(f"{path}: no images or videos in this folder")
    return files


def output_stem(out: Path, path: Path) -> Path:
    """Where one input's files go: named after its whole file name, extension kept, so that x.jpg, x.png
    and x.avi in one folder write x.jpg.json, x.png.json and x.avi.json instead of one x.json."""
    return out / path.name


def predict_image(pipeline, path: Path, out: Path, formats: list[str]) -> dict:
    """Overlay, meshes and JSON for one image file."""
    from handmesh.pipeline.media import export_meshes, write_image
    from handmesh.pipeline.predictor import run_on_image

    result = run_on_image(pipeline, path)
    stem = output_stem(out, path)
    write_image(f"{stem}_overlay.png", result.frame)
    files = export_meshes(result.meshes, stem, formats) if result.meshes else []
    data = dict(result.data, input=str(path), mesh_files=[f.name for f in files])
    Path(f"{stem}.json").write_text(json.dumps(data))
    return data


def predict_video(
    pipeline,
    path: Path,
    out: Path,
    video_ext: str = ".mp4",
    max_frames: int | None = None,
    progress=None,
    mesh_sequence: bool = False,
) -> dict:
    """Overlay video and per-frame JSON for one video file; `progress(done, total)` is called per frame."""
    from handmesh.pipeline.predictor import run_on_video

    stem = output_stem(out, path)
    video = run_on_video(
        pipeline,
        path,
        f"{stem}_overlay{video_ext}",
        max_frames=max_frames,
        progress=progress,
        meshes=f"{stem}_meshes.npz" if mesh_sequence else None,
    )
    data = video.to_dict()
    Path(f"{stem}.json").write_text(json.dumps(data))
    return data


def run(args) -> int:
    """Entry point of `handmesh predict`."""
    from handmesh.pipeline.media import VIDEO_EXTS
    from handmesh.pipeline.pipeline import PipelineConfig
    from handmesh.pipeline.predictor import SourceConfig, build_pipeline
    from handmesh.pipeline.schema import hands_summary

    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    inputs = collect_inputs(Path(args.input))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = config_from_args(SourceConfig(), args)
    pipeline = build_pipeline(source, args.mode, config_from_args(PipelineConfig(), args))
    print(f"handmesh predict: {len(inputs)} input(s), meshes from {pipeline.model_name}", file=sys.stderr)
    failed = 0
    for path in inputs:
        try:
            if path.suffix.lower() in VIDEO_EXTS:
                data = predict_video(
                    pipeline, path, out, args.video_ext, args.max_frames, mesh_sequence=args.mesh_sequence
                )
                hands = hands_summary([h for f in data["frames"] for h in f["hands"]])
                print(f"{path}: {len(data['frames'])} frames, {hands} -> {data['overlay']}")
            else:
                data = predict_image(pipeline, path, out, formats)
                print(f"{path}: {hands_summary(data['hands'])}")
        except (HandmeshError, OSError) as exc:
            failed += 1
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if str(path) not in message:  # an OSError (a full disk) names no file: say which input failed
                message = f"{path}: {message}"
            print(f"handmesh predict: error: {message}", file=sys.stderr)
    if failed:
        print(f"handmesh predict: {failed} of {len(inputs)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0
