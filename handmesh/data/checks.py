"""Dataset checks shared by `handmesh check-dataset` and training's up-front check (`preflight_dataset`).

A FreiHAND-layout folder is checked for what its loader cannot see: every image's header and end marker
(a fast decode check: missing, empty, truncated, looping-symlink and oversized files), intrinsics that are
no camera, coordinates in millimetres or behind the camera, xyz/verts that disagree with the MANO values,
and images left over from an earlier, larger synth run (they would be read as extra background versions
with another sample's labels).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from handmesh.data.io import jpeg_damage, probe_image
from handmesh.data.cameras import MAX_CAMERA_PX, MIN_DEPTH_M, MIN_FOCAL_PX, camera_problem
from handmesh.errors import HandmeshError

MAX_LISTED = 10  # problems of one kind listed one by one before they are summarised
MAX_COORDINATE_M = 20.0  # camera-space metres; millimetre labels reach hundreds
LABEL_TOLERANCE_M = 0.005  # xyz/verts vs the MANO values: exact for synth, sub-millimetre for FreiHAND
LABEL_CHUNK = 2048  # samples whose meshes are rebuilt at once
_IMAGE_NAME = re.compile(r"^(\d{8})\.jpg$")


def _listed(kind: str, items: list[str]) -> list[str]:
    """The first MAX_LISTED items as problems, then one line counting the rest."""
    out = [f"{kind}: {item}" for item in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        out.append(f"{kind}: ... and {len(items) - MAX_LISTED} more")
    return out


def check_intrinsics(K: np.ndarray, source: str) -> list[str]:
    """Problems of (N,3,3) intrinsics: pinhole cameras with focal lengths, skew and centre in bounds."""
    items = []
    for i, k in enumerate(K):
        problem = camera_problem(k)
        if problem:
            items.append(f"entry {i} is {problem}")
    return _listed(source, items)


def check_metres(points: np.ndarray | None, source: str) -> list[str]:
    """Problems of (N,P,3) camera-space points: millimetres or points at or behind the camera."""
    if points is None or not len(points):
        return []
    items = []
    peak = np.abs(points).max(axis=(1, 2))
    behind = (points[..., 2] < MIN_DEPTH_M).any(axis=1)
    for i in np.flatnonzero((peak > MAX_COORDINATE_M) | behind):
        if peak[i] > MAX_COORDINATE_M:
            items.append(f"entry {i} has values up to {peak[i]:.4g}: expected metres, not millimetres")
        else:
            items.append(
                f"entry {i} has points behind the camera or within 1 mm of it (z < {MIN_DEPTH_M:g} m)"
            )
    return _listed(source, items)


def label_samples(n: int, limit: int | None) -> np.ndarray:
    """Sample ids whose labels are recomputed: all of them, or `limit` spread evenly over the split."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def check_label_consistency(ann, limit: int | None = None) -> tuple[list[str], list[str]]:
    """(problems, warnings): xyz and verts must be what the MANO values give (checked on `limit` samples)."""
    from handmesh.data.freihand import data_hand_model, mano_to_mesh, synth_info

    if ann.mano is None or (ann.xyz is None and ann.verts is None):
        return [], []
    made_with = synth_info(ann.root).get("hand_model") or "mano"  # real FreiHAND was made with MANO
    hand = data_hand_model()
    if hand.kind != made_with:
        return [], [
            f"{ann.split}: labels not checked against the MANO values: the folder was made with the "
            f"{made_with} hand model and {hand.kind} is configured"
        ]
    ids = label_samples(len(ann), limit)
    names = [n for n in ("xyz", "verts") if (ann.root / f"{ann.split}_{n}.json").is_file()]
    # absent files, and verts rebuilt from these very MANO values, have nothing to disagree with
    worst = {n: np.zeros(len(ids)) for n in names}
    for start in range(0, len(ids), LABEL_CHUNK):  # chunks bound the memory: FreiHAND has 32,560 samples
        chunk = ids[start : start + LABEL_CHUNK]
        mesh = mano_to_mesh(ann.mano[chunk], ann.K[chunk], hand)
        for name in names:
            labels, ours = (ann.xyz, mesh["joints"]) if name == "xyz" else (ann.verts, mesh["vertices"])
            worst[name][start : start + len(chunk)] = np.linalg.norm(labels[chunk] - ours, axis=-1).max(
                axis=1
            )
    problems = []
    for name, err in worst.items():
        bad = err > LABEL_TOLERANCE_M
        items = [
            f"entry {i} is {e * 1000:.1f} mm from what {ann.split}_mano.json gives"
            for i, e in zip(ids[bad], err[bad], strict=True)
        ]
        problems += _listed(f"{ann.split}_{name}.json", items)
    return problems, []


