"""Landmark fitting on synthetic hands with known parameters (the open stand-in hand model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handmesh.errors import HandmeshError
from handmesh.fit import FitConfig, default_hand_model, fit_keypoints, skeleton_of
from handmesh.fit.placement import translation_to_keypoints
from handmesh.fit.skeleton import NODE_TO_FREIHAND
from handmesh.geometry_np import (
    axis_angle_to_matrix_np,
    matrix_to_axis_angle_np,
    project_points_np,
    similarity_align_np,
)
from handmesh.hand_model.prior import JOINT_LIMITS_LOWER, JOINT_LIMITS_UPPER, sample_poses

K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])


@pytest.fixture(scope="module")
def hand():
    return default_hand_model()


def make_hands(hand, n, seed, depth=0.5):
    """n random plausible right hands: params (flat-relative articulation) and the model's output."""
    rng = np.random.default_rng(seed)
    flat = sample_poses(n, rng)
    params = {
        "global_orient": rng.normal(0, 1.0, (n, 3)),
        "hand_pose": flat - hand.hands_mean.numpy(),
        "betas": rng.normal(0, 1.0, (n, 10)),
        "transl": rng.normal(0, 0.05, (n, 3)) + [0, 0, depth],
    }
    with torch.no_grad():
        out = hand(**{k: torch.tensor(v, dtype=torch.float32) for k, v in params.items()})
    return params, out.joints.numpy().astype(np.float64), out.vertices.numpy().astype(np.float64)


def mean_err_mm(a, b):
    return float(np.linalg.norm(a - b, axis=-1).mean() * 1000)


def within_limits(hand_pose, hand) -> bool:
    flat = (hand_pose + hand.hands_mean.numpy()).reshape(-1, 15, 3)
    return bool(((flat >= JOINT_LIMITS_LOWER - 1e-5) & (flat <= JOINT_LIMITS_UPPER + 1e-5)).all())


def test_skeleton_matches_the_model_and_its_jacobian(hand):
    skel = skeleton_of(hand)
    params, joints, _ = make_hands(hand, 3, seed=0)
    flat = params["hand_pose"].reshape(3, 15, 3) + hand.hands_mean.numpy().reshape(15, 3)
    posed = skel.forward(
        axis_angle_to_matrix_np(params["global_orient"]),
        axis_angle_to_matrix_np(flat),
        params["betas"],
        params["transl"],
    )
    assert mean_err_mm(posed.points[:, :16], joints[:, NODE_TO_FREIHAND][:, :16]) < 1e-3
    jac = skel.rotation_jacobian(posed, flat).reshape(3, 21, 3, 16, 3)
    eps = 1e-6
    bumped = flat.copy()
    bumped[1, 4, 2] += eps  # middle1 (MANO joint 5), flexion axis
    moved = skel.forward(
        axis_angle_to_matrix_np(params["global_orient"]),
        axis_angle_to_matrix_np(bumped),
        params["betas"],
        params["transl"],
    )
    np.testing.assert_allclose((moved.points - posed.points)[1] / eps, jac[1, :, :, 5, 2], atol=1e-6)


def test_matrix_to_axis_angle_np_inverts_axis_angle_to_matrix_np():
    rng = np.random.default_rng(0)
    aa = rng.normal(size=(200, 3))
    aa *= rng.uniform(0, np.pi, (200, 1)) / np.linalg.norm(aa, axis=-1, keepdims=True)
    aa[:3] *= 1e-9
    aa[3:6] *= (np.pi - 1e-6) / np.linalg.norm(aa[3:6], axis=-1, keepdims=True)
    np.testing.assert_allclose(
        axis_angle_to_matrix_np(matrix_to_axis_angle_np(axis_angle_to_matrix_np(aa))),
        axis_angle_to_matrix_np(aa),
        atol=1e-9,
    )


def test_fit_recovers_true_joints_and_vertices(hand):
    _, joints, vertices = make_hands(hand, 8, seed=1)
    fit = fit_keypoints(joints)
    assert fit.joints.shape == (8, 21, 3) and fit.vertices.shape == (8, 778, 3)
    assert fit.params["global_orient"].shape == (8, 3) and fit.params["hand_pose"].shape == (8, 45)
    assert fit.params["betas"].shape == (8, 10) and fit.params["transl"].shape == (8, 3)
    assert mean_err_mm(similarity_align_np(fit.joints, joints), joints) < 2.0
    assert mean_err_mm(similarity_align_np(fit.vertices, vertices), vertices) < 5.0
    # No alignment needed in fact: the fit is in the keypoints' own frame.
    assert mean_err_mm(fit.joints, joints) < 2.0
    assert mean_err_mm(fit.vertices, vertices) < 5.0
    np.testing.assert_allclose(fit.error, np.linalg.norm(fit.joints - joints, axis=-1).mean(-1), atol=1e-5)
    assert within_limits(fit.params["hand_pose"], hand)


