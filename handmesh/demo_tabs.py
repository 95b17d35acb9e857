"""The demo page's parts: the shared settings row and one builder per tab (webcam, image, video).

Each builder lays out its tab and wires its handler; the handlers share a `DemoState` (sessions, mesh
sources, files). Gradio is imported inside: importing this module stays light.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from handmesh.atomic import atomic_write
from handmesh.demo_state import DemoState
from handmesh.demo_upload import refusal, refusal_of
from handmesh.errors import HandmeshError
from handmesh.pipeline.crop import MAX_HANDS_LIMIT

STATS_PERIOD_S = 0.5  # seconds between updates of the webcam tab's statistics


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


def page_settings(max_hands, smoothing, skeleton, opacity, selfie: bool = False) -> dict[str, Any]:
    """The page's controls as pipeline settings (`HandMeshPipeline.update_config` keywords)."""
    if not 1 <= int(max_hands) <= MAX_HANDS_LIMIT:  # the API can ask for what the slider cannot
        raise refusal(f"Max hands: choose 1 to {MAX_HANDS_LIMIT} (asked for {max_hands}).")
    return {
        "max_hands": int(max_hands),
        "smoothing.enabled": bool(smoothing),
        "skeleton": bool(skeleton),
        "opacity": float(opacity),
        "selfie": bool(selfie),
    }


def takes_request(handler: Callable) -> Callable:
    """Mark a handler's `request` parameter as gr.Request, so Gradio passes the request (its session hash
    keys the client's state): this module postpones annotations, so Gradio sees only the string."""
    import gradio as gr

    handler.__annotations__["request"] = gr.Request
    return handler


def controls_row(state: DemoState) -> list:
    """The settings row shared by every tab: mesh source, max hands, smoothing, skeleton, opacity."""
    import gradio as gr

    choices = state.sources.names
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
    return [source, max_hands, smoothing, skeleton, opacity]


def webcam_tab(state: DemoState, controls: list) -> None:
    """The live tab: webcam frames in, overlay files and a few statistics a second out."""
    import gradio as gr

    from handmesh.demo_upload import webcam_input

    cfg = state.cfg

    @takes_request
    def stream_frame(frame, source, max_hands, smoothing, skeleton, opacity, request=None):
        t0 = time.perf_counter()
        if frame is None:
            return None, "waiting for the webcam…"
        session = state.session(request)
        settings = page_settings(max_hands, smoothing, skeleton, opacity, cfg.mirror)
        pipe = session.pipeline(source, "live", **settings)
        result, fps, timings = session.live(pipe, frame)
        # a file of our own per frame: see handmesh.demo_files for what Gradio's caching did to the stream
        path = state.frames.write(result.frame)
        server_ms = session.note_call((time.perf_counter() - t0) * 1000.0)
        # the statistics change a few times a second, not per frame: re-rendering their Markdown on
        # every frame cost the browser, which shares the cores, part of its frame rate
        if not session.stats_due(STATS_PERIOD_S):
            return path, gr.skip()
        return path, stream_stats(pipe, result, fps, timings, server_ms)

    with gr.Tab("Webcam"):
        with gr.Row():
            # frames go through handmesh's reader, not Gradio's Pillow decode (any format, any size)
            cam = webcam_input(label="Webcam", webcam_options=gr.WebcamOptions(mirror=cfg.mirror))
            live = gr.Image(label="Hand meshes", format="jpeg", type="filepath", elem_id="overlay")
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


MAX_OVERLAY_SIDE = 2048  # px: the image tab's overlay (the page shows it far smaller)


