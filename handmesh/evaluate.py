"""The engine of `handmesh evaluate` (handmesh.evaluate_cli says what the command does): a folder's split
as crops, a mesh source run over it (handmesh.evaluation), the official 3D scores and the 2D keypoint
scores, the submission file and scores.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handmesh.atomic import atomic_write
from handmesh.errors import HandmeshError
from handmesh.evaluation.config import SPLITS, EvaluateConfig
from handmesh.hand_model.joints import ROOT_JOINT

HAND_SPAN_M = 0.19  # wrist to middle fingertip of an adult hand: where a missed hand is put


def resolve_device(spec: str = "auto") -> torch.device:
    """'auto' -> the GPU when CUDA is available, else the CPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(spec)


def split_dataset(
    data_dir: str | Path, split: str, img_size: int, val_fraction: float = 0.05, seed: int = 0
) -> tuple[torch.utils.data.Dataset, str]:
    """A folder's split as unaugmented crops at `img_size`, in file order, and what that split is in words."""
    from handmesh.data import dataset_kind, open_dataset
    from handmesh.data.freihand import FreiHANDDataset, HoldOut
    from handmesh.data.transforms import AugmentConfig

    if split not in SPLITS:
        raise HandmeshError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    cfg = AugmentConfig(img_size=img_size)
    held_out = f"held out for validation (--val-fraction {val_fraction}, --seed {seed})"
    if dataset_kind(data_dir) == "freihand":
        if split == "val":
            ds = FreiHANDDataset(data_dir, "val", cfg, False, HoldOut(val_fraction, seed))
            return ds, f"FreiHAND training samples {held_out}, every background version"
        # the ground truth has one entry per sample: the first background version of each
        ds = FreiHANDDataset(data_dir, split, cfg, augment=False, versions=1)
        return ds, f"FreiHAND {split} split" + (", first background version" if split == "training" else "")
    ds = open_dataset(data_dir, split, cfg, augment=False, held_out=HoldOut(val_fraction, seed))
    words = {
        "test": 'lines marked "split": "test"',
        "all": 'every line (none is marked "split": "test")',
        "training": 'every line not marked "split": "test"',
        "val": f'lines {held_out} (or marked "split": "val")',
    }
    return ds, f"custom folder: {words[ds.split]}"


def data_folders(spec: str) -> list[str]:
    """The folders of a --data value ("DIR" or "DIR + DIR ..."; mix weights are ignored)."""
    from handmesh.data.mix import parse_data_spec

    sources = parse_data_spec(spec)
    streams = [s.spec for s in sources if not s.is_folder]
    if streams:
        raise HandmeshError(
            f"--data {streams[0]!r}: the synthetic stream (or a foreground cache) has no fixed evaluation "
            "set; write one with `handmesh synth --out DIR --train 0 --eval N` and evaluate DIR"
        )
    return [s.spec for s in sources]


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
    # 7 decimals in metres is 0.1 um: far below any metric's resolution, and keeps the file small
    rounded = [
        np.round(np.asarray(xyz, np.float64), 7).tolist(),
        np.round(np.asarray(verts, np.float64), 7).tolist(),
    ]
    return atomic_write(path, json.dumps(rounded, separators=(",", ":")))


def score_submission(
    pred_path: str | Path, data_dir: str | Path, split: str = "evaluation"
) -> dict[str, Any]:
    """Scores of a pred.json against the split's ground truth (what `handmesh score` computes)."""
    from handmesh.metrics import load_ground_truth, load_submission, score_arrays

    gt_xyz, gt_verts = load_ground_truth(data_dir, split)
    xyz, verts = load_submission(pred_path, num_samples=len(gt_xyz))
    return score_arrays(xyz, verts, gt_xyz, gt_verts)


def fill_misses(collected) -> tuple[np.ndarray, np.ndarray]:
    """Joints and vertices of every hand, a hand that was not found replaced by the mean hand on the view's
    optical axis at the depth where a hand spans two thirds of the view (no label is used)."""
    from handmesh.hand_model import load_hand_model

    joints, verts = collected.joints.copy(), collected.vertices.copy()
    missed = np.flatnonzero(~collected.found)
    if len(missed):
        with torch.no_grad():
            out = load_hand_model()()
        mean_j = out.joints[0].double().numpy()
        mean_v = out.vertices[0].double().numpy()
        for i in missed:
            K = collected.K[i]
            depth = K[0, 0] * HAND_SPAN_M * 1.5 / max(2.0 * K[0, 2], 1.0)
            shift = np.array([0.0, 0.0, depth]) - mean_j[ROOT_JOINT]
            joints[i], verts[i] = mean_j + shift, mean_v + shift
    return joints, verts


def hand_model_notes(folder: str | Path, hand_kind: str | None, collected) -> list[str]:
    """A note when a FreiHAND-layout folder's vertices were made with another hand model than the source's
    (real FreiHAND: MANO): its vertex scores then compare two different meshes; joints stay comparable."""
    from handmesh.data import dataset_kind
    from handmesh.data.freihand import synth_info

    if hand_kind is None or not collected.has_3d.any() or dataset_kind(folder) != "freihand":
        return []
    made_with = synth_info(folder).get("hand_model") or "mano"
    if made_with == hand_kind:
        return []
    return [
        f"the labels' vertices were made with the {made_with} hand model and the meshes are the {hand_kind} "
        "one's: PA-MPVPE and the F-scores compare different meshes (the joints are comparable)"
    ]


def score_collected(collected) -> dict[str, Any]:
    """Every score the labels allow: 3D (official metrics; all hands with misses filled, and the found ones
    alone when some were missed) and 2D keypoints; plus how many hands were found."""
    from handmesh.metrics import score_arrays
    from handmesh.metrics2d import score_keypoints

    record: dict[str, Any] = {
        "num_hands": int(len(collected.found)),
        "found": float(collected.found.mean()) if len(collected.found) else float("nan"),
    }
    has3 = collected.has_3d
    if has3.any():
        joints, verts = fill_misses(collected)
        record.update(
            score_arrays(joints[has3], verts[has3], collected.gt_joints[has3], collected.gt_vertices[has3])
        )
        found3 = has3 & collected.found
        if found3.sum() < has3.sum() and found3.any():
            record["found_only"] = score_arrays(
                collected.joints[found3],
                collected.vertices[found3],
                collected.gt_joints[found3],
                collected.gt_vertices[found3],
            )
    has2 = collected.has_2d
    if has2.any():
        record["keypoints2d"] = score_keypoints(
            collected.keypoints[has2],
            collected.gt_keypoints[has2],
            collected.gt_conf[has2],
            collected.found[has2],
        )
    if not has3.any() and not has2.any():
        raise HandmeshError("nothing to score: no hand in the split has 3D joints + vertices or 2D keypoints")
    return record


