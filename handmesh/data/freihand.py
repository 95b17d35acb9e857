"""FreiHAND: its file layout, its MANO-value convention, and a torch Dataset over any folder in that layout.

`training_mano.json` holds 61 values per sample: 48 axis-angle pose (3 global + 45 articulation,
relative to the mean hand), 10 shape, `uv_root` (2) and `scale` (1). The root keypoint (joint 9, middle
MCP) sits at [u - cx, v - cy, f] / scale in the camera, f = (fx + fy) / 2; the translation is whatever
puts joint 9 there.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from handmesh.data.io import load_json_array, read_image
from handmesh.data.record import HandRecord
from handmesh.data.transforms import AugmentConfig, HandTransform
from handmesh.errors import HandmeshError, MissingFileError
from handmesh.hand_model.joints import ROOT_JOINT

NUM_MANO_VALUES = 61
SYNTH_INFO = "handmesh_synth.json"  # written by `handmesh synth` beside the FreiHAND files
WHERE = "data/freihand/ (see data/README.md)"

_HANDS: dict[tuple, torch.nn.Module] = {}


def data_hand_model(side: str = "right", path: str | None = None) -> torch.nn.Module:
    """The hand-model layer in float64 (cached per process): labels are built and checked at 1e-6 m."""
    key = (side, path)
    if key not in _HANDS:
        from handmesh.hand_model import load_hand_model

        _HANDS[key] = load_hand_model(path, side=side).double().eval()
    return _HANDS[key]


def split_mano(mano: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N,61) FreiHAND MANO values -> pose (N,48), betas (N,10), uv_root (N,2), scale (N,)."""
    mano = np.asarray(mano, np.float64).reshape(-1, NUM_MANO_VALUES)
    return mano[:, :48], mano[:, 48:58], mano[:, 58:60], mano[:, 60]


def focal_mean(K: np.ndarray) -> np.ndarray:
    """FreiHAND's single focal length (fx + fy) / 2 of (N,3,3) intrinsics."""
    return (K[..., 0, 0] + K[..., 1, 1]) / 2.0


