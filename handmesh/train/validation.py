"""Validation of a training run: mean losses and, on samples with 3D labels, the official metrics."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from handmesh.train.preview import Preview


@dataclass
class ValResult:
    """One validation pass: per-sample mean losses, the official metrics (empty without 3D labels), the
    number of samples and the first batch kept for the TensorBoard mesh grid."""

    losses: dict[str, float]
    metrics: dict[str, float] = field(default_factory=dict)
    num_samples: int = 0
    preview: Preview | None = None

    @property
    def score(self) -> float:
        """What `best.pt` minimizes: PA-MPJPE in mm, else the total loss."""
        return self.metrics.get("pa_mpjpe_mm", self.losses.get("total", math.inf))

    def scalars(self) -> dict[str, float]:
        """Flat numbers for logs and history: `loss_<term>`, `num_samples` and the metrics."""
        return {
            **{"loss_" + k: v for k, v in self.losses.items()},
            "num_samples": self.num_samples,
            **self.metrics,
        }


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    loss_weights: dict[str, float],
    img_size: int,
    device: torch.device,
    autocast: Callable[[], Any],
    channels_last: bool = False,
    preview_size: int = 0,
) -> ValResult:
    """Validate `model` on `loader` (its train/eval mode is restored afterwards); the first `preview_size`
    samples are kept as the preview."""
    from handmesh.losses import compute_losses
    from handmesh.metrics import score_arrays
    from handmesh.models.camera import predict_camera_space

    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    preds_j, preds_v, gts_j, gts_v = [], [], [], []
    preview = None
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        images = batch["image"]
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast():
            joints, verts, out = predict_camera_space(model, images, batch["K"], img_size)
        losses = compute_losses(out, batch, loss_weights, img_size)
        n = images.shape[0]
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + float(value) * n
        count += n
        full = (batch["has_joints3d"] > 0.5) & (batch["has_vertices"] > 0.5)
        preds_j.append(joints[full].cpu())
        preds_v.append(verts[full].cpu())
        gts_j.append(batch["joints3d"][full].float().cpu())
        gts_v.append(batch["vertices"][full].float().cpu())
        if preview is None and preview_size > 0:
            k = preview_size
            preview = Preview(images[:k].float().cpu(), batch["K"][:k].cpu(), verts[:k].float().cpu())
    model.train(was_training)
    result = ValResult({k: v / max(count, 1) for k, v in sums.items()}, num_samples=count, preview=preview)
    pj = torch.cat(preds_j) if preds_j else torch.zeros(0, 21, 3)
    if len(pj):
        scores = score_arrays(
            pj.double().numpy(),
            torch.cat(preds_v).double().numpy(),
            torch.cat(gts_j).double().numpy(),
            torch.cat(gts_v).double().numpy(),
        )
        result.metrics = {k: float(v) for k, v in scores.items()}
    return result
