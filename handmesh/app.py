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
import atexit
import dataclasses
import json
import os
import sys
import time
from dataclasses import field
from pathlib import Path

from handmesh.config import add_config_options, config_from_args, option
from handmesh.demo_files import FrameFiles, OutputFolder
from handmesh.errors import HandmeshError, one_line, without_paths
from handmesh.pipeline.crop import MAX_HANDS_LIMIT
from handmesh.pipeline.predictor import DETECTOR_HELP, RUNTIMES
from handmesh.pipeline.runtime import LIVE_THREADS, set_stage_threads


@dataclasses.dataclass
class AppConfig:
    """How the demo server runs (each field is an option of demo_app.py: help and choices live here)."""

    host: str = field(
        default="127.0.0.1", metadata=option("interface to bind (127.0.0.1: this machine only)")
    )
    port: int = field(default=7860, metadata=option("port"))
    share: bool = False  # a public gradio.live link: only when asked (--share)
    checkpoint: str | None = field(
        default=None, metadata=option("trained model file (.pt); see --runtime", metavar="CKPT")
    )
    onnx: str | None = field(
        default=None,
        metadata=option("exported model (.onnx + its .json sidecar), run with ONNX Runtime", metavar="FILE"),
    )
    runtime: str = field(
        default="auto",
        metadata=option(
            "how --checkpoint runs: auto (torch on a GPU, else exported to ONNX Runtime), onnx or torch",
            choices=RUNTIMES,
        ),
    )
    detector: str = field(default="mediapipe", metadata=option(DETECTOR_HELP, metavar="SPEC"))
    max_upload_mb: int = field(default=50, metadata=option("largest upload accepted, MB"))
    max_video_seconds: float = field(default=60.0, metadata=option("longer videos are cut to this length"))
    stream_every: float = field(
        default=0.03,  # up to ~33 FPS
        metadata=option("seconds between webcam frames sent to the server"),
    )
    threads: int = field(
        default=LIVE_THREADS,
        metadata=option(
            "threads per library (ONNX Runtime, torch, OpenCV, the GL rasterizer); the pipeline's stages already"
            " run in parallel, and more per stage fought them and the browser for the cores"
        ),
    )
    max_sessions: int = field(
        default=16,
        metadata=option("browser sessions with their own stream state (tracks, smoothing); the idlest goes"),
    )
    mirror_webcam: bool = True  # selfie view; colours then follow the person's own hands (--no-mirror)


class DemoState:
    """What the page's handlers share: the mesh sources, one state per browser session, the output folder."""

    def __init__(self, cfg: AppConfig):
        from handmesh.pipeline.sessions import ClientSession, MeshSources, SessionPool

        self.cfg = cfg
        if cfg.threads < 1:
            raise HandmeshError(f"--threads must be at least 1, got {cfg.threads}")
        set_stage_threads(cfg.threads)  # before the renderer's GL context starts its rasterizer threads
        self.sources = MeshSources(cfg.checkpoint, cfg.onnx, cfg.runtime, cfg.detector, threads=cfg.threads)
        self.notes: list[str] = []
        if cfg.detector.startswith("static:"):
            self.notes.append(f"Test detector in use: `{cfg.detector}` (fixed boxes, not a real detector).")
        self.sources.warm_up()
        self.sessions = SessionPool(lambda: ClientSession(self.sources.pipeline), cfg.max_sessions)
        # downloads live an hour; streamed frames get their folder once the page (and Gradio's cache) exists
        self.outputs = OutputFolder(max_age_s=3600.0)
        self.frames: FrameFiles | None = None
        self.examples = self._render_examples()

    def _render_examples(self) -> tuple[str, str] | None:
        """Example inputs rendered from the hand model (a sub-folder: the output pruning skips it)."""
        from handmesh.pipeline.synthetic import write_examples

        try:
            image, video = write_examples(self.outputs.path / "examples")
        except Exception as exc:  # an example is a nicety: a machine that cannot render still serves
            self.notes.append(f"No example inputs ({type(exc).__name__}: {one_line(exc)}).")
            return None
        return str(image), str(video)

    def close(self) -> None:
        """Remove the app's files (output folder, streamed frames): called on exit."""
        self.outputs.close()
        if self.frames is not None:
            self.frames.close()


