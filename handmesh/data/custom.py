"""Custom hand datasets: a folder of images plus `annotations.jsonl`, one JSON object per hand.

Keys (all but `image` optional; see docs/datasets.md, section Custom datasets):
  image         path relative to the folder
  K             3x3 intrinsics of that image (pixels); absent: guessed (f = longest side, centre)
  handedness    "right" (default) | "left"
  mano          {"pose": 48, "betas": 10, "transl": 3}: axis-angle, 3 global + 45 articulation relative
                to the mean hand (flat_hand_mean=False, FreiHAND's convention) of the model of that
                handedness; vertices = model(pose, betas) + transl, camera frame, metres
  joints3d      21x3 camera-frame metres, FreiHAND joint order
  vertices      778x3 camera-frame metres
  keypoints2d   21x2 pixels, or 21x3 with a visibility/confidence third column (0 = not labelled)
  box           [x0, y0, x1, y1] pixels
  confidence    0..1 weight of the sample
  side_confidence  0..1 how sure the handedness is (what `handmesh label` measured; not used in training)
  split         "train" | "val" | "test": pins the line to a split (absent: train or val by the seeded
                held-out fraction); "test" lines are the folder's evaluation split, never trained on
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from handmesh.data.cameras import MIN_DEPTH_M, camera_problem
from handmesh.data.freihand import HoldOut
from handmesh.data.io import probe_image, read_image
from handmesh.data.record import HandRecord
from handmesh.data.transforms import AugmentConfig, HandTransform
from handmesh.errors import HandmeshError, MissingFileError

ANNOTATIONS = "annotations.jsonl"
# pixels, metres and parameters of any real label stay far below this (images are at most 8192 px)
MAX_LABEL_VALUE = 1e5
ALLOW_EXTERNAL_ENV = "HANDMESH_ALLOW_EXTERNAL_IMAGES"
KNOWN_KEYS = {
    "image",
    "K",
    "handedness",
    "mano",
    "joints3d",
    "vertices",
    "keypoints2d",
    "box",
    "confidence",
    "side_confidence",
    "split",
}
LINE_SPLITS = ("train", "val", "test")
ARRAY_SHAPES = {
    "K": [(3, 3)],
    "joints3d": [(21, 3)],
    "vertices": [(778, 3)],
    "keypoints2d": [(21, 2), (21, 3)],
}
MANO_SHAPES = {"pose": (48,), "betas": (10,), "transl": (3,)}


def is_custom_layout(root: str | Path) -> bool:
    """Whether `root` holds an annotations.jsonl."""
    return (Path(root) / ANNOTATIONS).is_file()


@dataclass
class Annotation:
    """One validated line of annotations.jsonl (arrays float64; absent labels None)."""

    line: int
    image: Path
    side: str = "right"
    K: np.ndarray | None = None
    joints3d: np.ndarray | None = None
    vertices: np.ndarray | None = None
    keypoints2d: np.ndarray | None = None
    keypoints_conf: np.ndarray | None = None
    mano: dict[str, np.ndarray] | None = None
    box: np.ndarray | None = None
    confidence: float = 1.0
    side_confidence: float | None = None
    split: str | None = None  # "train" | "val" | "test" when the line pins its split
    warnings: list[str] = field(default_factory=list)


def _array(value, shapes, where: str, problems: list[str]) -> np.ndarray | None:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        problems.append(f"{where}: not a numeric array")
        return None
    if arr.shape not in shapes:
        want = " or ".join("x".join(map(str, s)) for s in shapes)
        problems.append(f"{where}: expected {want}, got shape {'x'.join(map(str, arr.shape)) or 'scalar'}")
        return None
    if not np.isfinite(arr).all():
        problems.append(f"{where}: holds NaN or infinity")
        return None
    if arr.size and np.abs(arr).max() > MAX_LABEL_VALUE:
        # finite but absurd (1e300): float32 training would turn it into inf and skip the batch
        problems.append(f"{where}: values up to {np.abs(arr).max():.3g} (no label needs more than {MAX_LABEL_VALUE:g})")
        return None
    return arr


def _inside(path: Path, root: Path) -> bool:
    """Whether `path`, links resolved, lies inside `root`."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a looping link
        return False


