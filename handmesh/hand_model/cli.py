"""`handmesh mano import PATH [--out DIR]`: convert official MANO pickles into clean .npz files."""

from __future__ import annotations

import argparse
from pathlib import Path

from handmesh.errors import HandmeshError, MissingFileError


def _describe(data: dict) -> str:
    parts = []
    for key in sorted(data):
        value = data[key]
        shape = getattr(value, "shape", None)
        parts.append(f"{key}{list(shape) if shape is not None else ' ' + type(value).__name__}")
    return ", ".join(parts)


def import_mano(path: str | Path, out: str | Path) -> list[Path]:
    """Convert MANO_RIGHT/LEFT pickles (a file or a folder holding them) into `out`/MANO_*.npz."""
    from handmesh.hand_model import fix_left_shapedirs
    from handmesh.hand_model.arrays import validate_arrays
    from handmesh.hand_model.mano_io import MANO_FILES, read_mano_pickle, save_npz, side_from_name

    path = Path(path)
    if path.is_dir():
        files = [path / f"{stem}.pkl" for stem in MANO_FILES.values() if (path / f"{stem}.pkl").is_file()]
        if not files:
            raise MissingFileError(f"no MANO_RIGHT.pkl or MANO_LEFT.pkl in {path}")
    elif path.exists():  # read_mano_pickle refuses FIFOs, devices and oversized files by name
        files = [path]
    else:
        raise MissingFileError(f"{path} does not exist (give MANO_RIGHT.pkl, MANO_LEFT.pkl or their folder)")
    found = {}
    for file in files:
        raw = read_mano_pickle(file)
        side = side_from_name(file)
        if side is None:
            raise HandmeshError(f"{file}: cannot tell the side; name it MANO_RIGHT.pkl or MANO_LEFT.pkl")
        print(f"{file}: {side} hand; {_describe(raw)}")
        found[side] = validate_arrays(raw, source=str(file))
    if "left" in found and "right" in found:
        found["left"] = fix_left_shapedirs(found["left"], found["right"])
    written = []
    for side, arrays in found.items():
        target = save_npz(arrays, Path(out) / f"{MANO_FILES[side]}.npz", side)
        print(f"wrote {target} ({arrays['v_template'].shape[0]} vertices, {arrays['f'].shape[0]} faces)")
        written.append(target)
    return written


def run(args: argparse.Namespace) -> int:
    """Import the pickles `handmesh mano import` names."""
    if args.mano_command != "import":
        raise HandmeshError("usage: handmesh mano import PATH [--out DIR]")
    import_mano(args.path, args.out)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh mano`: its one action, import."""
    sub = parser.add_subparsers(dest="mano_command", metavar="ACTION")
    imp = sub.add_parser("import", help="convert MANO_RIGHT.pkl / MANO_LEFT.pkl into clean .npz files")
    imp.add_argument("path", help="MANO_RIGHT.pkl, MANO_LEFT.pkl, or the folder holding them")
    imp.add_argument("--out", default="data/mano", help="output folder (default: data/mano)")
    parser.set_defaults(mano_command=None)
