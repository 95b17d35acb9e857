"""Analytic initialization and Levenberg-Marquardt refinement of skeleton parameters to 21 keypoints.

Parameters (float64 numpy): root rotation matrix (B,3,3), local articulation as flat-relative
axis-angle (B,15,3) (MANO's hands_mean + hand_pose: the space the joint limits are written in),
betas (B,10) and translation (B,3). All hands of a batch are solved together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from handmesh.fit.skeleton import (
    CHILD,
    LEVELS,
    NODE_PARENTS,
    NUM_LOCAL,
    NUM_NODES,
    Posed,
    Skeleton,
)
from handmesh.geometry_np import axis_angle_to_matrix_np, matrix_to_axis_angle_np, project_points_np
from handmesh.hand_model.joints import NUM_BETAS, NUM_MANO_JOINTS

# Wrist and the five finger bases are rigid with the wrist's rotation; the thumb base is where
# landmark detectors and MANO disagree most, so it counts half.
PALM_NODES = np.array([0, 1, 4, 7, 10, 13])
PALM_WEIGHTS = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.5])
NUM_PARAMS = 3 + 3 * NUM_LOCAL + NUM_BETAS + 3
_ROOT, _POSE, _BETAS, _TRANSL = slice(0, 3), slice(3, 48), slice(48, 58), slice(58, 61)
# Keypoints nearer than 1 mm (a bad start) project as if 1 mm away, keeping residuals finite.
MIN_DEPTH = 1e-3


@dataclass
class SolverWeights:
    """Prior weights, in metres of joint error that one unit of each prior is worth."""

    pose_prior: float = 1e-3  # per radian away from the mean hand
    limits: float = 0.1  # per radian beyond a joint limit
    shape_prior: float = 2e-3  # per unit beta


@dataclass
class SkeletonParams:
    """Solver state: root (B,3,3), local flat-relative axis-angle (B,15,3), betas (B,10), transl (B,3)."""

    root: np.ndarray
    local: np.ndarray
    betas: np.ndarray
    transl: np.ndarray

    def select(self, keep: np.ndarray, other: SkeletonParams) -> SkeletonParams:
        """Per batch element: self where keep (B,) is true, else other."""
        out = []
        for a, b in zip(self.astuple(), other.astuple(), strict=True):
            out.append(np.where(keep.reshape((-1,) + (1,) * (a.ndim - 1)), a, b))
        return SkeletonParams(*out)

    def astuple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The four arrays in constructor order."""
        return self.root, self.local, self.betas, self.transl


