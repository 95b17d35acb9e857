"""The Gradio demo: live webcam meshes, single images (3D view + downloads) and videos.

`python demo_app.py [--checkpoint CKPT | --onnx FILE] [--host 127.0.0.1] [--port 7860]` (or `make demo`).
Without a model file the landmark-fit mode (the hand model fitted to MediaPipe's landmarks) supplies
the meshes; the page always says which mesh source is running. Safe by default: binds 127.0.0.1, no
public link unless `--share`, upload size and video length limits.

Test hook: `--detector static:X0,Y0,X1,Y1[,left|right]` replaces MediaPipe with fixed boxes, so the
browser test can drive the app with synthetic renders that a real detector would not find reliably.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from handmesh.errors import HandmeshError

NO_MODEL = "No model"


@dataclasses.dataclass
class AppConfig:
    """How the demo server runs."""

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False  # a public gradio.live link: only when asked
    checkpoint: str | None = None
    onnx: str | None = None
    detector: str = "mediapipe"  # or mediapipe-full, or static:... (tests only)
    max_upload_mb: int = 50
    max_video_seconds: float = 60.0
    stream_every: float = 0.03  # seconds between webcam frames sent to the server (up to ~33 FPS)
    mirror_webcam: bool = True  # selfie view; colours then follow the person's own hands
    runtime: str = "auto"  # for --checkpoint: auto (torch on GPU, ONNX Runtime on CPU), onnx or torch


class DemoState:
    """Mesh sources shared by every tab (one detector, one renderer) and the live-stream statistics."""

    def __init__(self, cfg: AppConfig):
        from handmesh.pipeline.detector import MediaPipeDetector, parse_detector_spec
        from handmesh.pipeline.factory import build_estimator, landmark_fit_available
        from handmesh.pipeline.pipeline import HandMeshPipeline, PipelineConfig

        self.cfg = cfg
        self.notes: list[str] = []
        if cfg.detector.startswith("mediapipe"):
            detector = MediaPipeDetector(
                max_hands=2, model_complexity=1 if cfg.detector == "mediapipe-full" else 0
            )
        else:
            detector = parse_detector_spec(cfg.detector)
            self.notes.append(f"Test detector in use: `{cfg.detector}` (fixed boxes, not a real detector).")
        estimators = {}
        if cfg.checkpoint or cfg.onnx:
            est = build_estimator(cfg.checkpoint, cfg.onnx, mode="model", runtime=cfg.runtime)
            estimators[f"Model: {est.runtime.name}"] = est
        if landmark_fit_available():
            try:
                est = build_estimator(mode="landmark-fit")
                estimators["Landmark fit (MediaPipe landmarks + hand model)"] = est
            except HandmeshError as exc:
                self.notes.append(f"Landmark-fit mode unavailable: {exc}")
        if not estimators:
            self.notes.append("No model: start with `--checkpoint CKPT` or `--onnx FILE`.")
        self.renderer = None
        self.pipelines = {}
        for name, est in estimators.items():
            pipe = HandMeshPipeline(est, detector, PipelineConfig(), renderer=self._shared_renderer())
            self.pipelines[name] = pipe
        self.default = next(iter(self.pipelines), NO_MODEL)
        self.warm_up()
        self._stamps: collections.deque[float] = collections.deque(maxlen=30)
        self._timings: dict[str, float] = {}
        self._lock = threading.Lock()
        from handmesh.pipeline.stream import LiveFeed

        self.live = LiveFeed()  # the webcam tab's pipelined stream
        self.outdir = Path(tempfile.mkdtemp(prefix="handmesh-app-"))

    def warm_up(self) -> None:
        """Pay the one-off costs (GL context, first model call) before the first visitor does."""
        tri = (np.array([[0, 0, 0.5], [0.01, 0, 0.5], [0, 0.01, 0.5]]), np.array([[0, 1, 2]]), (1, 1, 1, 1))
        if self.renderer is not None:
            self.renderer.render([tri], np.array([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]), size=(64, 64))
        for pipe in self.pipelines.values():
            runtime = getattr(pipe.estimator, "runtime", None)
            if runtime is not None:
                runtime(np.zeros((1, runtime.input_size, runtime.input_size, 3), np.uint8))

    def _shared_renderer(self):
        if self.renderer is None:
            from handmesh.render import MeshRenderer

            self.renderer = MeshRenderer(64, 64)
        return self.renderer

    def pipeline(
        self, name: str, max_hands: int, smoothing: bool, skeleton: bool, opacity: float, selfie=False
    ):
        """The pipeline of mesh source `name` with the page's settings applied (None: no model)."""
        pipe = self.pipelines.get(name) or self.pipelines.get(self.default)
        if pipe is None:
            return None
        pipe.update_config(
            max_hands=int(max_hands),
            smoothing=bool(smoothing),
            skeleton=bool(skeleton),
            opacity=float(opacity),
            selfie=bool(selfie),
        )
        return pipe

    def stream_stats(self, pipe, result) -> str:
        """Markdown with the delivered frame rate and per-stage milliseconds (smoothed)."""
        now = time.perf_counter()
        with self._lock:
            self._stamps.append(now)
            for k, v in result.timings.items():
                self._timings[k] = 0.8 * self._timings.get(k, v) + 0.2 * v
            fps = (
                (len(self._stamps) - 1) / (self._stamps[-1] - self._stamps[0])
                if len(self._stamps) > 1
                else 0.0
            )
            timings = dict(self._timings)
        stages = " · ".join(f"{k} {v:.1f}" for k, v in timings.items() if k != "total")
        hands = ", ".join(f"{pipe.display_handedness(h.handedness)} ({h.score:.2f})" for h in result.hands)
        return (
            f"**{fps:.1f} FPS delivered** · pipeline {timings.get('total', 0):.1f} ms/frame  \n"
            f"ms per stage: {stages}  \nhands: {hands or 'none'}  \nmesh source: {result.model}"
        )


