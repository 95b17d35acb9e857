"""Training losses of the regressor, each masked per sample by the batch's `has_*` flags.

3D terms are root-relative because the model predicts the hand in its own frame without translation:
joints are compared after subtracting the root joint (9, middle MCP — FreiHAND's root), vertices after
subtracting their centroid (a custom sample may carry vertices without joints). The 2D term compares the
model's crop-pixel joints with the ground truth, both divided by the crop size so that the weight does
not depend on the input resolution; keypoints are weighted by `joints2d_conf` and samples by `weight`
when the batch has them.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from handmesh.geometry import axis_angle_to_matrix
from handmesh.hand_model.joints import ROOT_JOINT
from handmesh.models.camera import translation_to_cam


def masked_mean(per_sample: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of per-sample values weighted by `mask` (0/1 flags or confidences; 0 when all are 0)."""
    mask = mask.to(per_sample.dtype).reshape(per_sample.shape)
    return (per_sample * mask).sum() / mask.sum().clamp(min=1e-6)


def _l1_points(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-sample mean L1 distance of (B,N,D) point sets."""
    return (pred - gt).abs().mean(dim=(1, 2))


def _pixel_error(
    pred: torch.Tensor, gt: torch.Tensor, conf: torch.Tensor | None, img_size: int
) -> torch.Tensor:
    """Per-sample L1 error of (B,21,2) crop pixels over the crop size, weighted by keypoint confidence."""
    err = (pred.float() - gt.float()).abs().sum(-1) / (2.0 * float(img_size))  # (B,21)
    if conf is None:
        return err.mean(1)
    # unlabelled keypoints (conf 0) do not count; a sample without any gets 0
    conf = conf.float()
    return (err * conf).sum(1) / conf.sum(1).clamp(min=1e-6)


def compute_losses(
    out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], weights: Mapping[str, float], img_size: int
) -> dict[str, torch.Tensor]:
    """Unweighted loss terms plus their weighted sum under "total" (model and dataset contracts)."""
    f32 = torch.float32
    pred_j = out["joints"].to(f32)
    pred_v = out["vertices"].to(f32)
    terms: dict[str, torch.Tensor] = {}
    # a dataset may weight samples by their label confidence
    sample_weight = batch["weight"].to(f32) if "weight" in batch else torch.ones_like(pred_j[:, 0, 0])

    gt_j = batch["joints3d"].to(f32)
    rel_pred_j = pred_j - pred_j[:, ROOT_JOINT : ROOT_JOINT + 1]
    rel_gt_j = gt_j - gt_j[:, ROOT_JOINT : ROOT_JOINT + 1]
    terms["joints3d"] = masked_mean(_l1_points(rel_pred_j, rel_gt_j), batch["has_joints3d"] * sample_weight)

    gt_v = batch["vertices"].to(f32)
    rel_pred_v = pred_v - pred_v.mean(dim=1, keepdim=True)
    rel_gt_v = gt_v - gt_v.mean(dim=1, keepdim=True)
    terms["vertices"] = masked_mean(_l1_points(rel_pred_v, rel_gt_v), batch["has_vertices"] * sample_weight)

    # The same shapes in the hand's own frame (global rotation removed from each side): root-relative
    # points rotate rigidly with the global orientation, so `rel @ R` (= R^T rel) depends only on the
    # articulation and shape. Without these terms a network that cannot yet see the hand's orientation
    # lowers the global-frame terms by shrinking and curling the hand, which the Procrustes-aligned
    # metrics punish; with them the articulation is learned from the start.
    R_gt = axis_angle_to_matrix(batch["mano_pose"].to(f32)[:, :3])
    R_pred = out["global_orient"].to(f32).reshape(-1, 3, 3)
    local_mask = batch["has_mano"] * sample_weight
    terms["joints3d_local"] = masked_mean(
        _l1_points(rel_pred_j @ R_pred, rel_gt_j @ R_gt), local_mask * batch["has_joints3d"]
    )
    terms["vertices_local"] = masked_mean(
        _l1_points(rel_pred_v @ R_pred, rel_gt_v @ R_gt), local_mask * batch["has_vertices"]
    )

    # The camera, supervised directly: the translation that puts the predicted hand's root joint on the
    # label's, as the weak-perspective camera of the crop. Through the 2D terms alone, a model that
    # cannot yet place the fingers lowers their L1 error by shrinking the hand to a point at the crop's
    # centre (s -> 0, the depth -> kilometres) and never recovers (bench/results/train_synthetic.json).
    if "K" in batch:
        transl_gt = gt_j[:, ROOT_JOINT] - pred_j[:, ROOT_JOINT].detach()
        transl_gt = torch.cat([transl_gt[:, :2], transl_gt[:, 2:].clamp(min=0.05)], dim=1)
        cam_gt = translation_to_cam(transl_gt, batch["K"].to(f32), img_size)
        cam = out["cam"].to(f32)
        # log-scale error, and the model origin's crop position (normalized crop units, -1..1)
        err_cam = (cam[:, 0].log() - cam_gt[:, 0].log()).abs() + (
            cam[:, 0:1] * cam[:, 1:] - cam_gt[:, 0:1] * cam_gt[:, 1:]
        ).abs().sum(-1) / 2
        terms["camera"] = masked_mean(err_cam, batch["has_joints3d"] * sample_weight)

    conf = batch.get("joints2d_conf")
    mask_2d = batch["has_joints2d"] * sample_weight
    terms["joints2d"] = masked_mean(_pixel_error(out["joints2d"], batch["joints2d"], conf, img_size), mask_2d)
    if "keypoints2d" in out:  # the keypoint head's heatmap keypoints: where the fingers are, first
        terms["keypoints2d"] = masked_mean(
            _pixel_error(out["keypoints2d"], batch["joints2d"], conf, img_size), mask_2d
        )

    # Rotations are compared as matrices: axis-angle has a 2*pi ambiguity and 6D is not unique.
    pose = batch["mano_pose"].to(f32).reshape(-1, 16, 3)
    gt_rot = axis_angle_to_matrix(pose)
    pred_rot = torch.cat([out["global_orient"].to(f32).reshape(-1, 1, 3, 3), out["hand_pose"].to(f32)], dim=1)
    rot_err = ((pred_rot - gt_rot) ** 2).mean(dim=(1, 2, 3))
    betas_err = ((out["betas"].to(f32) - batch["betas"].to(f32)) ** 2).mean(dim=1)
    mano_mask = batch["has_mano"] * sample_weight
    terms["mano_pose"] = masked_mean(rot_err, mano_mask)
    # kept apart from the rotations: shape is hard to see in an image and its error (~1 for N(0,1)
    # betas) would otherwise drown every other term
    terms["mano_betas"] = masked_mean(betas_err, mano_mask)

    terms["betas_prior"] = (out["betas"].to(f32) ** 2).mean()

    total = sum(weights.get(name, 0.0) * value for name, value in terms.items())
    terms["total"] = total
    return terms