def kabsch(src: np.ndarray, dst: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Proper rotation (B,3,3) best mapping centred src (B,N,3) onto centred dst, weights (N,)."""
    w = (weights / weights.sum())[:, None]
    src_c = src - (w * src).sum(-2, keepdims=True)
    dst_c = dst - (w * dst).sum(-2, keepdims=True)
    cov = src_c.transpose(0, 2, 1) @ (w * dst_c)
    u, _, vt = np.linalg.svd(cov)
    v, ut = vt.transpose(0, 2, 1), u.transpose(0, 2, 1)
    d = np.sign(np.linalg.det(v @ ut))
    v[:, :, 2] *= d[:, None]
    return v @ ut


def swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation (...,3,3) turning direction a (...,3) onto direction b."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True).clip(min=1e-12)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True).clip(min=1e-12)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.arctan2(sin, (a * b).sum(-1, keepdims=True))
    return axis_angle_to_matrix_np(axis * (angle / sin.clip(min=1e-12)))


def place_root(skel: Skeleton, root: np.ndarray, betas: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Translation (B,3) matching the palm centroids once the root rotation is fixed."""
    rest = skel.rest_joints(betas)
    w = (PALM_WEIGHTS / PALM_WEIGHTS.sum())[:, None]
    c_rest = (w * rest[:, PALM_NODES]).sum(-2)
    c_tgt = (w * target[:, PALM_NODES]).sum(-2)
    j0 = rest[:, 0]
    # MANO rotates about the rest wrist: p = R (x - j0) + j0 + t.
    return c_tgt - (root @ (c_rest - j0)[..., None])[..., 0] - j0


def initialize(
    skel: Skeleton, target: np.ndarray, base_local: np.ndarray, betas: np.ndarray
) -> SkeletonParams:
    """Analytic start: root by Kabsch on the palm, then each finger joint by a swing from base_local.

    base_local (B,15,3) flat-relative axis-angle (the mean hand, or the previous frame) supplies the
    twist about each bone, which keypoints cannot see; the swing then points every bone exactly at
    its target keypoint, so the start is exact up to bone lengths.
    """
    batch = target.shape[0]
    rest = skel.rest_joints(betas)
    root = kabsch(rest[:, PALM_NODES], target[:, PALM_NODES], PALM_WEIGHTS)
    base = axis_angle_to_matrix_np(base_local)
    frames = np.empty((batch, NUM_MANO_JOINTS, 3, 3))
    frames[:, 0] = root
    local = np.empty((batch, NUM_LOCAL, 3, 3))
    for level in LEVELS:
        joints = level[level < NUM_MANO_JOINTS]
        if not len(joints):
            continue
        child = CHILD[joints]
        parent_frames = frames[:, NODE_PARENTS[joints]]
        m = base[:, joints - 1]
        rest_dir = (m @ (rest[:, child] - rest[:, joints])[..., None])[..., 0]
        tgt_vec = (target[:, child] - target[:, joints])[..., None]
        tgt_dir = (parent_frames.transpose(0, 1, 3, 2) @ tgt_vec)[..., 0]
        rot = swing(rest_dir, tgt_dir) @ m
        local[:, joints - 1] = rot
        frames[:, joints] = parent_frames @ rot
    local_aa = matrix_to_axis_angle_np(local)
    return SkeletonParams(root, local_aa, betas, place_root(skel, root, betas, target))


def _solve_spd(hess: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Solve hess x = grad per hand (hess symmetric positive definite thanks to damping and priors).

    One LAPACK Cholesky solve per hand: at this size it runs single-threaded, where a batched LU
    solve was several times slower on a busy 2-core machine (thread hand-off).
    """
    out = np.empty_like(grad)
    for i in range(hess.shape[0]):
        _, x, info = lapack.dposv(hess[i], grad[i])
        out[i] = x if info == 0 else np.linalg.lstsq(hess[i], grad[i], rcond=None)[0]
    return out


class PointObjective:
    """Skeleton points (plus a fixed offset) onto 3D targets: residuals w_k (p_k + offset_k - t_k).

    target (B,21,3) and weights (B,21) in extended node order; offset (B,21,3) carries what the full
    mesh model adds to the skeleton (fingertip skinning), measured once and held fixed.
    """

    def __init__(self, target: np.ndarray, weights: np.ndarray, offset: np.ndarray | None = None) -> None:
        self.target = target if offset is None else target - offset
        self.w = weights[..., None]

    def residuals(self, points: np.ndarray) -> np.ndarray:
        """(B, M) weighted residuals."""
        return ((points - self.target) * self.w).reshape(points.shape[0], -1)

    def jacobian(self, points: np.ndarray, jac_points: np.ndarray) -> np.ndarray:
        """(B, M, P) from d points / d params (B, 63, P)."""
        return jac_points * np.repeat(self.w[..., 0], 3, axis=-1)[..., None]


class CameraObjective:
    """Hand-centred 3D landmarks (their frame's origin unknown) and 2D keypoints through K, together.

    The 3D term compares shapes about the weighted centroids, so the translation is left to the 2D
    term: w_k ((p_k - c(p)) - (l_k - c(l))). The 2D term is w_k (pi(p_k) - uv_k) scaled by metres per
    pixel at the hand's starting depth, times sqrt(reprojection_weight), so both are in metres.
    """

    def __init__(self, landmarks, weights, keypoints2d, K, start_points, reprojection_weight, offset=None):
        self.offset = np.zeros_like(landmarks) if offset is None else offset
        self.w = weights[..., None]
        self.omega = (weights / weights.sum(-1, keepdims=True).clip(min=1e-12))[..., None]
        self.shape = landmarks - (self.omega * landmarks).sum(-2, keepdims=True)
        self.uv = keypoints2d
        self.K = K
        depth = (start_points[..., 2] + self.offset[..., 2]).mean(-1)
        focal = 0.5 * (K[:, 0, 0] + K[:, 1, 1])
        self.scale = (np.sqrt(reprojection_weight) * depth / focal)[:, None, None]

    def residuals(self, points: np.ndarray) -> np.ndarray:
        """(B, 105): 63 shape residuals then 42 scaled reprojection residuals."""
        p = points + self.offset
        centred = p - (self.omega * p).sum(-2, keepdims=True)
        r3 = (centred - self.shape) * self.w
        uv = project_points_np(p, self.K, min_depth=MIN_DEPTH)
        r2 = (uv - self.uv) * self.w * self.scale
        batch = points.shape[0]
        return np.concatenate([r3.reshape(batch, -1), r2.reshape(batch, -1)], -1)

    def jacobian(self, points: np.ndarray, jac_points: np.ndarray) -> np.ndarray:
        """(B, 105, P) from d points / d params (B, 63, P)."""
        batch, _, n_par = jac_points.shape
        jp = jac_points.reshape(batch, NUM_NODES, 3, n_par)
        j3 = (jp - (self.omega[..., None] * jp).sum(1, keepdims=True)) * self.w[..., None]
        p = points + self.offset
        uv = project_points_np(p, self.K, min_depth=MIN_DEPTH)
        z = (p @ self.K[:, 2, :, None]).clip(min=MIN_DEPTH)  # the depth project_points_np divided by
        # d(u, v)/dp = (K[:2] - (u, v) K[2]) / z
        dproj = (self.K[:, None, :2, :] - uv[..., None] * self.K[:, None, 2:3, :]) / z[..., None]
        j2 = (dproj @ jp) * (self.w * self.scale)[..., None]
        return np.concatenate([j3.reshape(batch, -1, n_par), j2.reshape(batch, -1, n_par)], 1)


@dataclass
class _State:
    params: SkeletonParams
    points: np.ndarray
    frames: np.ndarray
    shape_jac: np.ndarray
    res: np.ndarray
    dev: np.ndarray
    viol: np.ndarray
    cost: np.ndarray


def _evaluate(skel, p: SkeletonParams, objective, lower, upper, sw: SolverWeights) -> _State:
    posed = skel.forward(p.root, axis_angle_to_matrix_np(p.local), p.betas, p.transl)
    res = objective.residuals(posed.points)
    dev = p.local - skel.hands_mean
    viol = np.maximum(p.local - upper, 0.0) - np.maximum(lower - p.local, 0.0)
    cost = (
        (res**2).sum(-1)
        + sw.pose_prior**2 * (dev**2).sum((-1, -2))
        + sw.limits**2 * (viol**2).sum((-1, -2))
        + sw.shape_prior**2 * (p.betas**2).sum(-1)
    )
    return _State(p, posed.points, posed.frames, posed.shape_jac, res, dev, viol, cost)


def _select(keep: np.ndarray, a: _State, b: _State) -> _State:
    out = {"params": a.params.select(keep, b.params)}
    for name in ("points", "frames", "shape_jac", "res", "dev", "viol", "cost"):
        x, y = getattr(a, name), getattr(b, name)
        out[name] = np.where(keep.reshape((-1,) + (1,) * (x.ndim - 1)), x, y)
    return _State(**out)


def refine(
    skel: Skeleton,
    start: SkeletonParams,
    objective: PointObjective | CameraObjective,
    lower: np.ndarray,
    upper: np.ndarray,
    sw: SolverWeights,
    iters: int,
    fit_shape: bool = True,
    tol: float = 1e-4,
) -> tuple[SkeletonParams, np.ndarray, np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on the objective's residuals + pose prior + joint-limit penalty (+ shape prior).

    Returns the parameters, the iterations each hand ran before it converged (B,), its final
    cost (B,) and its skeleton points (B,21,3). A hand converges when an accepted step lowers its cost by less than `tol` (relative).
    """
    batch = start.root.shape[0]
    state = _evaluate(skel, start, objective, lower, upper, sw)
    mu = np.full(batch, 1e-3)
    done = np.zeros(batch, dtype=bool)
    used = np.zeros(batch, dtype=np.int64)
    prior_diag = np.zeros(NUM_PARAMS)
    prior_diag[_POSE] = sw.pose_prior**2
    prior_diag[_BETAS] = sw.shape_prior**2
    transl_block = np.tile(np.eye(3), (NUM_NODES, 1))
    for _ in range(iters):
        if done.all():
            break
        p = state.params
        jac = np.empty((batch, 3 * NUM_NODES, NUM_PARAMS))
        jac[..., :48] = skel.rotation_jacobian(Posed(state.points, state.frames, state.shape_jac), p.local)
        jac[..., _BETAS] = state.shape_jac.reshape(batch, 3 * NUM_NODES, NUM_BETAS)
        jac[..., _TRANSL] = transl_block
        jac = objective.jacobian(state.points, jac)
        jac_t = jac.transpose(0, 2, 1)
        hess = jac_t @ jac
        grad = (jac_t @ state.res[..., None])[..., 0]
        diag = hess.reshape(batch, -1)[:, :: NUM_PARAMS + 1]  # a view: edits land in hess
        diag += prior_diag
        diag[:, _POSE] += sw.limits**2 * (state.viol != 0).reshape(batch, -1)
        grad[:, _POSE] += (sw.pose_prior**2 * state.dev + sw.limits**2 * state.viol).reshape(batch, -1)
        grad[:, _BETAS] += sw.shape_prior**2 * p.betas
        if not fit_shape:
            hess[:, _BETAS, :] = 0.0
            hess[:, :, _BETAS] = 0.0
            diag[:, _BETAS] = 1.0
            grad[:, _BETAS] = 0.0
        diag *= 1 + mu[:, None]
        diag += 1e-12
        step = -_solve_spd(hess, grad)
        cand = SkeletonParams(
            p.root @ axis_angle_to_matrix_np(step[:, _ROOT]),
            p.local + step[:, _POSE].reshape(batch, NUM_LOCAL, 3),
            p.betas + step[:, _BETAS],
            p.transl + step[:, _TRANSL],
        )
        trial = _evaluate(skel, cand, objective, lower, upper, sw)
        accept = (trial.cost < state.cost) & ~done
        newly_done = accept & ((state.cost - trial.cost) < tol * state.cost)
        used += ~done
        state = trial if accept.all() else _select(accept, trial, state)
        mu = np.where(accept, np.maximum(mu * 0.3, 1e-7), mu * 10)
        done |= newly_done | (mu > 1e4)
    return state.params, used, state.cost, state.points