def image_tab(state: DemoState, controls: list) -> None:
    """The image tab: overlay, 3D view, mesh and parameter downloads (API: /predict_image)."""
    import gradio as gr

    from handmesh.demo_upload import image_upload
    from handmesh.pipeline.media import export_meshes, fit_within, read_image, write_image
    from handmesh.pipeline.predictor import run_on_image
    from handmesh.pipeline.schema import hands_summary

    @takes_request
    def predict_image(image, source=None, max_hands=2, skeleton=False, opacity=0.85, request=None):
        """Image -> overlay, GLB of the meshes, mesh/params files, parameters."""
        if image is None:
            # a notice, and the outputs left as they are (an error would mark each of the four red)
            gr.Warning("Upload an image first.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        state.cache.prune(holding=[image])  # Gradio's cache within its cap before this request adds to it
        pipe = state.session(request).pipeline(
            source, "image", **page_settings(max_hands, False, skeleton, opacity)
        )
        try:
            # handmesh's reader, the first to open the upload: size limits from the header before a pixel
            # is decoded, formats by content, 16-bit and EXIF handled, and its one-line messages
            out = run_on_image(pipe, read_image(image))
        except HandmeshError as exc:
            raise refusal_of(exc) from None
        # downloads carry the upload's name
        stem = state.outputs.stem("image", image)
        files = export_meshes(out.meshes, stem) if out.meshes else []
        params_path = atomic_write(stem.with_name(stem.name + "_params.json"), json.dumps(out.data))
        glb = next((str(f) for f in files if f.suffix == ".glb"), None)
        # said as a notice on the tab ("2 hand(s), 1 implausible"): a component update would change what
        # API clients receive
        gr.Info(hands_summary(out.data["hands"]))
        # a file of this request's own: returned as an array, Gradio would write it to <cache>/<content
        # hash>/image.png and rewrite that file whenever the same picture came back, while another client
        # was downloading it ("Too little data for declared Content-Length" under load)
        # a JPEG at most MAX_OVERLAY_SIDE px a side: a 40-megapixel upload's PNG overlay was ~120 MB
        overlay_path = stem.with_name(stem.name + "_overlay.jpg")
        write_image(overlay_path, fit_within(out.frame, MAX_OVERLAY_SIDE))
        return str(overlay_path), glb, [str(f) for f in files] + [str(params_path)], out.data

    source, max_hands, _, skeleton, opacity = controls
    with gr.Tab("Image"):
        with gr.Row():
            # the upload's path, unopened: Gradio's gr.Image would open it with Pillow first
            img_in = image_upload(sources=["upload", "clipboard"], label="Image")
            img_out = gr.Image(label="Overlay", format="jpeg", type="filepath")
        run_img = gr.Button("Reconstruct hands", variant="primary")
        if state.examples:
            gr.Examples([[state.examples[0]]], inputs=[img_in], label="Example: two rendered hands")
        with gr.Row():
            viewer = gr.Model3D(label="3D meshes (GLB)", clear_color=(0.95, 0.95, 0.97, 1.0))
            downloads = gr.File(label="Meshes (OBJ / GLB / PLY) and parameters (JSON)", file_count="multiple")
        params = gr.JSON(label="Parameters")
        run_img.click(
            predict_image,
            [img_in, source, max_hands, skeleton, opacity],
            [img_out, viewer, downloads, params],
            api_name="predict_image",
        )


def video_tab(state: DemoState, controls: list) -> None:
    """The video tab: overlay video, per-frame parameters and meshes (API: /process_video)."""
    import gradio as gr

    from handmesh.pipeline.media import h264_available
    from handmesh.pipeline.predictor import run_on_video

    cfg = state.cfg

    @takes_request
    def process_video(
        path, source, max_hands, smoothing, skeleton, opacity, request=None, progress=gr.Progress()
    ):
        if not path:
            gr.Warning("Upload a video first.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        state.cache.prune(holding=[path])
        pipe = state.session(request).pipeline(
            source, "video", **page_settings(max_hands, smoothing, skeleton, opacity)
        )
        stem = state.outputs.stem("video", path)  # downloads keep the uploaded file's name
        # H.264 MP4 plays in every browser; a PyAV build without libx264 writes VP8 WebM instead
        out_path = stem.with_name(stem.name + "_overlay" + (".mp4" if h264_available() else ".webm"))
        try:
            video = run_on_video(
                pipe,
                path,
                overlay=out_path,
                max_seconds=cfg.max_video_seconds,
                max_frames=cfg.max_video_frames,
                progress=lambda done, total: progress((done, total), desc="processing frames", unit="frames"),
                meshes=stem.with_name(stem.name + "_meshes.npz"),
            )
        except HandmeshError as exc:
            raise refusal_of(exc) from None
        json_path = atomic_write(stem.with_name(stem.name + "_frames.json"), json.dumps(video.to_dict()))
        n = len(video.frames)
        msg = f"{n} frames in {video.elapsed_s:.1f} s ({video.processing_fps or 0:.1f} FPS)."
        if video.truncated:
            msg += (
                f" Only the first {n} of its {video.total_frames} frames were processed (the limits are "
                f"{cfg.max_video_seconds:.0f} s and {cfg.max_video_frames} frames)."
            )
        return str(out_path), str(json_path), msg, str(video.meshes)

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
            f"Videos longer than {cfg.max_video_seconds:.0f} s or {cfg.max_video_frames} frames are cut.",
            label="message",
        )
        run_vid.click(
            process_video,
            [vid_in, *controls],
            [vid_out, vid_json, vid_msg, vid_meshes],
            api_name="process_video",
        )
