"""Exceptions shared across handmesh."""


class HandmeshError(ValueError):
    """A user-facing error with a one-line message (bad input, missing file, wrong checkpoint)."""


class MissingFileError(HandmeshError, FileNotFoundError):
    """A user-supplied file (FreiHAND, MANO, weights) is absent; the message says where to put it."""