def build_demo(state: DemoState):
    """The gr.Blocks page."""
    import gradio as gr

    from handmesh.pipeline.media import VideoWriter, export_meshes, h264_available, iter_video, video_info
    from handmesh.pipeline.pipeline import result_to_dict
    from handmesh.pipeline.stream import process_stream

    cfg = state.cfg
    choices = list(state.pipelines) or [NO_MODEL]
    notes = "  \n".join(state.notes)

    def _no_model(frame):
        return frame, "**No model loaded.** " + " ".join(state.notes)

    def stream_frame(frame, source, max_hands, smoothing, skeleton, opacity):
        if frame is None:
            return None, "waiting for the webcam…"
        pipe = state.pipeline(source, max_hands, smoothing, skeleton, opacity, selfie=cfg.mirror_webcam)
        if pipe is None:
            return _no_model(frame)
        result = state.live(pipe, frame)
        return result.frame, state.stream_stats(pipe, result)

    def predict_image(image, source=None, max_hands=2, skeleton=False, opacity=0.85):
        """Image -> overlay, GLB of the meshes, mesh/params files, parameters."""
        if image is None:
            raise gr.Error("Upload an image first.")
        pipe = state.pipeline(source or state.default, max_hands, False, skeleton, opacity)
        if pipe is None:
            raise gr.Error("No model loaded: start the app with --checkpoint CKPT or --onnx FILE.")
        try:
            result = pipe.process(image, static=True)
        except HandmeshError as exc:
            raise gr.Error(str(exc)) from None
        data = result_to_dict(result)
        stem = state.outdir / f"image-{time.time_ns()}"
        meshes = [(h.vertices, h.faces, pipe.color_of(h.handedness)) for h in result.hands]
        files = export_meshes(meshes, stem) if meshes else []
        params_path = stem.with_name(stem.name + "_params.json")
        params_path.write_text(json.dumps(data))
        glb = next((str(f) for f in files if f.suffix == ".glb"), None)
        return result.frame, glb, [str(f) for f in files] + [str(params_path)], data

    def process_video(path, source, max_hands, smoothing, skeleton, opacity, progress=gr.Progress()):
        if not path:
            raise gr.Error("Upload a video first.")
        pipe = state.pipeline(source, max_hands, smoothing, skeleton, opacity)
        if pipe is None:
            raise gr.Error("No model loaded: start the app with --checkpoint CKPT or --onnx FILE.")
        try:
            fps, total, size = video_info(path)
        except HandmeshError as exc:
            raise gr.Error(str(exc)) from None
        limit = int(cfg.max_video_seconds * fps)
        note = ""
        if total > limit:
            note = f"Only the first {cfg.max_video_seconds:.0f} s ({limit} of {total} frames) were processed."
        total = min(total, limit) if total else limit
        pipe.reset()
        stem = state.outdir / f"video-{time.time_ns()}"
        # H.264 MP4 plays in every browser; without PyAV only OpenCV's MPEG-4 Part 2 is there, which
        # browsers do not play, so fall back to VP8 WebM
        ext = ".mp4" if h264_available() else ".webm"
        out_path = stem.with_name(stem.name + "_overlay" + ext)
        frames = []
        t0 = time.perf_counter()
        try:
            with VideoWriter(out_path, fps, size) as writer:
                video = ((frame, None, i / fps) for i, frame in enumerate(iter_video(path, limit)))
                for i, result in enumerate(process_stream(pipe, video)):
                    writer.write(result.frame)
                    entry = result_to_dict(result)
                    entry["frame"] = i
                    frames.append(entry)
                    progress((i + 1, total), desc="processing frames", unit="frames")
        except HandmeshError as exc:
            raise gr.Error(str(exc)) from None
        elapsed = time.perf_counter() - t0
        json_path = stem.with_name(stem.name + "_frames.json")
        json_path.write_text(json.dumps({"fps": fps, "model": pipe.model_name, "frames": frames}))
        msg = f"{len(frames)} frames in {elapsed:.1f} s ({len(frames) / max(elapsed, 1e-9):.1f} FPS). {note}"
        return str(out_path), str(json_path), msg

    with gr.Blocks(title="handmesh: real-time 3D hand meshes") as demo:
        gr.Markdown(
            "# handmesh — 3D hand meshes from one RGB camera\n"
            f"**Mesh source:** {state.default}" + (f"  \n{notes}" if notes else "")
        )
        with gr.Row():
            source = gr.Dropdown(choices, value=choices[0], label="Mesh source", interactive=len(choices) > 1)
            max_hands = gr.Slider(1, 4, value=2, step=1, label="Max hands")
            smoothing = gr.Checkbox(value=True, label="Temporal smoothing (video/webcam)")
            skeleton = gr.Checkbox(value=False, label="Skeleton")
            opacity = gr.Slider(0.1, 1.0, value=0.85, step=0.05, label="Mesh opacity")
        controls = [source, max_hands, smoothing, skeleton, opacity]
        with gr.Tab("Webcam"):
            with gr.Row():
                cam = gr.Image(
                    sources=["webcam"],
                    streaming=True,
                    type="numpy",
                    label="Webcam",
                    webcam_options=gr.WebcamOptions(mirror=cfg.mirror_webcam),
                )
                live = gr.Image(label="Hand meshes", format="jpeg", type="numpy", elem_id="overlay")
            stats = gr.Markdown("Click the webcam, allow access, then press Record.", elem_id="stats")
            cam.stream(
                stream_frame,
                [cam, *controls],
                [live, stats],
                stream_every=cfg.stream_every,
                concurrency_limit=1,
                time_limit=None,
                show_progress="hidden",
                api_visibility="private",
            )
        with gr.Tab("Image"):
            with gr.Row():
                img_in = gr.Image(sources=["upload", "clipboard"], type="numpy", label="Image")
                img_out = gr.Image(label="Overlay", format="png", type="numpy")
            run_img = gr.Button("Reconstruct hands", variant="primary")
            with gr.Row():
                viewer = gr.Model3D(label="3D meshes (GLB)", clear_color=(0.95, 0.95, 0.97, 1.0))
                downloads = gr.File(
                    label="Meshes (OBJ / GLB / PLY) and parameters (JSON)", file_count="multiple"
                )
            params = gr.JSON(label="Parameters")
            run_img.click(
                predict_image,
                [img_in, source, max_hands, skeleton, opacity],
                [img_out, viewer, downloads, params],
                api_name="predict_image",
            )
        with gr.Tab("Video"):
            with gr.Row():
                vid_in = gr.Video(label="Video", sources=["upload"])
                vid_out = gr.Video(label="Overlay video")
            run_vid = gr.Button("Process video", variant="primary")
            vid_json = gr.File(label="Per-frame parameters (JSON)")
            vid_msg = gr.Markdown(f"Videos longer than {cfg.max_video_seconds:.0f} s are cut.")
            run_vid.click(
                process_video, [vid_in, *controls], [vid_out, vid_json, vid_msg], api_name="process_video"
            )
    return demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's command-line options (one per AppConfig field)."""
    d = AppConfig()
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="trained model file (.pt); see --runtime")
    src.add_argument("--onnx", help="exported model (.onnx + its .json sidecar), run with ONNX Runtime")
    parser.add_argument(
        "--host", default=d.host, help=f"interface to bind (default {d.host}: this machine only)"
    )
    parser.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port})")
    parser.add_argument("--share", action="store_true", help="also create a public gradio.live link")
    parser.add_argument(
        "--detector",
        default=d.detector,
        help="mediapipe | mediapipe-full | static:X0,Y0,X1,Y1[,left|right] (tests only)",
    )
    parser.add_argument("--max-upload-mb", type=int, default=d.max_upload_mb, help="largest upload accepted")
    parser.add_argument(
        "--max-video-seconds",
        type=float,
        default=d.max_video_seconds,
        help="longer videos are cut to this length",
    )
    parser.add_argument(
        "--stream-every",
        type=float,
        default=d.stream_every,
        help="seconds between webcam frames sent to the server",
    )
    parser.add_argument(
        "--no-mirror",
        dest="mirror_webcam",
        action="store_false",
        help="do not mirror the webcam (selfie) view",
    )


def config_from_args(args: argparse.Namespace) -> AppConfig:
    """AppConfig from parsed options."""
    names = {f.name for f in dataclasses.fields(AppConfig)}
    return AppConfig(**{k: v for k, v in vars(args).items() if k in names})


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, build the app and serve it (blocks)."""
    parser = argparse.ArgumentParser(
        prog="demo_app.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
        state = DemoState(cfg)
    except (HandmeshError, ValueError) as exc:
        print(f"demo_app.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"handmesh demo: mesh source: {state.default}", file=sys.stderr)
    for note in state.notes:
        print(f"handmesh demo: {note}", file=sys.stderr)
    demo = build_demo(state)
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=cfg.host,
        server_port=cfg.port,
        share=cfg.share,
        max_file_size=f"{cfg.max_upload_mb}mb",
        show_error=True,
    )
    return 0