def test_fit_params_rebuild_the_fitted_mesh(hand):
    _, joints, _ = make_hands(hand, 2, seed=2)
    fit = fit_keypoints(joints)
    with torch.no_grad():
        out = hand(**{k: torch.as_tensor(v) for k, v in fit.params.items()})
    np.testing.assert_allclose(out.vertices.numpy(), fit.vertices, atol=1e-5)
    assert fit.mano_pose().shape == (2, 48)


def test_noisy_landmarks_stay_plausible(hand):
    _, joints, _ = make_hands(hand, 8, seed=3)
    rng = np.random.default_rng(4)
    noisy = joints + rng.normal(0, 0.005, joints.shape)
    fit = fit_keypoints(noisy)
    assert within_limits(fit.params["hand_pose"], hand)
    assert mean_err_mm(fit.joints, joints) < 8.0
    # Much worse landmarks (2 cm noise) still give a hand within its limits, with finite numbers.
    wild = fit_keypoints(joints + rng.normal(0, 0.02, joints.shape))
    assert within_limits(wild.params["hand_pose"], hand)
    assert np.isfinite(wild.vertices).all()


def test_shape_fitting_can_be_turned_off(hand):
    _, joints, _ = make_hands(hand, 2, seed=5)
    fit = fit_keypoints(joints, fit_shape=False)
    assert np.abs(fit.params["betas"]).max() == 0.0
    assert mean_err_mm(fit.joints, joints) < 15.0


def test_placement_over_2d_keypoints(hand):
    _, joints, _ = make_hands(hand, 4, seed=6, depth=0.6)
    uv = project_points_np(joints, np.tile(K, (4, 1, 1)))
    # World landmarks come in a hand-centred frame: only the 2D keypoints say where the hand is.
    world = joints - joints.mean(1, keepdims=True)
    fit = fit_keypoints(world, uv, K)
    fitted_uv = project_points_np(fit.joints.astype(np.float64), np.tile(K, (4, 1, 1)))
    assert np.linalg.norm(fitted_uv - uv, axis=-1).mean() < 2.0
    np.testing.assert_allclose(fit.joints[:, :, 2].mean(1), joints[:, :, 2].mean(1), atol=0.01)


def test_translation_solver_is_exact_and_falls_back_on_degenerate_input():
    rng = np.random.default_rng(7)
    pts = rng.normal(0, 0.04, (2, 21, 3))
    true = np.array([[0.05, -0.02, 0.7], [-0.1, 0.03, 0.4]])
    uv = project_points_np(pts + true[:, None], np.tile(K, (2, 1, 1)))
    delta = translation_to_keypoints(pts, uv, np.tile(K, (2, 1, 1)))
    np.testing.assert_allclose(delta, true, atol=1e-9)
    # All keypoints on one pixel: no depth information; the fallback keeps the hand in front.
    same = np.full((1, 21, 2), 300.0)
    d = translation_to_keypoints(pts[:1], same, K[None])
    assert np.isfinite(d).all() and (pts[0, :, 2] + d[0, 2]).min() > 0


def test_warm_start_converges_in_fewer_iterations(hand):
    rng = np.random.default_rng(8)
    params, joints, _ = make_hands(hand, 6, seed=9)
    first = fit_keypoints(joints)
    moved = {k: v.copy() for k, v in params.items()}
    moved["hand_pose"] += rng.normal(0, 0.05, moved["hand_pose"].shape)
    moved["global_orient"] += rng.normal(0, 0.03, (6, 3))
    moved["transl"] += 0.01
    with torch.no_grad():
        nxt = hand(**{k: torch.tensor(v, dtype=torch.float32) for k, v in moved.items()}).joints.numpy()
    cold = fit_keypoints(nxt)
    warm = fit_keypoints(nxt, init=first.params)
    assert warm.iterations.sum() < cold.iterations.sum()
    assert mean_err_mm(warm.joints, nxt) < 2.0


def test_left_hands_are_fitted_through_the_mirror(hand):
    _, joints, vertices = make_hands(hand, 3, seed=10)
    mirror = np.array([-1.0, 1.0, 1.0])
    left_joints, left_vertices = joints * mirror, vertices * mirror
    fit = fit_keypoints(left_joints, side="left")
    assert fit.sides == ["left"] * 3
    assert mean_err_mm(fit.joints, left_joints) < 2.0
    assert mean_err_mm(fit.vertices, left_vertices) < 5.0
    # One batch may mix sides; 2D placement mirrors the keypoints about the principal point.
    sides = ["left", "right", "left"]
    mixed = np.where(np.array(sides)[:, None, None] == "left", left_joints, joints)
    uv = project_points_np(mixed, np.tile(K, (3, 1, 1)))
    fit = fit_keypoints(mixed - mixed.mean(1, keepdims=True), uv, K, side=sides)
    assert mean_err_mm(fit.joints, mixed) < 10.0
    fitted_uv = project_points_np(fit.joints.astype(np.float64), np.tile(K, (3, 1, 1)))
    assert np.linalg.norm(fitted_uv - uv, axis=-1).mean() < 2.0