def check_images(ann, decode: bool = True, full: bool = False) -> list[str]:
    """Every image of every complete version present and readable (header + end marker; with `full`, also
    libjpeg's verdict on the whole scan), none left over."""
    n, versions = len(ann), ann.versions
    expected = n * versions
    items = []
    for image_id in range(expected):
        path = ann.rgb_dir / f"{image_id:08d}.jpg"
        try:
            if decode:
                probe_image(path)
                damage = jpeg_damage(path) if full else None
                if damage:
                    items.append(f"cannot decode image {path}: {damage}")
            elif not path.is_file():
                items.append(f"image not found: {path}")
        except HandmeshError as exc:
            items.append(str(exc))
    problems = _listed(f"{ann.split} images", items)
    leftover = sorted(
        int(m.group(1))
        for m in (_IMAGE_NAME.match(e.name) for e in os.scandir(ann.rgb_dir))
        if m and int(m.group(1)) >= expected
    )
    if leftover:
        problems.append(
            f"{ann.split} images: {len(leftover)} image(s) beyond the {versions} version(s) x {n} samples the "
            f"labels describe (ids {leftover[0]:08d}..{leftover[-1]:08d}; left over from an earlier, larger run?)"
        )
    return problems


FREIHAND_SPLITS = ("training", "evaluation")


def check_freihand_split(
    root: str | Path, split: str, decode: bool = True, label_limit: int | None = None, full: bool = False
) -> tuple[list[str], list[str], str, Any]:
    """(problems, warnings, summary, the split's FreiHANDAnnotations or None) of one split of a
    FreiHAND-layout folder."""
    from handmesh.data.freihand import FreiHANDAnnotations

    try:
        ann = FreiHANDAnnotations(root, split)
    except HandmeshError as exc:
        return [str(exc)], [], f"{split}: unreadable", None
    problems = check_intrinsics(ann.K, f"{split}_K.json")
    problems += check_metres(ann.xyz, f"{split}_xyz.json")
    problems += check_metres(ann.verts, f"{split}_verts.json")
    label_problems, warnings = check_label_consistency(ann, label_limit) if not problems else ([], [])
    problems += label_problems + check_images(ann, decode, full)
    return problems, warnings, f"{split}: {len(ann)} samples x {ann.versions} version(s)", ann


def _check(
    root: str | Path,
    decode: bool,
    label_limit: int | None,
    splits: tuple[str, ...] = FREIHAND_SPLITS,
    full: bool = False,
) -> tuple[str, list[str], list[str], str, Any]:
    """`check_dataset`'s answer for a FreiHAND folder's `splits`, plus the training labels as read."""
    from handmesh.data import custom, dataset_kind

    root = Path(root)
    kind = dataset_kind(root)
    if kind == "freihand":
        problems, warnings, summary, labels = [], [], [], None
        for split in splits:
            if (root / f"{split}_K.json").is_file():
                p, w, s, ann = check_freihand_split(root, split, decode, label_limit, full)
                problems, warnings, summary = problems + p, warnings + w, summary + [s]
                labels = ann if split == "training" else labels
        return kind, problems, warnings, "; ".join(summary), labels
    anns, problems, warnings = custom.read_annotations(root, check_files=True)
    if decode:
        problems += custom.check_images([a for a in anns if a.image.is_file()])
    problems.sort(key=lambda s: int(s.split(":")[0].split()[1]) if s.startswith("line ") else 0)
    return kind, problems, warnings, f"{len(anns)} annotation(s)", anns


def check_dataset(
    root: str | Path, decode: bool = True, label_limit: int | None = None, full: bool = False
) -> tuple[str, list[str], list[str], str]:
    """(kind, problems, warnings, summary) of a dataset folder of either layout."""
    return _check(root, decode, label_limit, full=full)[:4]


STANDIN_ON_MANO_FLAG = "--train-standin-on-mano-labels"


def refuse_standin_on_mano_labels(root: str | Path, hand_kind: str, allowed: bool = False) -> str | None:
    """Raise a one-line HandmeshError when a FreiHAND-layout folder's labels were made with MANO (real
    FreiHAND: no `handmesh_synth.json` naming another hand model) and the model is built on the stand-in;
    with `allowed` (the user said so with STANDIN_ON_MANO_FLAG) return a warning instead. None when fine."""
    from handmesh.data import dataset_kind
    from handmesh.data.freihand import synth_info
    from handmesh.hand_model.mano_io import mano_dir

    if dataset_kind(root) != "freihand" or hand_kind != "standin":
        return None
    if (synth_info(root).get("hand_model") or "mano") != "mano":
        return None
    if allowed:
        return (
            f"{root}: training the open stand-in hand on labels made with MANO ({STANDIN_ON_MANO_FLAG}); "
            "the model will not reach FreiHAND's figures"
        )
    raise HandmeshError(
        f"{root} holds labels made with MANO but no MANO files were found: put MANO_RIGHT.pkl and "
        f"MANO_LEFT.pkl in {mano_dir()} (or run `handmesh mano import PATH`), or pass "
        f"{STANDIN_ON_MANO_FLAG} to train the stand-in hand on them anyway"
    )


def preflight_dataset(root: str | Path, label_limit: int = 256) -> tuple[list[str], Any]:
    """The cheap checks training runs before its first step: (warnings, the labels as read), or one
    HandmeshError naming the first problem (labels are recomputed for `label_limit` samples spread over the
    split, images header-checked). The labels (a FreiHAND folder's training `FreiHANDAnnotations`, a custom
    folder's annotations) go to `open_dataset(..., labels=...)`, so the folder is read once."""
    # training reads a FreiHAND folder's training split only: its evaluation split is not its business
    _, problems, warnings, _, labels = _check(root, True, label_limit, splits=("training",))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise HandmeshError(f"dataset {root}: {problems[0]}{more}; run `handmesh check-dataset {root}`")
    return warnings, labels
