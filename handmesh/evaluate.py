"""Evaluation on a FreiHAND-layout split: the official submission file and its scores.

`handmesh evaluate CKPT --data DIR --out OUT` runs the model on every image of the split (FreiHAND's
evaluation images are already 224x224 hand crops: the whole image is the crop, resized to the model's
input with its K scaled to match), moves the predicted hand into the camera with the model's camera and
that K (`models.camera.cam_to_translation`), writes `OUT/pred.json` in the official format (`[xyz, verts]`,
metres, absolute camera coordinates, evaluation order) and scores that file exactly as `handmesh score`
does (`OUT/scores.json`, and the table on stdout).

`--baseline mean` needs no checkpoint: every sample is predicted as the mean hand (zero pose relative to
the mean, zero shape, identity global rotation) translated so that its root joint (9) sits on the ground
truth's. The aligned (PA) metrics do not depend on that placement, since alignment removes rotation,
scale and translation; the unaligned ones are only a reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handmesh.errors import HandmeshError
from handmesh.hand_model.joints import ROOT_JOINT

SPLITS = ("evaluation", "training")


@torch.no_grad()
def predict_camera_space(
    model: torch.nn.Module, images: torch.Tensor, K: torch.Tensor, img_size: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Joints (B,21,3) and vertices (B,778,3) in the crop camera K (metres), plus the raw model output."""
    from handmesh.models.camera import cam_to_translation

    out = model(images)
    transl = cam_to_translation(out["cam"].float(), K.float(), img_size)[:, None, :]
    return out["joints"].float() + transl, out["vertices"].float() + transl, out


def resolve_device(spec: str = "auto") -> torch.device:
    """'auto' -> the GPU when CUDA is available, else the CPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(spec)


def split_dataset(data_dir: str | Path, split: str, img_size: int) -> torch.utils.data.Dataset:
    """The split's images as model inputs, whole image = crop, no augmentation, in file order."""
    from handmesh.data.freihand import FreiHANDDataset
    from handmesh.data.transforms import AugmentConfig

    if split not in SPLITS:
        raise HandmeshError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    # "training" would list every background version; the ground truth has one entry per sample
    name = "evaluation" if split == "evaluation" else "training"
    return FreiHANDDataset(
        data_dir, split=name, cfg=AugmentConfig(img_size=img_size), augment=False, versions=1
    )


@torch.no_grad()
def predict_dataset(
    model: torch.nn.Module,
    dataset: torch.utils.data.Dataset,
    batch_size: int = 32,
    workers: int = 2,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space joints (N,21,3) and vertices (N,778,3) in metres, in dataset order."""
    device = torch.device(device)
    model = model.to(device).eval()
    img_size = int(model.config.img_size)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda"
    )
    xyz, verts = [], []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), desc="evaluate", unit="img", file=sys.stderr, dynamic_ncols=True)
    for batch in loader:
        joints, vertices, _ = predict_camera_space(
            model, batch["image"].to(device), batch["K"].to(device), img_size
        )
        xyz.append(joints.double().cpu().numpy())
        verts.append(vertices.double().cpu().numpy())
        if bar is not None:
            bar.update(len(batch["image"]))
    if bar is not None:
        bar.close()
    return np.concatenate(xyz), np.concatenate(verts)


@torch.no_grad()
def mean_hand_prediction(
    gt_xyz: np.ndarray, hand: torch.nn.Module | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The mean-pose baseline: the mean hand at every sample, its root joint on the ground truth's."""
    from handmesh.hand_model import load_hand_model

    hand = hand if hand is not None else load_hand_model()
    out = hand()  # every parameter zero: the mean pose, the mean shape, no rotation
    joints = out.joints[0].double().cpu().numpy()
    verts = out.vertices[0].double().cpu().numpy()
    shift = np.asarray(gt_xyz, np.float64)[:, ROOT_JOINT] - joints[ROOT_JOINT]
    return joints[None] + shift[:, None], verts[None] + shift[:, None]


def write_submission(path: str | Path, xyz: np.ndarray, verts: np.ndarray) -> Path:
    """Write `[xyz_list, verts_list]` (metres, absolute camera coordinates) as FreiHAND's pred.json."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # 7 decimals in metres is 0.1 um: far below any metric's resolution, and keeps the file small
    rounded = [
        np.round(np.asarray(xyz, np.float64), 7).tolist(),
        np.round(np.asarray(verts, np.float64), 7).tolist(),
    ]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rounded, separators=(",", ":")))
    tmp.replace(path)
    return path


def score_submission(
    pred_path: str | Path, data_dir: str | Path, split: str = "evaluation"
) -> dict[str, Any]:
    """Scores of a pred.json against the split's ground truth (what `handmesh score` computes)."""
    from handmesh.metrics import load_ground_truth, load_submission, score_arrays

    gt_xyz, gt_verts = load_ground_truth(data_dir, split)
    xyz, verts = load_submission(pred_path, num_samples=len(gt_xyz))
    return score_arrays(xyz, verts, gt_xyz, gt_verts)


def evaluate(
    checkpoint: str | Path | None,
    data_dir: str | Path,
    out_dir: str | Path,
    split: str = "evaluation",
    baseline: str | None = None,
    batch_size: int = 32,
    workers: int = 2,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Write OUT/pred.json and OUT/scores.json for a checkpoint (or the mean-pose baseline); return the scores."""
    from handmesh.metrics import load_ground_truth

    out_dir = Path(out_dir)
    if baseline is not None:
        if baseline != "mean":
            raise HandmeshError(f"unknown baseline {baseline!r} (only 'mean')")
        gt_xyz, _ = load_ground_truth(data_dir, split)
        xyz, verts = mean_hand_prediction(gt_xyz)
        source = "mean-pose baseline"
    else:
        if checkpoint is None:
            raise HandmeshError("give a checkpoint (CKPT) or --baseline mean")
        from handmesh.models import load_model

        model = load_model(checkpoint)
        dataset = split_dataset(data_dir, split, int(model.config.img_size))
        xyz, verts = predict_dataset(model, dataset, batch_size, workers, resolve_device(device), progress)
        source = str(checkpoint)
    pred_path = write_submission(out_dir / "pred.json", xyz, verts)
    scores = score_submission(pred_path, data_dir, split)
    record = {**{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in scores.items()}}
    record.update({"source": source, "split": split, "data": str(data_dir)})
    (out_dir / "scores.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def run(args: argparse.Namespace) -> int:
    """`handmesh evaluate`."""
    from handmesh.metrics import format_table

    scores = evaluate(
        args.checkpoint,
        args.data,
        args.out,
        split=args.split,
        baseline=args.baseline,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        progress=not args.quiet,
    )
    print(format_table(scores))
    print(f"wrote {Path(args.out) / 'pred.json'} and {Path(args.out) / 'scores.json'}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `handmesh evaluate`."""
    parser = subparsers.add_parser(
        "evaluate",
        help="run a checkpoint on a FreiHAND-layout split: pred.json (submission) + scores",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint", nargs="?", default=None, metavar="CKPT", help="model or training checkpoint"
    )
    parser.add_argument(
        "--data", required=True, help="FreiHAND-layout folder (data/freihand or `handmesh synth`)"
    )
    parser.add_argument("--split", default="evaluation", choices=SPLITS)
    parser.add_argument("--out", required=True, help="output folder for pred.json and scores.json")
    parser.add_argument(
        "--baseline", choices=["mean"], default=None, help="score the mean-pose baseline instead"
    )
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser
