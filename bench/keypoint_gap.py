"""Where a keypoint-head model's 2D error comes from: placement, scale, fingers, side, heatmap keypoints.

    .venv/bin/python bench/keypoint_gap.py bench/results/learn_realistic.pt \
        --data renders=runs/renders2d --data real=bench/realsets/keypoints --overlays runs/gap

The keypoint head (handmesh.models.head.KeypointHead) predicts 2D keypoints by heatmap soft-argmax and,
from them, the MANO hand and its crop camera. Each labelled folder is scored under the real set's
protocol (`handmesh bench real2d`: labelled-box crops at the model's input size, left hands mirrored)
five ways, as median keypoint distances per hand, shares of the hand's size (handmesh.metrics2d):
- `mesh`: the mesh's 3D joints projected through the crop camera (what `handmesh evaluate` scores);
- `heatmap`: the head's own `keypoints2d`;
- `refit`: the landmark fitter (handmesh.fit) given the mesh's 3D joints and the heatmap keypoints, as
  it is given MediaPipe's landmarks: the mesh placed and bent over the heatmap's 2D points;
- `mean_fingers`: the model's hand (orientation, shape, camera) with the mean hand's finger pose: what
  the predicted fingers add over the mean pose;
- `mirrored`: the model on the mirrored crop (the hand read as the other side), mirrored back: a right
  hand's back and a left hand's palm have the same outline, only the palm's and back's looks tell them
  apart. Each hand's facing (palm, back, side) comes from its labels (`facing`), and `by_facing` splits
  `mesh` and `mirrored` by it; `better_side_oracle` takes the better of the two per hand (by the labels:
  what reading the side wrong costs, not a method).
beside the landmark fit on the same crops. Each error is also taken apart (`decompose`: the centres'
offset, scale and rotation of the best 2D similarity, and what is left after it). Folders with 3D
labels also get PA-MPJPE of `mesh`, `refit` and `mean_fingers`, with MANO labels `by_curl` (the
straighter and the more bent half of the hands). `--overlays DIR` draws each hand (crop | mesh |
mirrored | heatmap, over the labels in green) for looking.
Real photos measure only; nothing here trains or picks a checkpoint. Writes `--json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handmesh.benchmarks.common import write_result  # noqa: E402

KINDS = ("mesh", "heatmap", "refit", "mean_fingers", "mirrored")
SIDE_VIEW = 0.3  # |sin| of the palm's 2D angle (wrist -> index base, wrist -> little finger base) below it
PANEL = 256  # overlay panel size (px)
COLORS = {
    "labels": (40, 220, 40),
    "mesh": (235, 60, 50),
    "mirrored": (255, 160, 0),
    "heatmap": (60, 120, 255),
}


def parse_data(value: str) -> tuple[str, Path]:
    """'NAME=DIR' -> (NAME, DIR)."""
    name, sep, folder = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--data {value!r}: expected NAME=DIR")
    return name, Path(folder)


def predict_folder(model, folder: Path) -> dict[str, np.ndarray]:
    """Crops, camera, labels and the model's three kinds of 2D keypoints (crop pixels) for every hand."""
    import torch

    from handmesh.evaluate import split_dataset
    from handmesh.fit import fit_keypoints
    from handmesh.geometry_np import project_points_np
    from handmesh.mirror import flip_intrinsics, mirror_vertices
    from handmesh.models.camera import cam_to_translation, predict_camera_space

    size = int(model.img_size)
    dataset, _ = split_dataset(folder, "evaluation", size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=False, num_workers=0)
    parts: dict[str, list[np.ndarray]] = {}
    start = 0
    for batch in loader:
        K = batch["K"].double()
        with torch.no_grad():
            joints, _, out = predict_camera_space(model, batch["image"], K.float(), size)
        joints = joints.double().numpy()
        heat = out["keypoints2d"].double().numpy()
        # the fitter places the mesh's own 3D hand over the heatmap points, as it does MediaPipe's
        refit = fit_keypoints(out["joints"].double().numpy(), heat, K.numpy(), side="right")
        # the same hand, orientation, shape and camera with the mean hand's fingers (pose matrices = I)
        with torch.no_grad():
            rest = torch.eye(3).expand(len(K), 15, 3, 3)
            hand = model.hand_model(global_orient=out["global_orient"], hand_pose=rest, betas=out["betas"])
            shift = cam_to_translation(out["cam"].float(), K.float(), size)[:, None, :]
            mean_fingers = (hand.joints + shift).double().numpy()
        # the crop mirrored: the model reads the hand as the other side; its joints mirrored back
        flipped = flip_intrinsics(K, size)
        with torch.no_grad():
            other, _, _ = predict_camera_space(model, batch["image"].flip(-1), flipped.float(), size)
        mirrored = project_points_np(mirror_vertices(other.double().numpy()), K.numpy())
        # how far the predicted fingers bend away from the mean hand: mean joint angle, degrees
        cos = (out["hand_pose"].diagonal(dim1=-2, dim2=-1).sum(-1).double() - 1) / 2
        articulation = torch.rad2deg(torch.acos(cos.clamp(-1, 1))).mean(-1).numpy()
        found = np.ones(len(K), bool)
        labelled = batch["has_joints2d"].numpy() > 0.5
        three_d = batch["has_joints3d"].numpy() > 0.5
        rows = {
            "crop": (batch["image"].permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8),
            "mesh": project_points_np(joints, K.numpy()),
            "heatmap": heat,
            "mean_fingers": project_points_np(mean_fingers, K.numpy()),
            "mirrored": mirrored,
            "articulation_deg": articulation,
            "refit": project_points_np(np.asarray(refit.joints, np.float64), K.numpy()),
            "mesh_3d": joints,
            "refit_3d": np.asarray(refit.joints, np.float64),
            "mean_fingers_3d": mean_fingers,
            "gt": np.where(labelled[:, None, None], batch["joints2d"].double().numpy(), np.nan),
            "conf": np.where(labelled[:, None], batch["joints2d_conf"].double().numpy(), 0.0),
            "gt_3d": np.where(three_d[:, None, None], batch["joints3d"].double().numpy(), np.nan),
            "found": found,
            # how bent the labelled fingers are: the mean joint angle away from the flat hand (NaN: no MANO)
            "curl": np.where(
                batch["has_mano"].numpy() > 0.5,
                np.linalg.norm(
                    (batch["mano_pose"][:, 3:] + model.hand_model.hands_mean)
                    .reshape(-1, 15, 3)
                    .double()
                    .numpy(),
                    axis=-1,
                ).mean(1),
                np.nan,
            ),
        }
        anns = getattr(dataset, "anns", None)  # a custom folder's lines name their photos
        rows["name"] = np.array(
            [Path(str(anns[start + i].image)).stem if anns else f"{start + i:03d}" for i in range(len(K))]
        )
        start += len(K)
        for key, value in rows.items():
            parts.setdefault(key, []).append(value)
    return {key: np.concatenate(value) for key, value in parts.items()}


def per_hand(pred: np.ndarray, got: dict[str, np.ndarray]) -> list[float | None]:
    """Each hand's median keypoint distance as a share of its size (None: unlabelled)."""
    from handmesh.metrics2d import normalized_errors

    norm, _, _ = normalized_errors(pred, got["gt"], got["conf"], got["found"])
    return [float(np.median(r[np.isfinite(r)])) if np.isfinite(r).any() else None for r in norm]


def decompose(pred: np.ndarray, gt: np.ndarray, conf: np.ndarray) -> dict[str, float] | None:
    """One hand's 2D error taken apart (shares of its size): the centres' offset, the scale and in-plane
    rotation of the best 2D similarity from prediction to labels, and the median distance left after
    matching centres (`centred`) and after the whole similarity (`aligned`: the pose's own error)."""
    from handmesh.metrics2d import hand_size

    sel = conf > 0
    size = hand_size(gt, conf, divisor=True)
    if sel.sum() < 3 or not np.isfinite(size):
        return None
    # points as complex numbers: the best similarity p -> g is one complex factor
    p = pred[sel, 0] + 1j * pred[sel, 1]
    g = gt[sel, 0] + 1j * gt[sel, 1]
    pc, gc = p - p.mean(), g - g.mean()
    z = np.vdot(pc, gc) / max(np.vdot(pc, pc).real, 1e-12)
    return {
        "offset": float(abs(p.mean() - g.mean()) / size),
        "scale": float(np.sqrt(np.vdot(pc, pc).real / max(np.vdot(gc, gc).real, 1e-12))),
        "rotation_deg": float(np.degrees(np.angle(z))),
        "centred": float(np.median(np.abs(pc - gc)) / size),
        "aligned": float(np.median(np.abs(z * pc - gc)) / size),
    }


def decomposition(parts: list[dict[str, float] | None]) -> dict[str, float]:
    """Medians over hands of `decompose`'s figures (the rotation as its size)."""
    rows = [r for r in parts if r is not None]
    out = {k: float(np.median([r[k] for r in rows])) for k in ("offset", "scale", "centred", "aligned")}
    out["abs_rotation_deg"] = float(np.median([abs(r["rotation_deg"]) for r in rows]))
    return {k: round(v, 4) for k, v in out.items()}


def facing(gt: np.ndarray, conf: np.ndarray) -> str | None:
    """Which side of a right hand faces the camera, from its 2D labels: "palm", "back" or "side" (edge-on)."""
    if (conf[[0, 5, 17]] <= 0).any():
        return None
    a, b = gt[5] - gt[0], gt[17] - gt[0]  # wrist -> index base, wrist -> little finger base
    sine = (a[0] * b[1] - a[1] * b[0]) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-9)
    # image y points down: with the palm to the camera a right hand's index base is clockwise of its
    # little finger's, seen from the wrist
    return "side" if abs(sine) < SIDE_VIEW else "palm" if sine < 0 else "back"


def by_facing(sides: list[str | None], medians: dict[str, list[float | None]]) -> dict[str, Any]:
    """Per facing: hands, median distances as seen and mirrored, and how many read better mirrored."""
    out: dict[str, Any] = {}
    for side in ("palm", "back", "side"):
        rows = [i for i, f in enumerate(sides) if f == side and medians["mesh"][i] is not None]
        seen = [medians["mesh"][i] for i in rows]
        flip = [medians["mirrored"][i] for i in rows]
        if rows:
            out[side] = {
                "hands": len(rows),
                "mesh": round(float(np.median(seen)), 4),
                "mirrored": round(float(np.median(flip)), 4),
                "better_mirrored": int(sum(f < m for m, f in zip(seen, flip, strict=True))),
            }
    return out


def by_curl(curl: np.ndarray, medians: dict[str, list[float | None]]) -> dict[str, Any]:
    """Median per-hand distances of the hands with the straighter and the more bent half of the fingers."""
    split = float(np.nanmedian(curl))
    out: dict[str, Any] = {"split_rad": round(split, 3)}
    for half, rows in (("straighter", curl <= split), ("more_bent", curl > split)):
        out[half] = {
            kind: round(float(np.median([m for m, r in zip(v, rows, strict=True) if r and m is not None])), 4)
            for kind, v in medians.items()
        }
    return out


def summary(medians: list[float | None], fit: list[float | None]) -> dict[str, Any]:
    """Median over hands, and against the landmark fit on the hands both have."""
    from handmesh.benchmarks.real2d import compare

    mine = [m for m in medians if m is not None]
    return {
        "median_of_hands": round(float(np.median(mine)), 4) if mine else None,
        "vs_fit": compare({"per_hand_median": medians}, {"per_hand_median": fit}),
    }


def pa_mpjpe_mm(pred: np.ndarray, gt: np.ndarray) -> float | None:
    """Mean PA-MPJPE (mm) over the hands with 3D labels (None: none)."""
    from handmesh.metrics import pa_errors

    rows = np.isfinite(gt).all(axis=(1, 2))
    return round(float(pa_errors(pred[rows], gt[rows]).mean() * 1000), 2) if rows.any() else None


def draw(got: dict[str, np.ndarray], i: int) -> np.ndarray:
    """One hand as four panels: the crop, then over the labels the mesh's joints, the mesh's joints read
    from the mirrored crop, and the heatmap keypoints."""
    import cv2

    from handmesh.render.overlay import draw_skeleton

    crop = got["crop"][i]
    scale = PANEL / crop.shape[0]
    big = cv2.resize(crop, (PANEL, PANEL), interpolation=cv2.INTER_LINEAR)
    # pixel centres at integers: u' = (u + 0.5) * scale - 0.5
    up = {k: (got[k][i] + 0.5) * scale - 0.5 for k in ("gt", "mesh", "mirrored", "heatmap")}
    labelled = got["conf"][i] > 0
    panels = [big.copy()]
    for kind in ("mesh", "mirrored", "heatmap"):
        panel = big.copy()
        if labelled.all():
            draw_skeleton(panel, up["gt"], COLORS["labels"], 1)
        else:  # partly labelled: the labelled points alone
            for p in up["gt"][labelled]:
                cv2.circle(panel, (int(round(p[0])), int(round(p[1]))), 3, COLORS["labels"], -1)
        draw_skeleton(panel, up[kind], COLORS[kind], 2)
        panels.append(panel)
    return np.concatenate(panels, axis=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model file with a keypoint head")
    parser.add_argument("--data", type=parse_data, action="append", required=True, help="NAME=DIR")
    parser.add_argument("--overlays", type=Path, default=None, help="write one PNG per hand here")
    parser.add_argument("--json", default="bench/results/keypoint_gap.json")
    args = parser.parse_args()

    import torch

    from handmesh.benchmarks.real2d import score_run
    from handmesh.checkpoint import load_checkpoint
    from handmesh.errors import HandmeshError
    from handmesh.models import model_from_payload

    torch.set_num_threads(1)
    payload = load_checkpoint(args.model)
    model = model_from_payload(payload, source=f"checkpoint {args.model}")
    if model.config.head != "keypoint":
        raise HandmeshError(f"{args.model}: head {model.config.head!r} has no heatmap keypoints")
    extra = payload.get("extra", {})  # the file may be replaced later: say which it was
    result: dict[str, Any] = {
        "benchmark": "bench/keypoint_gap.py",
        "model": str(args.model),
        "model_run": extra.get("learning_curve_run"),
        "model_epoch": extra.get("epoch"),
        "sets": {},
    }
    for name, folder in args.data:
        got = predict_folder(model, folder)
        fit = score_run("landmark-fit", None, str(folder), False, "fast")["per_hand_median"]
        medians = {kind: per_hand(got[kind], got) for kind in KINDS}
        parts = {
            kind: [decompose(got[kind][i], got["gt"][i], got["conf"][i]) for i in range(len(fit))]
            for kind in KINDS
        }
        entry: dict[str, Any] = {"data": str(folder), "hands": len(got["found"])}
        entry |= {kind: summary(medians[kind], fit) for kind in KINDS}
        # an oracle, not a method: each hand on the side it reads better (how much the side costs)
        either = [
            None if m is None else min(m, f)
            for m, f in zip(medians["mesh"], medians["mirrored"], strict=True)
        ]
        entry["better_side_oracle"] = summary(either, fit)
        entry["decomposition"] = {kind: decomposition(parts[kind]) for kind in KINDS}
        sides = [facing(got["gt"][i], got["conf"][i]) for i in range(len(fit))]
        entry["by_facing"] = by_facing(sides, medians)
        if np.isfinite(got["curl"]).any():
            entry["by_curl"] = by_curl(got["curl"], medians)
        entry["articulation_deg_median"] = round(float(np.median(got["articulation_deg"])), 2)
        entry["landmark_fit_median_of_hands"] = round(float(np.median([f for f in fit if f is not None])), 4)
        entry["landmark_fit_found"] = sum(f is not None for f in fit)
        # how far the mesh's joints sit from the head's own keypoints (shares of the labelled hand's size)
        gap = per_hand(got["mesh"], {**got, "gt": got["heatmap"]})
        entry["mesh_to_heatmap_median"] = round(float(np.median([g for g in gap if g is not None])), 4)
        three_d = {k: pa_mpjpe_mm(got[f"{k}_3d"], got["gt_3d"]) for k in ("mesh", "refit", "mean_fingers")}
        if any(v is not None for v in three_d.values()):
            entry["pa_mpjpe_mm"] = three_d
        entry["per_hand"] = [
            {
                "hand": str(got["name"][i]),
                **{kind: medians[kind][i] for kind in KINDS},
                "landmark_fit": fit[i],
                "mesh_to_heatmap": gap[i],
                "facing": sides[i],
                "parts": {kind: parts[kind][i] for kind in KINDS},
                **({"curl_rad": round(float(got["curl"][i]), 3)} if np.isfinite(got["curl"][i]) else {}),
            }
            for i in range(len(fit))
        ]
        result["sets"][name] = entry
        print(name, json.dumps({k: v for k, v in entry.items() if k != "per_hand"}), flush=True)
        if args.overlays:
            import cv2

            out = args.overlays / name
            out.mkdir(parents=True, exist_ok=True)
            for i in range(len(fit)):
                cv2.imwrite(
                    str(out / f"{i:03d}_{got['name'][i]}.png"), cv2.cvtColor(draw(got, i), cv2.COLOR_RGB2BGR)
                )
    write_result(args.json, result, threads=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
