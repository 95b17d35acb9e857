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
import signal
import sys

from handmesh.config import add_config_options, config_from_args
from handmesh.demo_state import AppConfig, DemoState
from handmesh.errors import HandmeshError, one_line

__all__ = ["AppConfig", "DemoState", "build_demo", "check_port_free", "header_text", "main", "parse_config"]


def header_text(state: DemoState, source: str | None) -> str:
    """The page's header: the mesh source in use and what it is (a model: what it was trained on)."""
    notes = "".join(f"  \n{note}" for note in state.notes)
    name = source if source in state.sources.names else state.sources.default
    return (
        "# handmesh — 3D hand meshes from one RGB camera\n"
        f"**Mesh source:** {name}  \n{state.sources.about(name)}{notes}"
    )


def build_demo(state: DemoState):
    """The gr.Blocks page: a header, the shared settings row, and one tab per job."""
    import gradio as gr

    from handmesh.demo_tabs import controls_row, image_tab, takes_request, video_tab, webcam_tab

    @takes_request
    def end_session(request=None) -> None:
        """A closed tab ends its session: its stream threads and detector graphs go with it."""
        state.sessions.drop(getattr(request, "session_hash", None))

    # uploads and the files Gradio copies into its cache (GLBs, videos) are deleted after an hour (and
    # sooner, oldest first, beyond --max-cache-mb: DemoState.cache), and all of them when the server stops
    with gr.Blocks(title="handmesh: real-time 3D hand meshes", delete_cache=(600, 3600)) as demo:
        header = gr.Markdown(header_text(state, state.sources.default))
        controls = controls_row(state)
        # the header names the source the dropdown picked, and what it was trained on
        controls[0].change(
            lambda name: header_text(state, name), controls[0], header, api_visibility="private"
        )
        webcam_tab(state, controls)
        image_tab(state, controls)
        video_tab(state, controls)
        demo.unload(end_session)
    # the examples' copies in Gradio's cache stay whatever the cache's cap says (the page links them)
    state.cache.protect(f for block in demo.blocks.values() for f in getattr(block, "keep_in_cache", ()))
    return demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's command-line options (one per AppConfig field)."""
    add_config_options(parser, AppConfig)


def parse_config(argv: list[str] | None = None) -> AppConfig:
    """The demo's settings from its command line (`demo_app.py --help`)."""
    parser = argparse.ArgumentParser(
        prog="demo_app.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return config_from_args(AppConfig(), args)
    except HandmeshError as exc:  # options that contradict each other: a usage error like argparse's
        parser.error(one_line(exc))


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
    # docker stop and systemd send SIGTERM: clean up as on Ctrl-C (Gradio's cache, the app's folder)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
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