STATS_PERIOD_S = 0.5  # seconds between updates of the webcam tab's statistics


def _session_key(request) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def stream_stats(pipe, result, fps: float, timings: dict[str, float], server_ms: float = 0.0) -> str:
    """Markdown with the delivered frame rate, per-stage milliseconds (smoothed) and the hands seen."""
    stages = " · ".join(f"{k} {v:.1f}" for k, v in timings.items() if k != "total")
    hands = ", ".join(f"{pipe.display_handedness(h.handedness)} ({h.score:.2f})" for h in result.hands)
    # server: the handler's own time per frame (feed + JPEG); the rest of a frame's period is the
    # browser's and the transport's
    return (
        f"**{fps:.1f} FPS delivered** · pipeline {timings.get('total', 0):.1f} ms/frame"
        f" · server {server_ms:.1f} ms/frame  \n"
        f"ms per stage: {stages}  \nhands: {hands or 'none'}  \nmesh source: {result.model}"
    )


def header_text(state: DemoState, source: str | None) -> str:
    """The page's header: the mesh source in use and what it is (a model: what it was trained on)."""
    notes = "".join(f"  \n{note}" for note in state.notes)
    name = source if source in state.sources.names else state.sources.default
    return (
        "# handmesh — 3D hand meshes from one RGB camera\n"
        f"**Mesh source:** {name}  \n{state.sources.about(name)}{notes}"
    )


