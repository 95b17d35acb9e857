"""fit_keypoints: hand-model parameters, mesh and joints from 21 keypoints (3D, optionally 2D + K).

Left hands are mirrored (x -> -x in 3D, u -> 2 cx - u in 2D), fitted with the right-hand model and
their vertices and joints mirrored back, as everywhere else in handmesh (the right hand is canonical).
So `params` of a left hand are right-hand parameters of its mirror image.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from functools import lru_cache, partial

import numpy as np
import torch
from torch import Tensor

from handmesh.errors import HandmeshError
from handmesh.fit.placement import translation_to_keypoints
from handmesh.fit.skeleton import (
    FREIHAND_TO_NODE,
    NODE_TO_FREIHAND,
    NUM_LOCAL,
    Skeleton,
)
from handmesh.fit.solver import (
    CameraObjective,
    PointObjective,
    SkeletonParams,
    SolverWeights,
    initialize,
    refine,
)
from handmesh.geometry_np import axis_angle_to_matrix_np, matrix_to_axis_angle_np
from handmesh.hand_model.joints import NUM_BETAS, NUM_JOINTS, NUM_MANO_JOINTS
from handmesh.mirror import mirror_params


@dataclass
class FitConfig:
    """Settings of the landmark fitter."""

    iters: int = 10  # Levenberg-Marquardt iterations at most (it stops earlier once converged)
    tol: float = 1e-2  # relative cost decrease below which a hand counts as converged
    pose_prior: float = 1e-3  # metres of joint error one radian away from the mean hand is worth
    limits: float = 0.1  # metres of joint error one radian beyond a joint limit is worth
    shape_prior: float = 2e-3  # metres of joint error one unit of beta is worth
    fit_shape: bool = True
    tip_corrections: int = 1  # rounds that re-aim the skeleton's tips where the skinned mesh puts them
    correction_iters: int = 3
    correction_threshold: float = 2e-4  # metres; below it the skeleton's joints count as the mesh's
    # With 2D keypoints: the weight of their pixel error (as metres at the hand's depth) against the
    # 3D landmarks' error about their centroid; 0 fits 3D only, then places the hand over the 2D points.
    reprojection_weight: float = 1.0


@dataclass
class FitResult:
    """Fitted hands: params dict (global_orient (B,3), hand_pose (B,45) relative to the mean hand,
    betas (B,10), transl (B,3)), vertices (B,778,3), joints (B,21,3) FreiHAND order, metres;
    error (B,) mean 3D distance of the fitted joints to the 3D keypoints, metres (about their centroids
    when 2D keypoints placed the hand); iterations (B,); reprojection (B,) mean distance in pixels of
    the projected joints to the 2D keypoints (NaN without them).
    """

    params: dict
    vertices: Tensor | np.ndarray
    joints: Tensor | np.ndarray
    error: Tensor | np.ndarray
    iterations: Tensor | np.ndarray
    sides: list[str] = field(default_factory=list)
    reprojection: Tensor | np.ndarray | None = None

    def mano_pose(self) -> Tensor | np.ndarray:
        """(B,48) axis-angle: global orientation then articulation, as FreiHAND stores it."""
        go, hp = self.params["global_orient"], self.params["hand_pose"]
        return np.concatenate([go, hp], -1) if isinstance(go, np.ndarray) else torch.cat([go, hp], -1)


@lru_cache(maxsize=1)
def default_hand_model():
    """The right-hand model load_hand_model() finds (MANO when installed, else the stand-in), cached."""
    from handmesh.hand_model import load_hand_model

    return load_hand_model(side="right").eval()


SIDES = ("left", "right", "auto")
_SKELETONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def skeleton_of(hand) -> Skeleton:
    """The (cached) kinematic skeleton of a hand model."""
    skel = _SKELETONS.get(hand)
    if skel is None:
        skel = Skeleton.from_hand_model(hand)
        _SKELETONS[hand] = skel
    return skel


@lru_cache(maxsize=1)
def _limits() -> tuple[np.ndarray, np.ndarray]:
    from handmesh.hand_model.prior import JOINT_LIMITS_LOWER, JOINT_LIMITS_UPPER

    def arr(x):
        return np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=np.float64).reshape(
            NUM_LOCAL, 3
        )

    return arr(JOINT_LIMITS_LOWER), arr(JOINT_LIMITS_UPPER)


def _as_array(x, name: str, shape_tail: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=np.float64)
    if a.ndim == len(shape_tail):
        a = a[None]
    if a.ndim != len(shape_tail) + 1 or tuple(a.shape[1:]) != shape_tail:
        raise HandmeshError(f"{name}: expected (B,{','.join(map(str, shape_tail))}), got {tuple(a.shape)}")
    return a


def _sides(side, batch: int) -> list[str]:
    sides = [side] * batch if isinstance(side, str) else list(side)
    if len(sides) != batch or any(s not in SIDES for s in sides):
        raise HandmeshError(f"side must be 'left', 'right' or 'auto', or one of them per hand, got {side!r}")
    return sides


def _start_from_init(skel: Skeleton, init: dict, target: np.ndarray) -> SkeletonParams:
    """Warm start: the analytic start, with the previous frame's shape and twists about each bone.

    The swings point every bone at the new keypoints exactly; what keypoints cannot show (twist,
    shape) carries over from the previous fit. Hands whose init rows hold NaN start from the mean hand.
    """
    batch = target.shape[0]
    hp = np.broadcast_to(_as_array(init["hand_pose"], "init hand_pose", (45,)), (batch, 45))
    betas = np.broadcast_to(_as_array(init["betas"], "init betas", (NUM_BETAS,)), (batch, NUM_BETAS))
    known = (np.isfinite(hp).all(-1) & np.isfinite(betas).all(-1))[:, None]
    base = np.where(known, hp, 0.0).reshape(batch, NUM_LOCAL, 3) + skel.hands_mean
    return initialize(skel, target, base, np.where(known, betas, 0.0))


def _cold_start(skel: Skeleton, target: np.ndarray) -> SkeletonParams:
    batch = target.shape[0]
    base = np.broadcast_to(skel.hands_mean, (batch, NUM_LOCAL, 3))
    return initialize(skel, target, base, np.zeros((batch, NUM_BETAS)))


def _run_model(hand, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ref = hand.hands_mean
    with torch.no_grad():
        out = hand(**{k: torch.as_tensor(v).to(ref) for k, v in params.items()})
    return out.vertices.double().cpu().numpy(), out.joints.double().cpu().numpy()


def fit_keypoints(
    joints3d,
    joints2d=None,
    K=None,
    side: str | list[str] = "right",
    fit_shape: bool | None = None,
    init: dict | None = None,
    iters: int | None = None,
    weights=None,
    hand_model=None,
    config: FitConfig | None = None,
) -> FitResult:
    """Fit the hand model to keypoints (B,21,3) FreiHAND order, metres; optionally place it over (B,21,2) px with K.

    Without joints2d/K the result is in the frame of joints3d; with them, in the camera frame of K.
    `side` is "left", "right" or "auto" (fit both ways, keep the closer fit), one value or one per
    hand. `init` (a previous FitResult.params; NaN rows = no previous frame) warm-starts video;
    `weights` (B,21) down-weights unsure keypoints. Outputs are torch when joints3d is a tensor, else numpy.
    """
    cfg = config or FitConfig()
    as_torch = isinstance(joints3d, Tensor)
    target = _as_array(joints3d, "joints3d", (NUM_JOINTS, 3))
    batch = target.shape[0]
    sides = _sides(side, batch)
    w = np.ones((batch, NUM_JOINTS)) if weights is None else _as_array(weights, "weights", (NUM_JOINTS,))
    w = np.broadcast_to(w, (batch, NUM_JOINTS))
    if (joints2d is None) != (K is None):
        raise HandmeshError("placing the hand over 2D keypoints needs both joints2d and K")
    kp = cam = None
    if joints2d is not None:
        kp = np.broadcast_to(_as_array(joints2d, "joints2d", (NUM_JOINTS, 2)), (batch, NUM_JOINTS, 2))
        cam = np.broadcast_to(_as_array(K, "K", (3, 3)), (batch, 3, 3))
    hand = hand_model if hand_model is not None else default_hand_model()
    if batch == 0:
        return _empty(hand, as_torch)
    fit_shape = cfg.fit_shape if fit_shape is None else fit_shape
    run = partial(_fit_sided, hand=hand, cfg=cfg, fit_shape=fit_shape, iters=iters)

    auto = np.array([s == "auto" for s in sides])
    first = ["right" if s == "auto" else s for s in sides]
    result = run(target, kp, cam, first, w, init)
    if auto.any():
        idx = np.flatnonzero(auto)
        sub_init = None if init is None else {k: _rows(v, idx, batch) for k, v in init.items()}
        other = run(
            target[idx],
            None if kp is None else kp[idx],
            None if cam is None else cam[idx],
            ["left"] * len(idx),
            w[idx],
            sub_init,
        )
        better = other.error < result.error[idx]
        result = _replace_rows(result, idx[better], other, np.flatnonzero(better))
    return _to_torch(result) if as_torch else result


def _empty(hand, as_torch: bool) -> FitResult:
    """The result for zero hands (a frame without hands), with the usual shapes."""
    n_verts = len(hand.v_template) if hasattr(hand, "v_template") else 778
    params = {
        k: np.zeros((0, n), np.float32)
        for k, n in (("global_orient", 3), ("hand_pose", 45), ("betas", NUM_BETAS), ("transl", 3))
    }
    z = np.zeros(0, np.float32)
    result = FitResult(
        params,
        np.zeros((0, n_verts, 3), np.float32),
        np.zeros((0, NUM_JOINTS, 3), np.float32),
        z,
        np.zeros(0, np.int64),
        [],
        z.copy(),
    )
    return _to_torch(result) if as_torch else result


def _rows(value, idx: np.ndarray, batch: int) -> np.ndarray:
    arr = np.asarray(value.detach().cpu() if isinstance(value, Tensor) else value)
    return arr[idx] if arr.ndim > 1 and arr.shape[0] == batch else arr


def _replace_rows(result: FitResult, dst: np.ndarray, other: FitResult, src: np.ndarray) -> FitResult:
    """result with its rows dst taken from other's rows src."""
    for k in result.params:
        result.params[k][dst] = other.params[k][src]
    for name in ("vertices", "joints", "error", "iterations", "reprojection"):
        getattr(result, name)[dst] = getattr(other, name)[src]
    for d, s in zip(dst, src, strict=True):
        result.sides[d] = other.sides[s]
    return result


def _fit_sided(target, kp, cam, sides, w, init, hand, cfg: FitConfig, fit_shape: bool, iters) -> FitResult:
    """The fit with every hand's side known (numpy in, numpy out)."""
    flip = np.where(np.array(sides) == "left", -1.0, 1.0)
    target = target.copy()
    target[..., 0] *= flip[:, None]
    skel = skeleton_of(hand)
    lower, upper = _limits()
    node_target = target[:, NODE_TO_FREIHAND]
    node_w = w[:, NODE_TO_FREIHAND]
    start = _cold_start(skel, node_target) if init is None else _start_from_init(skel, init, node_target)
    solve = partial(
        refine,
        skel,
        lower=lower,
        upper=upper,
        sw=SolverWeights(cfg.pose_prior, cfg.limits, cfg.shape_prior),
        fit_shape=fit_shape,
        tol=cfg.tol,
    )
    camera = kp is not None and cfg.reprojection_weight > 0
    if kp is not None:
        kp = kp.copy()
        # Mirroring x in the camera maps pixel u to 2 cx - u (zero skew).
        kp[..., 0] = np.where(flip[:, None] < 0, 2 * cam[:, 0, 2][:, None] - kp[..., 0], kp[..., 0])
        node_kp = kp[:, NODE_TO_FREIHAND]
    if camera:
        # Start in the camera: the closed-form placement of the start over the 2D keypoints. From
        # there the 3D landmarks fix the hand's shape and size, the 2D keypoints where it sits.
        points = _skeleton_points(skel, start)
        delta = translation_to_keypoints(points, node_kp, cam, node_w)
        start = SkeletonParams(start.root, start.local, start.betas, start.transl + delta)
        depth_points = points + delta[:, None]

    def objective(offset: np.ndarray | None):
        if not camera:
            return PointObjective(node_target, node_w, offset)
        return CameraObjective(
            node_target, node_w, node_kp, cam, depth_points, cfg.reprojection_weight, offset
        )

    p, used, _, points = solve(start, objective(None), iters=cfg.iters if iters is None else iters)
    params, vertices, joints = _finish(hand, skel, p, lower, upper)
    for _ in range(cfg.tip_corrections):
        # The skeleton carries fingertips rigidly; the mesh skins them (and adds pose correctives).
        # Aim the skeleton where the mesh's joints miss by, then refine briefly from where it stands.
        # (Clamping to the limits in _finish also shows up here, and is refined away likewise.)
        offset = joints[:, NODE_TO_FREIHAND] - points
        if np.abs(offset).max() < cfg.correction_threshold:
            break
        p, more, _, points = solve(p, objective(offset), iters=cfg.correction_iters)
        used = used + more
        params, vertices, joints = _finish(hand, skel, p, lower, upper)

    reprojection = np.full(len(sides), np.nan)
    if kp is None:
        error = np.linalg.norm(joints - target, axis=-1).mean(-1)
    else:
        if not camera:
            delta = translation_to_keypoints(joints, kp, cam, w)
            params["transl"] = params["transl"] + delta
            vertices = vertices + delta[:, None]
            joints = joints + delta[:, None]
        error = _centred_error(joints, target, w)
        q = joints @ cam.transpose(0, 2, 1)
        reprojection = np.linalg.norm(q[..., :2] / q[..., 2:].clip(min=1e-6) - kp, axis=-1).mean(-1)

    vertices[..., 0] *= flip[:, None]
    joints[..., 0] *= flip[:, None]
    return FitResult(
        {k: v.astype(np.float32) for k, v in params.items()},
        vertices.astype(np.float32),
        joints.astype(np.float32),
        error.astype(np.float32),
        used,
        list(sides),
        reprojection.astype(np.float32),
    )


def _skeleton_points(skel: Skeleton, p: SkeletonParams) -> np.ndarray:
    return skel.forward(p.root, axis_angle_to_matrix_np(p.local), p.betas, p.transl).points


def _centred_error(joints: np.ndarray, target: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mean joint distance after moving both weighted centroids to the origin (B,)."""
    omega = (w / w.sum(-1, keepdims=True))[..., None]
    a = joints - (omega * joints).sum(-2, keepdims=True)
    b = target - (omega * target).sum(-2, keepdims=True)
    return np.linalg.norm(a - b, axis=-1).mean(-1)


def own_side_params(params: dict, sides: list[str]) -> dict[str, np.ndarray]:
    """FitResult.params in each hand's own model convention: left hands become left-model parameters.

    A left hand was fitted as the right-hand mirror image; MANO's left convention mirrors axis-angle
    as (x, -y, -z) and the translation as -x. Exact for a left model that mirrors the right one
    (the stand-in, or MANO when only the right file is installed); approximate for MANO_LEFT.
    """
    left = np.array([s == "left" for s in sides])[:, None]
    out = {
        k: np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v, dtype=np.float64)
        for k, v in params.items()
    }
    mirrored = mirror_params(out)
    return {k: np.where(left, mirrored[k], v) for k, v in out.items()}


def _finish(hand, skel: Skeleton, p: SkeletonParams, lower: np.ndarray, upper: np.ndarray):
    """Clamp to the joint limits, convert to hand-model parameters, and pose the mesh."""
    batch = p.root.shape[0]
    local = np.clip(p.local, lower, upper)
    params = {
        "global_orient": matrix_to_axis_angle_np(p.root),
        "hand_pose": (local - skel.hands_mean).reshape(batch, 3 * NUM_LOCAL),
        "betas": p.betas,
        "transl": p.transl,
    }
    if skel.skin is None:
        vertices, joints = _run_model(hand, params)
        return params, vertices, joints
    local_rot = axis_angle_to_matrix_np(local)
    posed = skel.forward(p.root, local_rot, p.betas, p.transl)
    rest = skel.rest_joints(p.betas)[:, :NUM_MANO_JOINTS]
    vertices = skel.skin.vertices(local_rot, p.betas, posed.frames, posed.points[:, :NUM_MANO_JOINTS], rest)
    nodes = np.concatenate([posed.points[:, :NUM_MANO_JOINTS], vertices[:, skel.skin.tip_ids]], 1)
    return params, vertices, nodes[:, FREIHAND_TO_NODE]


def _to_torch(result: FitResult) -> FitResult:
    return FitResult(
        {k: torch.from_numpy(v) for k, v in result.params.items()},
        torch.from_numpy(result.vertices),
        torch.from_numpy(result.joints),
        torch.from_numpy(result.error),
        torch.from_numpy(result.iterations),
        result.sides,
        torch.from_numpy(result.reprojection),
    )