def test_torch_in_torch_out_and_single_hand(hand):
    _, joints, _ = make_hands(hand, 1, seed=11)
    fit = fit_keypoints(torch.tensor(joints[0], dtype=torch.float32))
    assert isinstance(fit.joints, torch.Tensor) and fit.joints.shape == (1, 21, 3)
    assert isinstance(fit.params["hand_pose"], torch.Tensor)


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(HandmeshError, match="joints3d"):
        fit_keypoints(np.zeros((2, 20, 3)))
    with pytest.raises(HandmeshError, match="side"):
        fit_keypoints(np.zeros((2, 21, 3)), side="up")
    with pytest.raises(HandmeshError, match="both"):
        fit_keypoints(np.zeros((1, 21, 3)), joints2d=np.zeros((1, 21, 2)))


def test_weights_downweight_a_wrong_keypoint(hand):
    _, joints, _ = make_hands(hand, 1, seed=12)
    bad = joints.copy()
    bad[0, 8] += [0.03, 0.0, 0.0]  # index tip thrown 3 cm off
    w = np.ones((1, 21))
    w[0, 8] = 0.0
    fit = fit_keypoints(bad, weights=w, config=FitConfig(iters=15))
    assert mean_err_mm(np.delete(fit.joints, 8, 1), np.delete(joints, 8, 1)) < 2.0


def test_auto_side_picks_the_hand_that_fits(hand):
    _, joints, _ = make_hands(hand, 4, seed=13)
    sides = ["left", "right", "left", "right"]
    mixed = np.where(np.array(sides)[:, None, None] == "left", joints * [-1.0, 1.0, 1.0], joints)
    fit = fit_keypoints(mixed, side="auto")
    assert fit.sides == sides
    assert mean_err_mm(fit.joints, mixed) < 2.0


def test_own_side_params_pose_the_left_model(hand):
    from handmesh.fit import own_side_params
    from handmesh.hand_model import load_hand_model

    _, joints, _ = make_hands(hand, 2, seed=14)
    left_joints = joints * [-1.0, 1.0, 1.0]
    uv = project_points_np(left_joints, np.tile(K, (2, 1, 1)))
    fit = fit_keypoints(left_joints - left_joints.mean(1, keepdims=True), uv, K, side="left")
    own = own_side_params(fit.params, fit.sides)
    with torch.no_grad():
        out = load_hand_model(side="left")(
            **{k: torch.tensor(v, dtype=torch.float32) for k, v in own.items()}
        )
    np.testing.assert_allclose(out.vertices.numpy(), fit.vertices, atol=1e-5)


def test_partial_warm_start_with_nan_rows(hand):
    _, joints, _ = make_hands(hand, 2, seed=15)
    first = fit_keypoints(joints)
    init = {k: v.copy() for k, v in first.params.items()}
    for v in init.values():
        v[1] = np.nan
    fit = fit_keypoints(joints, init=init)
    assert np.isfinite(fit.vertices).all()
    assert mean_err_mm(fit.joints, joints) < 2.0


def test_numpy_skinning_matches_the_layer_and_falls_back_without_it(hand):
    params, _, vertices = make_hands(hand, 3, seed=16)
    skel = skeleton_of(hand)
    assert skel.skin is not None
    flat = params["hand_pose"].reshape(3, 15, 3) + hand.hands_mean.numpy().reshape(15, 3)
    local = axis_angle_to_matrix_np(flat)
    posed = skel.forward(
        axis_angle_to_matrix_np(params["global_orient"]), local, params["betas"], params["transl"]
    )
    rest = skel.rest_joints(params["betas"])[:, :16]
    ours = skel.skin.vertices(local, params["betas"], posed.frames, posed.points[:, :16], rest)
    np.testing.assert_allclose(ours, vertices, atol=2e-6)

    class Opaque(torch.nn.Module):
        """A hand model that only offers the contract's forward (no smplx layer inside)."""

        def __init__(self, inner):
            super().__init__()
            self.inner, self.hands_mean, self.faces = inner, inner.hands_mean, inner.faces

        def forward(self, **kw):
            return self.inner(**kw)

    opaque = Opaque(hand)
    assert skeleton_of(opaque).skin is None
    _, joints, _ = make_hands(hand, 1, seed=17)
    a, b = fit_keypoints(joints, hand_model=opaque), fit_keypoints(joints)
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-5)


def test_no_hands_give_empty_results():
    fit = fit_keypoints(np.zeros((0, 21, 3)), np.zeros((0, 21, 2)), K, side=[])
    assert fit.vertices.shape == (0, 778, 3) and fit.joints.shape == (0, 21, 3)
    assert fit.params["hand_pose"].shape == (0, 45) and fit.sides == []