def build_demo(state: DemoState):
    """The gr.Blocks page."""
    import gradio as gr

    from handmesh.pipeline.media import export_meshes, h264_available, write_image
    from handmesh.pipeline.predictor import run_on_image, run_on_video
    from handmesh.pipeline.schema import hands_summary

    cfg = state.cfg
    choices = state.sources.names

    def settings(max_hands, smoothing, skeleton, opacity, selfie=False) -> dict:
        if not 1 <= int(max_hands) <= MAX_HANDS_LIMIT:  # the API can ask for what the slider cannot
            raise gr.Error(f"Max hands: choose 1 to {MAX_HANDS_LIMIT} (asked for {max_hands}).")
        return {
            "max_hands": int(max_hands),
            "smoothing.enabled": bool(smoothing),
            "skeleton": bool(skeleton),
            "opacity": float(opacity),
            "selfie": bool(selfie),
        }

    def stream_frame(frame, source, max_hands, smoothing, skeleton, opacity, request: gr.Request = None):
        t0 = time.perf_counter()
        if frame is None:
            return None, "waiting for the webcam…"
        session = state.sessions.get(_session_key(request))
        pipe = session.pipeline(
            source, "live", **settings(max_hands, smoothing, skeleton, opacity, cfg.mirror_webcam)
        )
        result, fps, timings = session.live(pipe, frame)
        # a file of our own per frame: see handmesh.demo_files for what Gradio's caching did to the stream
        path = state.frames.write(result.frame)
        server_ms = session.note_call((time.perf_counter() - t0) * 1000.0)
        # the statistics change a few times a second, not per frame: re-rendering their Markdown on
        # every frame cost the browser, which shares the cores, part of its frame rate
        if not session.stats_due(STATS_PERIOD_S):
            return path, gr.skip()
        return path, stream_stats(pipe, result, fps, timings, server_ms)

    def predict_image(
        image, source=None, max_hands=2, skeleton=False, opacity=0.85, request: gr.Request = None
    ):
        """Image -> overlay, GLB of the meshes, mesh/params files, parameters."""
        if image is None:
            # a notice, and the outputs left as they are (an error would mark each of the four red)
            gr.Warning("Upload an image first.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        session = state.sessions.get(_session_key(request))
        pipe = session.pipeline(source, "image", **settings(max_hands, False, skeleton, opacity))
        try:
            out = run_on_image(pipe, image)
        except HandmeshError as exc:
            raise gr.Error(without_paths(one_line(exc))) from None
        # downloads carry the upload's name when the image came as a file
        stem = state.outputs.stem("image", image if isinstance(image, (str, Path)) else None)
        files = export_meshes(out.meshes, stem) if out.meshes else []
        params_path = stem.with_name(stem.name + "_params.json")
        params_path.write_text(json.dumps(out.data))
        glb = next((str(f) for f in files if f.suffix == ".glb"), None)
        # said as a notice on the tab ("2 hand(s), 1 implausible"): a component update would change what
        # API clients receive
        gr.Info(hands_summary(out.data["hands"]))
        # a file of this request's own: returned as an array, Gradio would write it to <cache>/<content
        # hash>/image.png and rewrite that file whenever the same picture came back, while another client
        # was downloading it ("Too little data for declared Content-Length" under load)
        overlay_path = stem.with_name(stem.name + "_overlay.png")
        write_image(overlay_path, out.frame)
        overlay = str(overlay_path)
        return overlay, glb, [str(f) for f in files] + [str(params_path)], out.data

    def process_video(
        path,
        source,
        max_hands,
        smoothing,
        skeleton,
        opacity,
        request: gr.Request = None,
        progress=gr.Progress(),
    ):
        if not path:
            gr.Warning("Upload a video first.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        session = state.sessions.get(_session_key(request))
        pipe = session.pipeline(source, "video", **settings(max_hands, smoothing, skeleton, opacity))
        stem = state.outputs.stem("video", path)  # downloads keep the uploaded file's name
        # H.264 MP4 plays in every browser; without PyAV only OpenCV's MPEG-4 Part 2 is there, which
        # browsers do not play, so fall back to VP8 WebM
        out_path = stem.with_name(stem.name + "_overlay" + (".mp4" if h264_available() else ".webm"))
        try:
            video = run_on_video(
                pipe,
                path,
                overlay=out_path,
                max_seconds=cfg.max_video_seconds,
                progress=lambda done, total: progress((done, total), desc="processing frames", unit="frames"),
                meshes=stem.with_name(stem.name + "_meshes.npz"),
            )
        except HandmeshError as exc:
            raise gr.Error(without_paths(one_line(exc))) from None
        json_path = stem.with_name(stem.name + "_frames.json")
        json_path.write_text(json.dumps(video.to_dict()))
        n = len(video.frames)
        msg = f"{n} frames in {video.elapsed_s:.1f} s ({video.processing_fps or 0:.1f} FPS)."
        if video.truncated:
            msg += f" Only the first {cfg.max_video_seconds:.0f} s ({n} of {video.total_frames} frames) were processed."
        return str(out_path), str(json_path), msg, str(video.meshes)

    def end_session(request: gr.Request = None) -> None:
        """A closed tab ends its session: its stream threads and detector graphs go with it."""
        state.sessions.drop(_session_key(request))

    for handler in (stream_frame, predict_image, process_video, end_session):
        # this module postpones annotations and imports gradio lazily, so Gradio could not resolve the
        # string "gr.Request" and would not pass the request (whose session hash keys the client's state)
        handler.__annotations__["request"] = gr.Request

    # uploads and the files Gradio copies into its cache (GLBs, videos) are deleted after an hour, and
    # all of them when the server stops
    with gr.Blocks(title="handmesh: real-time 3D hand meshes", delete_cache=(600, 3600)) as demo:
        header = gr.Markdown(header_text(state, state.sources.default))
        with gr.Row():
            # wide enough for the longest source name (a lone choice was cut off)
            source = gr.Dropdown(
                choices,
                value=choices[0],
                label="Mesh source",
                interactive=len(choices) > 1,
                scale=2,
                min_width=max(320, 8 * max(len(c) for c in choices)),
            )
            max_hands = gr.Slider(
                1, MAX_HANDS_LIMIT, value=2, step=1, label=f"Max hands (up to {MAX_HANDS_LIMIT})"
            )
            smoothing = gr.Checkbox(value=True, label="Temporal smoothing (video/webcam)")
            skeleton = gr.Checkbox(value=False, label="Skeleton")
            opacity = gr.Slider(0.1, 1.0, value=0.85, step=0.05, label="Mesh opacity")
        controls = [source, max_hands, smoothing, skeleton, opacity]
        # the header names the source the dropdown picked, and what it was trained on
        source.change(lambda name: header_text(state, name), source, header, api_visibility="private")
        with gr.Tab("Webcam"):
            with gr.Row():
                cam = gr.Image(
                    sources=["webcam"],
                    streaming=True,
                    type="numpy",
                    label="Webcam",
                    webcam_options=gr.WebcamOptions(mirror=cfg.mirror_webcam),
                )
                live = gr.Image(label="Hand meshes", format="jpeg", type="filepath", elem_id="overlay")
                if state.frames is None:
                    state.frames = FrameFiles(Path(live.GRADIO_CACHE) / f"handmesh-stream-{os.getpid()}")
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
            if state.examples:
                gr.Examples([[state.examples[0]]], inputs=[img_in], label="Example: two rendered hands")
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
            if state.examples:
                gr.Examples([[state.examples[1]]], inputs=[vid_in], label="Example: a rendered hand waving")
            with gr.Row():
                vid_json = gr.File(label="Per-frame parameters (JSON)")
                vid_meshes = gr.File(label="Per-frame meshes (NPZ: vertices (frames, hands, 778, 3), faces)")
            # the label names this output in the API (it was "value_29")
            vid_msg = gr.Markdown(
                f"Videos longer than {cfg.max_video_seconds:.0f} s are cut.", label="message"
            )
            run_vid.click(
                process_video,
                [vid_in, *controls],
                [vid_out, vid_json, vid_msg, vid_meshes],
                api_name="process_video",
            )
        demo.unload(end_session)
    return demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's command-line options (one per AppConfig field)."""
    add_config_options(parser.add_mutually_exclusive_group(), AppConfig, only=("checkpoint", "onnx"))
    add_config_options(parser, AppConfig, skip=("checkpoint", "onnx", "share", "mirror_webcam"))
    parser.add_argument("--share", action="store_true", help="also create a public gradio.live link")
    parser.add_argument(
        "--no-mirror",
        dest="mirror_webcam",
        action="store_false",
        help="do not mirror the webcam (selfie) view",
    )


def parse_config(argv: list[str] | None = None) -> AppConfig:
    """The demo's settings from its command line (`demo_app.py --help`)."""
    parser = argparse.ArgumentParser(
        prog="demo_app.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return dataclasses.replace(
        config_from_args(AppConfig(), args), share=args.share, mirror_webcam=args.mirror_webcam
    )


def check_port_free(host: str, port: int) -> None:
    """Refuse a port that is taken or not allowed, in one line that names --port."""
    import socket

    try:
        socket.create_server((host, int(port))).close()
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise HandmeshError(
            f"cannot listen on {host}:{port} ({reason}); choose another with --port N"
        ) from None


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, build the app and serve it (blocks)."""
    cfg = parse_config(argv)
    try:
        check_port_free(cfg.host, cfg.port)  # before the start-up, not after it
        state = DemoState(cfg)
    except (HandmeshError, OSError) as exc:
        print(f"demo_app.py: error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(f"handmesh demo: mesh source: {state.sources.default}", file=sys.stderr)
    for note in state.notes:
        print(f"handmesh demo: {note}", file=sys.stderr)
    atexit.register(state.close)
    demo = build_demo(state)
    demo.queue(default_concurrency_limit=1)
    if not cfg.share:
        # Gradio's own banner says "set `share=True` in `launch()`", which is not how this app is run
        print(
            f"handmesh demo: open http://{cfg.host}:{cfg.port} (a public gradio.live link: --share)",
            file=sys.stderr,
        )
    demo.launch(
        server_name=cfg.host,
        server_port=cfg.port,
        share=cfg.share,
        quiet=not cfg.share,
        max_file_size=f"{cfg.max_upload_mb}mb",
        # our own errors (gr.Error) always reach the user; anything else (Gradio's preprocessing errors,
        # which quote server paths, and bugs) stays in this terminal
        show_error=False,
    )
    return 0