def external_images_allowed() -> bool:
    """Whether the user allows image paths outside the dataset folder ($HANDMESH_ALLOW_EXTERNAL_IMAGES=1)."""
    return os.environ.get(ALLOW_EXTERNAL_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def parse_line(
    text: str, line: int, root: Path, check_files: bool = True, allow_external: bool | None = None
) -> tuple[Annotation | None, list[str]]:
    """Validate one annotations.jsonl line: (annotation or None when unparsable, problems); an annotation
    with problems must not be used. Image paths must stay inside `root` unless `allow_external`."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [f"line {line}: not valid JSON ({exc.msg} at column {exc.colno})"]
    except ValueError as exc:  # an integer of more than 4,300 digits
        return None, [f"line {line}: not valid JSON ({str(exc)[:80]})"]
    except RecursionError:
        return None, [f"line {line}: not valid JSON (nested too deeply)"]
    if not isinstance(obj, dict):
        return None, [f"line {line}: expected a JSON object, got {type(obj).__name__}"]
    p = []
    image = obj.get("image")
    if not isinstance(image, str) or not image:
        p.append("'image' (a relative path) is required")
        path = None
    else:
        path = root / image
        outside = Path(image).is_absolute() or ".." in Path(image).parts
        if outside and not (external_images_allowed() if allow_external is None else allow_external):
            # a shared dataset must not make training read arbitrary files of the machine it runs on
            p.append(
                f"image {image!r} lies outside the dataset folder (absolute path or '..'); "
                f"set {ALLOW_EXTERNAL_ENV}=1 to allow it"
            )
            path = None
        elif not (external_images_allowed() if allow_external is None else allow_external) and not _inside(
            path, root
        ):
            # a symbolic link inside the folder may point anywhere: containment is checked on the target
            p.append(f"image {image!r} is a link to a file outside the dataset folder; set {ALLOW_EXTERNAL_ENV}=1 to allow it")
            path = None
        elif check_files and not path.is_file():
            p.append(f"image file not found: {path}")
    ann = Annotation(line=line, image=path if path is not None else root)
    side = obj.get("handedness", "right")
    if side not in ("right", "left"):
        p.append(f"handedness must be 'right' or 'left', got {side!r}")
    else:
        ann.side = side
    for key, shapes in ARRAY_SHAPES.items():
        if key in obj:
            setattr(ann, key, _array(obj[key], shapes, key, p))
    if ann.K is not None:
        problem = camera_problem(ann.K)
        if problem:
            p.append(f"K is {problem}")
            ann.K = None
    for key in ("joints3d", "vertices"):
        arr = getattr(ann, key)
        if arr is not None and (arr[:, 2] < MIN_DEPTH_M).any():
            p.append(
                f"{key}: points behind the camera or within 1 mm of it (z < {MIN_DEPTH_M:g}); expected "
                "camera-frame metres"
            )
            setattr(ann, key, None)
        elif arr is not None and np.abs(arr).max() > 20:
            p.append(f"{key}: values up to {np.abs(arr).max():.3g} — expected metres, not millimetres")
            setattr(ann, key, None)
    if ann.keypoints2d is not None and ann.keypoints2d.shape[1] == 3:
        conf = ann.keypoints2d[:, 2]
        if (conf < 0).any() or (conf > 1).any():
            p.append("keypoints2d: third column (visibility/confidence) must be in [0, 1]")
        ann.keypoints_conf = np.clip(conf, 0, 1)
        ann.keypoints2d = ann.keypoints2d[:, :2]
    if "mano" in obj:
        ann.mano = _parse_mano(obj["mano"], p)
    if "box" in obj:
        box = _array(obj["box"], [(4,)], "box", p)
        if box is not None and not (box[2] > box[0] and box[3] > box[1]):
            p.append("box must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
            box = None
        ann.box = box
    for key in ("confidence", "side_confidence"):
        if key in obj:
            c = obj[key]
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 <= c <= 1:
                p.append(f"{key} must be a number in [0, 1], got {c!r}")
            else:
                setattr(ann, key, float(c))
    if "split" in obj:
        if obj["split"] not in LINE_SPLITS:
            p.append(f"split must be one of {', '.join(map(repr, LINE_SPLITS))}, got {obj['split']!r}")
        else:
            ann.split = obj["split"]
    unknown = sorted(set(obj) - KNOWN_KEYS)
    if unknown:
        ann.warnings.append(f"line {line}: unknown key(s) {unknown} ignored")
    labels = (ann.joints3d, ann.vertices, ann.keypoints2d, ann.mano)
    if not p and all(x is None for x in labels):
        ann.warnings.append(f"line {line}: no labels (mano, joints3d, vertices or keypoints2d)")
    if not p and ann.K is not None and ann.joints3d is not None and ann.keypoints2d is not None:
        _check_reprojection(ann)
    return ann, [f"line {line}: {msg}" for msg in p]


def _parse_mano(value, p: list[str]) -> dict[str, np.ndarray] | None:
    if not isinstance(value, dict):
        p.append('mano must be an object {"pose": 48, "betas": 10, "transl": 3}')
        return None
    out = {}
    for key, shape in MANO_SHAPES.items():
        if key in value:
            arr = _array(value[key], [shape], f"mano.{key}", p)
            if arr is not None:
                out[key] = arr
        elif key != "transl":
            p.append(f"mano.{key} is required ({shape[0]} values)")
    extra = set(value) - set(MANO_SHAPES)
    if extra:
        p.append(f"mano: unknown key(s) {sorted(extra)} (pose, betas, transl)")
    return out if {"pose", "betas"} <= set(out) else None


def _check_reprojection(ann: Annotation) -> None:
    from handmesh.geometry import project_points_np

    uv = project_points_np(ann.joints3d, ann.K)
    conf = ann.keypoints_conf if ann.keypoints_conf is not None else np.ones(21)
    sel = conf > 0
    if sel.sum() < 2:
        return
    err = np.linalg.norm(uv[sel] - ann.keypoints2d[sel], axis=1).mean()
    span = np.ptp(ann.keypoints2d[sel], axis=0).max()
    if err > max(0.15 * span, 5.0):
        ann.warnings.append(
            f"line {ann.line}: joints3d projected with K land {err:.1f} px from keypoints2d on average "
            "(different joint order, units or camera?)"
        )


def read_annotations(
    root: str | Path, check_files: bool = True
) -> tuple[list[Annotation], list[str], list[str]]:
    """Parse and validate every line: (annotations, problems, warnings); problems name their line."""
    root = Path(root)
    path = root / ANNOTATIONS
    if not path.is_file():
        raise MissingFileError(
            f"no {ANNOTATIONS} in {root} (see docs/datasets.md, section Custom datasets, for the format)"
        )
    anns, problems, warnings = [], [], []
    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(
                    f"line {no}: {path.name} is not UTF-8 text here (byte {exc.start} of the line)"
                )
                continue
            if not text.strip():
                continue
            ann, probs = parse_line(text, no, root, check_files)
            problems += probs
            if ann is not None:
                warnings += ann.warnings
                if not probs:
                    anns.append(ann)
    if not anns and not problems:
        problems.append(f"{path}: no annotations")
    return anns, problems, warnings


def check_images(anns: list[Annotation]) -> list[str]:
    """Check every image once (header, size limits, end marker: no full decode); problems (corrupt files,
    boxes outside the image) name their line."""
    problems = []
    decoded: dict[Path, tuple[int, int] | str] = {}
    for ann in anns:
        if ann.image not in decoded:
            try:
                decoded[ann.image] = probe_image(ann.image)
            except HandmeshError as exc:
                decoded[ann.image] = str(exc)
        res = decoded[ann.image]
        if isinstance(res, str):
            problems.append(f"line {ann.line}: {res}")
            continue
        w, h = res
        if ann.box is not None and (ann.box[2] <= 0 or ann.box[3] <= 0 or ann.box[0] >= w or ann.box[1] >= h):
            problems.append(f"line {ann.line}: box {ann.box.tolist()} lies outside the {w}x{h} image")
    return problems


def default_K(width: int, height: int) -> np.ndarray:
    """A guessed pinhole camera for images without K: focal = longest side (about 53 deg), centred."""
    f = float(max(width, height))
    return np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1.0]])


def complete_from_mano(anns: list[Annotation], hand_path: str | None = None) -> None:
    """Fill joints3d / vertices of annotations that have MANO values with transl but no 3D points."""
    todo = [
        a
        for a in anns
        if a.mano is not None and "transl" in a.mano and (a.joints3d is None or a.vertices is None)
    ]
    if not todo:
        return
    from handmesh.data.freihand import data_hand_model

    for side in ("right", "left"):
        group = [a for a in todo if a.side == side]
        if not group:
            continue
        hand = data_hand_model(side, hand_path)
        pose = torch.as_tensor(np.stack([a.mano["pose"] for a in group]))
        with torch.no_grad():
            out = hand(
                global_orient=pose[:, :3],
                hand_pose=pose[:, 3:],
                betas=torch.as_tensor(np.stack([a.mano["betas"] for a in group])),
                transl=torch.as_tensor(np.stack([a.mano["transl"] for a in group])),
            )
        for a, v, j in zip(group, out.vertices.numpy(), out.joints.numpy(), strict=True):
            a.vertices = v if a.vertices is None else a.vertices
            a.joints3d = j if a.joints3d is None else a.joints3d


CUSTOM_SPLITS = ("all", "training", "train", "val", "test")


def has_test_lines(root: str | Path) -> bool:
    """Whether the folder's annotations.jsonl marks any line `"split": "test"` (its evaluation split)."""
    anns, _, _ = read_annotations(root, check_files=False)
    return any(a.split == "test" for a in anns)


def select_split(anns: list[Annotation], split: str, held_out: HoldOut | None = None) -> list[Annotation]:
    """The annotations of one split of a custom folder.

    "all": every line. "test": the lines marked `"split": "test"` (the folder's evaluation split).
    "training": every line not marked test. "train" / "val": the lines not marked test, divided by image
    (two hands of one photo never straddle the split): when some line is marked "val", the images of the
    lines marked "val" are the validation split; otherwise the `held_out` share of the images whose
    lines pin no split (default: HoldOut()). Lines marked "train" are never validated on.
    """
    if split not in CUSTOM_SPLITS:
        raise HandmeshError(f"unknown custom-dataset split {split!r} ({', '.join(CUSTOM_SPLITS)})")
    if split == "all":
        return list(anns)
    if split == "test":
        return [a for a in anns if a.split == "test"]
    pool = [a for a in anns if a.split != "test"]
    if split == "training":
        return pool
    if any(a.split == "val" for a in pool):
        val = {str(a.image) for a in pool if a.split == "val"}
    else:
        pinned = {str(a.image) for a in pool if a.split == "train"}
        images = sorted({str(a.image) for a in pool} - pinned)
        val = {images[i] for i in (held_out or HoldOut()).samples(len(images))}
    return [a for a in pool if (str(a.image) in val) == (split == "val")]


class CustomDataset(Dataset):
    """A custom-format folder as samples of the datasets contract (labels a line lacks are masked off).

    split: one of CUSTOM_SPLITS (see `select_split`): "train" / "val" hold the `held_out` share of the
    images out (or follow the lines' own "split" keys), "test" is the folder's evaluation split.
    `anns`: the folder's checked annotations when they were already read (`read_annotations`, no problems).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        cfg: AugmentConfig | None = None,
        augment: bool | None = None,
        held_out: HoldOut | None = None,
        hand_path: str | None = None,
        anns: list[Annotation] | None = None,
    ):
        if split not in CUSTOM_SPLITS:
            raise HandmeshError(f"unknown custom-dataset split {split!r} ({', '.join(CUSTOM_SPLITS)})")
        self.root = Path(root)
        if anns is None:
            anns, problems, _ = read_annotations(self.root)
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise HandmeshError(
                    f"{self.root / ANNOTATIONS}: {problems[0]}{more}; run `handmesh check-dataset {self.root}`"
                )
        anns = select_split(anns, split, held_out)
        complete_from_mano(anns, hand_path)  # fills only what is missing: shared annotations pay once
        self.split = split
        self.anns = anns
        if augment is None:
            augment = split in ("train", "training", "all")
        self.transform = HandTransform(cfg, train=augment, crop="hand")

    def __len__(self) -> int:
        return len(self.anns)

    def record(self, i: int) -> HandRecord:
        """The raw (uncropped) record of item i."""
        a = self.anns[i]
        image = read_image(a.image)
        K, estimated = a.K, a.K is None
        if estimated:
            K = default_K(image.shape[1], image.shape[0])
        mano = a.mano or {}
        return HandRecord(
            image=image,
            K=K,
            side=a.side,
            joints3d=a.joints3d,
            vertices=a.vertices,
            keypoints2d=a.keypoints2d,
            keypoints_conf=a.keypoints_conf,
            mano_pose=mano.get("pose"),
            betas=mano.get("betas"),
            box=a.box,
            weight=a.confidence,
            index=i,
            K_estimated=estimated,
        )

    def __getitem__(self, i: int) -> dict:
        sample = self.transform(self.record(i))
        sample["line"] = torch.tensor(self.anns[i].line)
        return sample
