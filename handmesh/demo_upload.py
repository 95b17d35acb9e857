"""The demo's image inputs: Gradio's image boxes, whose uploads and webcam frames reach handmesh's reader
before anything else opens them.

`gr.Image` opens every input with Pillow before the handler runs: an upload (any of Pillow's formats,
PostScript included) to read its mode even with `type="filepath"`, and each webcam frame, which the
browser sends inline as a data: URL, is decoded in full. A file that is no image (text, a PDF, a
PostScript file named .jpg, a truncated PNG) then got Gradio's generic "Error" instead of handmesh's
message, and a client could send the stream any image format of any size. The boxes made here are
Gradio's own (same page, preview and clipboard) with their input step replaced on the instance: the
upload's path is handed over unopened, a frame goes to handmesh's reader (limits from the header before
a pixel is decoded, formats by content, one-line messages). Not a subclass: Gradio's component metaclass
writes a `.pyi` file beside the module of every component class it sees defined. A refused input is a
`refusal`: its line on the page and in the server's terminal, not a traceback there. Gradio is imported
inside the functions.
"""

from __future__ import annotations

import base64
import binascii
import sys
from typing import Any

import numpy as np

from handmesh.data.io import decode_image, read_image
from handmesh.errors import HandmeshError, one_line, without_paths

UPLOAD_NAME = "upload"  # the file name of an image that came as a data: URL (no name of its own)


def refusal(message: str):
    """The gr.Error for an input the app refuses: the page shows `message`, and the server's terminal gets
    that one line instead of Gradio's traceback of the error (a bad upload is not a server bug)."""
    import gradio as gr

    print(f"handmesh demo: refused: {message}", file=sys.stderr)
    return gr.Error(message, print_exception=False)


def refusal_of(exc: HandmeshError):
    """`refusal` with handmesh's one-line message for `exc`, without the server's folders."""
    return refusal(without_paths(one_line(exc)))


def inline_bytes(url: str) -> bytes:
    """The bytes of a data: URL (base64), or a refusal."""
    try:
        return base64.b64decode(url.rsplit(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise refusal("The image's data: URL is not valid base64.") from None


def image_upload(**kwargs: Any):
    """A gr.Image upload box whose input is the uploaded file's path, never opened by Gradio; an image
    sent inline as a data: URL is written to Gradio's cache byte for byte first."""
    import gradio as gr
    from gradio import processing_utils

    box = gr.Image(type="filepath", image_mode=None, **kwargs)

    def upload_path(payload) -> str | None:
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            return processing_utils.save_bytes_to_cache(
                inline_bytes(payload.url), UPLOAD_NAME, box.GRADIO_CACHE
            )
        if not payload.path:
            raise refusal("The upload carries no file.")
        return str(payload.path)

    box.preprocess = upload_path  # the instance's input step (Gradio calls block.preprocess)
    return box


def webcam_input(**kwargs: Any):
    """A streaming gr.Image webcam box whose frames are decoded by handmesh's reader (RGB uint8 arrays);
    a frame the reader refuses is a one-line gr.Error."""
    import gradio as gr

    box = gr.Image(sources=["webcam"], streaming=True, type="numpy", **kwargs)

    def frame(payload) -> np.ndarray | None:
        if payload is None:
            return None
        try:
            if payload.url and payload.url.startswith("data:"):
                return decode_image(inline_bytes(payload.url), "webcam frame")
            if not payload.path:
                raise refusal("The frame carries no image.")
            return read_image(payload.path)
        except HandmeshError as exc:
            raise refusal_of(exc) from None

    box.preprocess = frame
    return box