def root_from_uv_scale(uv_root: np.ndarray, scale: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera position (N,3) of the root keypoint: [u - cx, v - cy, f] / scale."""
    uv_root, scale, K = (
        np.asarray(uv_root, np.float64),
        np.asarray(scale, np.float64),
        np.asarray(K, np.float64),
    )
    xyz = np.stack([uv_root[..., 0] - K[..., 0, 2], uv_root[..., 1] - K[..., 1, 2], focal_mean(K)], -1)
    return xyz / scale[..., None]


def uv_scale_from_root(root: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `root_from_uv_scale`: (uv_root (N,2), scale (N,)) for root positions (N,3)."""
    root, K = np.asarray(root, np.float64), np.asarray(K, np.float64)
    scale = focal_mean(K) / root[..., 2]
    uv = np.stack([root[..., 0] * scale + K[..., 0, 2], root[..., 1] * scale + K[..., 1, 2]], -1)
    return uv, scale


def mano_to_mesh(
    mano: np.ndarray, K: np.ndarray, hand: torch.nn.Module | None = None, chunk: int = 1024
) -> dict[str, np.ndarray]:
    """Run FreiHAND MANO values (N,61) through the hand model: camera-space `vertices` (N,778,3), `joints`
    (N,21,3) and the `transl` (N,3) that puts joint 9 at its uv_root/scale position (float64)."""
    hand = hand if hand is not None else data_hand_model()
    pose, betas, uv, scale = split_mano(mano)
    K = np.asarray(K, np.float64).reshape(-1, 3, 3)
    root = root_from_uv_scale(uv, scale, K)
    dtype = next(hand.buffers()).dtype
    verts, joints = [], []
    with torch.no_grad():
        for i in range(0, len(pose), chunk):
            p = torch.as_tensor(pose[i : i + chunk], dtype=dtype)
            out = hand(
                global_orient=p[:, :3],
                hand_pose=p[:, 3:],
                betas=torch.as_tensor(betas[i : i + chunk], dtype=dtype),
            )
            verts.append(out.vertices.double().numpy())
            joints.append(out.joints.double().numpy())
    verts = np.concatenate(verts) if verts else np.zeros((0, 778, 3))
    joints = np.concatenate(joints) if joints else np.zeros((0, 21, 3))
    transl = root - joints[:, ROOT_JOINT]
    return {"vertices": verts + transl[:, None], "joints": joints + transl[:, None], "transl": transl}


def is_freihand_layout(root: str | Path) -> bool:
    """Whether `root` looks like a FreiHAND folder (either split's K file present)."""
    root = Path(root)
    return (root / "training_K.json").is_file() or (root / "evaluation_K.json").is_file()


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise MissingFileError(f"FreiHAND {what} not found: {path} — put FreiHAND in {WHERE}")
    return path


def count_versions(rgb_dir: Path, num_samples: int) -> int:
    """How many complete background versions of `num_samples` images `rgb_dir` holds (FreiHAND: 4)."""
    v = 0
    while (rgb_dir / f"{num_samples * v:08d}.jpg").is_file() and (
        rgb_dir / f"{num_samples * (v + 1) - 1:08d}.jpg"
    ).is_file():
        v += 1
    return v


@dataclass(frozen=True)
class HoldOut:
    """Which samples of a training folder validation holds out: a seeded random `fraction` of them."""

    fraction: float = 0.05
    seed: int = 0

    def samples(self, num_samples: int) -> np.ndarray:
        """Sorted ids of the held-out samples among `num_samples` (at least one when fraction > 0)."""
        if not 0.0 <= self.fraction < 1.0:
            raise HandmeshError(f"validation fraction must be in [0, 1), got {self.fraction}")
        count = int(round(num_samples * self.fraction))
        if self.fraction > 0 and count == 0 and num_samples > 1:
            count = 1
        perm = np.random.default_rng(self.seed).permutation(num_samples)
        return np.sort(perm[:count])


MAX_VERSIONS = 1000  # background versions of each sample (FreiHAND has 4)


def synth_info(root: str | Path) -> dict:
    """The generator's notes (`handmesh_synth.json`) when the folder was made by `handmesh synth`."""
    path = Path(root) / SYNTH_INFO
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise HandmeshError(f"{path}: not valid JSON (delete it or re-run `handmesh synth`)") from None
    if not isinstance(info, dict):
        raise HandmeshError(f"{path}: expected a JSON object")
    return info


class FreiHANDAnnotations:
    """All labels of one FreiHAND split as float64 arrays; absent files are None."""

    def __init__(self, root: str | Path, split: str = "training", hand: torch.nn.Module | None = None):
        root = Path(root)
        if split not in ("training", "evaluation"):
            raise HandmeshError(f"FreiHAND split must be 'training' or 'evaluation', got {split!r}")
        if not root.is_dir():
            raise MissingFileError(f"FreiHAND folder not found: {root} — put FreiHAND in {WHERE}")
        self.root, self.split = root, split
        self.K = load_json_array(_require(root / f"{split}_K.json", f"{split}_K.json"), (3, 3))
        n = len(self.K)
        self.mano = self._optional(f"{split}_mano.json", (NUM_MANO_VALUES,), n, required=split == "training")
        self.xyz = self._optional(f"{split}_xyz.json", (21, 3), n, required=split == "training")
        self.verts = self._optional(f"{split}_verts.json", (778, 3), n)
        self.scale = self._optional("evaluation_scale.json", (), n) if split == "evaluation" else None
        if self.verts is None and self.mano is not None:
            self.verts = self._rebuild_verts(hand)
        self.rgb_dir = _require(root / split / "rgb", f"{split} images folder")
        self.versions = count_versions(self.rgb_dir, n) if n else 0
        # images beyond what the labels describe (an earlier, larger synth run into the same folder) would
        # otherwise be read as extra background versions with another sample's labels
        made = synth_info(root).get("training_versions") if split == "training" else 1
        if made is not None:
            if isinstance(made, bool) or not isinstance(made, int) or not 1 <= made <= MAX_VERSIONS:
                raise HandmeshError(
                    f"{root / SYNTH_INFO}: training_versions must be an integer in 1..{MAX_VERSIONS}, "
                    f"got {str(made)[:40]!r}"
                )
            self.versions = min(self.versions, made)
        if n and self.versions == 0:
            raise MissingFileError(
                f"FreiHAND images missing: expected {self.rgb_dir}/00000000.jpg ... {n - 1:08d}.jpg — put "
                f"FreiHAND in {WHERE}"
            )

    def __len__(self) -> int:
        return len(self.K)

    def _optional(self, name: str, shape, n: int, required: bool = False) -> np.ndarray | None:
        path = self.root / name
        if not path.is_file():
            if path.exists() or path.is_symlink():  # a folder or a broken link must not read as "absent"
                raise HandmeshError(f"{path}: not a regular file (a folder, FIFO or broken link)")
            if required:
                _require(path, name)
            return None
        arr = load_json_array(path, shape)
        if len(arr) != n:
            raise HandmeshError(f"{path}: {len(arr)} entries but {self.split}_K.json has {n}")
        return arr

    def _rebuild_verts(self, hand) -> np.ndarray:
        hand = hand if hand is not None else data_hand_model()
        made_with = synth_info(self.root).get("hand_model")
        note = f" (this folder was made with the {made_with} hand model)" if made_with else ""
        print(
            f"handmesh: {self.split}_verts.json absent: rebuilding {len(self.K)} meshes from "
            f"{self.split}_mano.json with the {hand.kind} hand model{note}",
            file=sys.stderr,
        )
        if made_with and made_with != hand.kind:
            raise HandmeshError(
                f"{self.root} was made with the {made_with} hand model but {hand.kind} is configured: "
                "cannot rebuild its vertices"
            )
        return mano_to_mesh(self.mano, self.K, hand)["vertices"]

    def image_path(self, sample: int, version: int = 0) -> Path:
        """Path of a sample's image for one background version (image id = sample + N * version)."""
        return self.rgb_dir / f"{sample + len(self) * version:08d}.jpg"

    def record(self, sample: int, version: int = 0) -> HandRecord:
        """A HandRecord of one sample/version with every label the split has."""
        pose = betas = None
        if self.mano is not None:
            pose, betas = self.mano[sample, :48], self.mano[sample, 48:58]
        return HandRecord(
            image=read_image(self.image_path(sample, version)),
            K=self.K[sample],
            side="right",
            joints3d=None if self.xyz is None else self.xyz[sample],
            vertices=None if self.verts is None else self.verts[sample],
            mano_pose=pose,
            betas=betas,
            index=sample + len(self) * version,
        )


class FreiHANDDataset(Dataset):
    """FreiHAND-layout folder as samples of the datasets contract.

    split: "training" (every sample and version), "train" / "val" (training split by sample id:
    every version of a sample lands on one side), "evaluation" (in evaluation order, no augmentation).
    `ann`: the split's labels when they were already read.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        cfg: AugmentConfig | None = None,
        augment: bool | None = None,
        held_out: HoldOut | None = None,
        versions: int | None = None,
        hand: torch.nn.Module | None = None,
        ann: FreiHANDAnnotations | None = None,
    ):
        if split not in ("training", "train", "val", "evaluation"):
            raise HandmeshError(f"unknown FreiHAND split {split!r} (training, train, val, evaluation)")
        self.split = split
        labels = "evaluation" if split == "evaluation" else "training"
        if ann is not None and ann.split != labels:
            raise ValueError(f"the {split!r} split reads the {labels} labels, not the {ann.split} ones")
        # `ann`: labels already read (training reads a folder once: the preflight's labels are reused)
        self.ann = ann if ann is not None else FreiHANDAnnotations(root, labels, hand)
        n = len(self.ann)
        samples = np.arange(n)
        if split in ("train", "val"):
            val = (held_out or HoldOut()).samples(n)
            samples = val if split == "val" else np.setdiff1d(samples, val)
        nv = self.ann.versions if versions is None else min(int(versions), self.ann.versions)
        # version-major order, like FreiHAND's image ids
        self.items = [(int(s), v) for v in range(nv) for s in samples]
        if augment is None:
            augment = split in ("training", "train")
        # FreiHAND images are already hand-centred 224 crops: the base crop is the whole image,
        # exactly what evaluation sees, and training jitters around it.
        self.transform = HandTransform(cfg, train=augment, crop="image")

    def __len__(self) -> int:
        return len(self.items)

    def record(self, i: int) -> HandRecord:
        """The raw (uncropped) record of item i."""
        return self.ann.record(*self.items[i])

    def __getitem__(self, i: int) -> dict:
        sample = self.transform(self.record(i))
        sample["sample_id"] = torch.tensor(self.items[i][0])
        return sample
