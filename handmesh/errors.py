"""Exceptions shared across handmesh, and how an error becomes the one line a user sees."""

from __future__ import annotations

import os
import re

DEBUG_ENV = "HANDMESH_DEBUG"
# an absolute path: a slash-led run of path characters (stops at spaces, quotes, colons, parentheses)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/[^\s:'\"()]+")


class HandmeshError(Exception):
    """A user-facing error with a one-line message (bad input, missing file, wrong checkpoint).

    Deliberately not a ValueError: a ValueError from a bug deep in numpy or torch must not be shown to the
    user as if it were a message about their input (the CLI prints only these and OSError as one line).
    """


class MissingFileError(HandmeshError, FileNotFoundError):
    """A user-supplied file (FreiHAND, MANO, weights) is absent; the message says where to put it."""


def debug_enabled() -> bool:
    """True when $HANDMESH_DEBUG asks for full tracebacks instead of one-line errors."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def one_line(exc: BaseException) -> str:
    """The message of `exc` as a single line.

    torch's DataLoader re-raises a worker's exception with the worker's whole traceback as its message
    ("Caught HandmeshError in DataLoader worker process 0. Original Traceback ..."); the line a user needs
    is the original message at its end.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) > 1 and lines[0].startswith("Caught ") and "worker" in lines[0]:
        last = lines[-1]
        name, sep, message = last.partition(": ")
        # the traceback's last line is "module.ClassName: message"
        return message if sep and " " not in name else last
    return " ".join(lines)


def without_paths(text: str) -> str:
    """`text` with every absolute path cut to its last component: messages shown to remote users (the demo)
    must not reveal the server's folders."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group().rstrip("/").rsplit("/", 1)[-1] or "/", text)