def evaluate(
    checkpoint: str | Path | None,
    data_dir: str | Path,
    out_dir: str | Path,
    config: EvaluateConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score a mesh source (or the mean-pose baseline) on `data_dir`'s split as `config` says; write
    OUT/scores.json (and OUT/pred.json for a single FreiHAND-layout folder); return the scores."""
    from handmesh.data import dataset_kind

    cfg = config or EvaluateConfig()
    split, source, detector, search = cfg.split, cfg.source, cfg.detector, cfg.search
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.baseline is not None:
        return _evaluate_baseline(cfg.baseline, data_dir, out_dir, split)
    if source == "auto":
        if checkpoint is None:
            raise HandmeshError("give a model file (CKPT), --source landmark-fit or --baseline mean")
        source = "model"
    folders = data_folders(str(data_dir))
    mesh_source, pipeline = build_mesh_source(source, checkpoint, cfg.detect, detector, cfg.device, search)
    parts: dict[str, dict[str, Any]] = {}
    collected_parts = []
    for folder in folders:
        collected, words = collect_split(
            mesh_source,
            pipeline,
            folder,
            split,
            cfg.batch_size,
            cfg.workers,
            progress,
            cfg.val_fraction,
            cfg.seed,
        )
        finite = np.isfinite(collected.joints).all(axis=(1, 2)) & np.isfinite(collected.vertices).all(
            axis=(1, 2)
        )
        bad = np.flatnonzero(collected.found & ~finite)
        if len(bad):  # NaN weights make every prediction NaN: say so, and leave no pred.json to blame
            raise HandmeshError(
                f"{checkpoint or source}: predictions are NaN or infinite for {len(bad)} of {len(finite)} "
                f"hands (first: {int(bad[0])}; NaN or infinite weights?); nothing written"
            )
        collected_parts.append(collected)
        notes = collected.notes + hand_model_notes(folder, mesh_source.hand_kind, collected)
        parts[folder] = {**score_collected(collected), "split": words, "notes": notes}
    from handmesh.evaluation.collect import Collected

    combined = Collected.concat(collected_parts)
    record = parts[folders[0]] if len(folders) == 1 else {**score_collected(combined), "parts": parts}
    if len(folders) == 1 and dataset_kind(folders[0]) == "freihand" and split != "val":
        pred = write_submission(out_dir / "pred.json", *fill_misses(combined))
        if combined.has_3d.all():
            # the official path: the file's numbers, exactly as `handmesh score` reads them back
            record.update(score_submission(pred, folders[0], split))
    record.update(
        {
            "source": str(checkpoint) if source == "model" else "landmark fit",
            "mesh_source": source,
            "model": mesh_source.name,
            "boxes": f"detected ({detector}, as handmesh predict)" if cfg.detect else "labelled",
            "detector": None
            if source == "model" and not cfg.detect
            else f"{detector}, search {search or 'none'}",
            "data": str(data_dir),
        }
    )
    if len(folders) > 1:
        record["split"] = split
    _write_json(out_dir / "scores.json", record)
    return record


def build_mesh_source(
    source: str,
    checkpoint: str | Path | None,
    detect: bool = False,
    detector: str = "mediapipe",
    device: str = "auto",
    search: str | None = "fast",
):
    """The mesh source ("model" / "landmark-fit") and, with `detect`, the pipeline that runs it as predict
    does (else None). `search`: the still-image search (handmesh.pipeline.search), None or "none": the
    detector alone."""
    search = None if search == "none" else search
    from handmesh.evaluation.sources import build_source
    from handmesh.pipeline.pipeline import HandMeshPipeline, PipelineConfig
    from handmesh.pipeline.predictor import build_detector

    # a crop holds the one hand it was cut around; a whole image is searched as predict searches it
    on_crops = build_detector(detector, 1, search) if source == "landmark-fit" and not detect else None
    mesh_source = build_source(source, checkpoint, on_crops, device=str(resolve_device(device)))
    pipeline = None
    if detect:
        config = PipelineConfig()
        pipeline = HandMeshPipeline(
            mesh_source.estimator, detector=build_detector(detector, config.max_hands, search), config=config
        )
    return mesh_source, pipeline


def collect_split(
    mesh_source,
    pipeline,
    folder: str | Path,
    split: str = "evaluation",
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = True,
    val_fraction: float = 0.05,
    seed: int = 0,
):
    """One folder's split through the mesh source (with the pipeline when given): (Collected, the split in
    words)."""
    from handmesh.evaluation.collect import collect_boxes, collect_detected

    dataset, words = split_dataset(folder, split, mesh_source.input_size, val_fraction, seed)
    if len(dataset) == 0:
        raise HandmeshError(f"{folder}: the {split} split is empty ({words})")
    if pipeline is not None:
        return collect_detected(pipeline, dataset, progress), words
    # the landmark fit runs MediaPipe in this process: no loader workers to feed it
    workers = workers if mesh_source.kind == "model" else 0
    return collect_boxes(mesh_source, dataset, batch_size, workers, progress), words


def _evaluate_baseline(baseline: str, data_dir, out_dir: Path, split: str) -> dict[str, Any]:
    """The mean-pose baseline on a FreiHAND-layout split's ground truth."""
    from handmesh.metrics import load_ground_truth

    if baseline != "mean":
        raise HandmeshError(f"unknown baseline {baseline!r} (only 'mean')")
    gt_xyz, _ = load_ground_truth(data_dir, split)
    xyz, verts = mean_hand_prediction(gt_xyz)
    pred_path = write_submission(out_dir / "pred.json", xyz, verts)
    record = {**score_submission(pred_path, data_dir, split)}
    record.update({"source": "mean-pose baseline", "split": split, "data": str(data_dir)})
    _write_json(out_dir / "scores.json", record)
    return record


def _write_json(path: Path, record: dict[str, Any]) -> None:
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, (np.floating, float)):
            return None if not np.isfinite(v) else float(v)
        if isinstance(v, np.integer):
            return int(v)
        return v

    atomic_write(path, json.dumps(plain(record), indent=2) + "\n")
