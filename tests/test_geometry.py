"""Geometry: rotation conversions, projection, crop intrinsics and similarity alignment vs scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from handmesh import geometry as g


def _random_aa(rng: np.random.Generator, n: int) -> np.ndarray:
    """Axis-angles covering tiny, ordinary and near-pi angles."""
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate(
        [
            [0.0, 1e-12, 1e-8, 1e-5, 1e-3, 0.0316, np.pi - 1e-3, np.pi - 1e-6, np.pi],
            rng.uniform(0, np.pi, n - 9),
        ]
    )
    return axes * angles[:, None]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_axis_angle_to_matrix_matches_scipy(dtype):
    aa = _random_aa(np.random.default_rng(0), 200)
    R = g.axis_angle_to_matrix(torch.tensor(aa, dtype=dtype))
    assert R.dtype == dtype and R.shape == (200, 3, 3)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    np.testing.assert_allclose(R.double().numpy(), Rotation.from_rotvec(aa).as_matrix(), atol=tol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matrix_to_axis_angle_round_trip(dtype):
    aa = _random_aa(np.random.default_rng(1), 300)
    R = Rotation.from_rotvec(aa).as_matrix()
    back = g.matrix_to_axis_angle(torch.tensor(R, dtype=dtype)).double().numpy()
    # Compare as rotations (near pi, axis-angle is only defined up to the sign of the axis).
    tol = 1e-10 if dtype == torch.float64 else 2e-6
    np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(), R, atol=tol)
    ang = np.linalg.norm(back, axis=1)
    assert np.all(ang <= np.pi + 1e-6)
    # Away from pi the vector itself is unique.
    ok = np.linalg.norm(aa, axis=1) < np.pi - 1e-2
    np.testing.assert_allclose(back[ok], aa[ok], atol=1e-9 if dtype == torch.float64 else 1e-5)


def test_matrix_to_axis_angle_matches_scipy_near_pi():
    rng = np.random.default_rng(2)
    axes = rng.normal(size=(50, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    aa = axes * (np.pi - 1e-7)
    ours = g.matrix_to_axis_angle_np(Rotation.from_rotvec(aa).as_matrix())
    ref = Rotation.from_matrix(Rotation.from_rotvec(aa).as_matrix()).as_rotvec()
    np.testing.assert_allclose(np.abs(ours), np.abs(ref), atol=1e-7)


def test_any_leading_dims_and_numpy_twins():
    aa = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    R = g.axis_angle_to_matrix(aa)
    assert R.shape == (2, 5, 4, 3, 3)
    assert g.matrix_to_axis_angle(R).shape == (2, 5, 4, 3)
    assert g.rot6d_to_matrix(g.matrix_to_rot6d(R)).shape == R.shape
    np.testing.assert_allclose(g.axis_angle_to_matrix_np(aa.numpy()), R.numpy(), atol=1e-15)
    np.testing.assert_allclose(g.matrix_to_axis_angle_np(R.numpy()), g.matrix_to_axis_angle(R).numpy())


def test_rot6d_round_trip_and_gram_schmidt():
    R = torch.tensor(Rotation.random(100, random_state=3).as_matrix())
    six = g.matrix_to_rot6d(R)
    assert six.shape == (100, 6)
    np.testing.assert_allclose(six[:, :3].numpy(), R[:, :, 0].numpy())
    np.testing.assert_allclose(six[:, 3:].numpy(), R[:, :, 1].numpy())
    np.testing.assert_allclose(g.rot6d_to_matrix(six).numpy(), R.numpy(), atol=1e-12)
    # Arbitrary 6D vectors give proper rotations whose first column is the normalized first vector.
    x = torch.randn(100, 6, dtype=torch.float64) * 3
    M = g.rot6d_to_matrix(x)
    eye = torch.eye(3, dtype=torch.float64).expand(100, 3, 3)
    np.testing.assert_allclose((M.transpose(1, 2) @ M).numpy(), eye.numpy(), atol=1e-12)
    np.testing.assert_allclose(torch.linalg.det(M).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(M[:, :, 0].numpy(), (x[:, :3] / x[:, :3].norm(dim=1, keepdim=True)).numpy())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradients_finite_at_zero_rotation(dtype):
    aa = torch.zeros(4, 3, dtype=dtype, requires_grad=True)
    R = g.axis_angle_to_matrix(aa)
    (R * torch.randn(4, 3, 3, dtype=dtype)).sum().backward()
    assert torch.isfinite(aa.grad).all()
    # d R / d aa at 0 is the skew generator: R ~ I + [aa]x.
    aa2 = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    jac = torch.autograd.functional.jacobian(g.axis_angle_to_matrix, aa2)
    for i in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[i] = 1
        np.testing.assert_allclose(jac[..., i].numpy(), g._skew(e).numpy(), atol=1e-12)

    six = g.matrix_to_rot6d(torch.eye(3, dtype=dtype).expand(4, 3, 3)).clone().requires_grad_(True)
    (g.rot6d_to_matrix(six) * torch.randn(4, 3, 3, dtype=dtype)).sum().backward()
    assert torch.isfinite(six.grad).all()

    R0 = torch.eye(3, dtype=dtype).expand(4, 3, 3).clone().requires_grad_(True)
    g.matrix_to_axis_angle(R0).sum().backward()
    assert torch.isfinite(R0.grad).all()


def test_axis_angle_gradient_matches_finite_differences():
    aa = torch.tensor([[1e-4, -2e-4, 3e-4], [0.3, -1.2, 0.5], [0.0, 0.0, 3.1]], dtype=torch.float64)
    assert torch.autograd.gradcheck(g.axis_angle_to_matrix, (aa.requires_grad_(True),))
    R = torch.tensor(Rotation.from_rotvec([[0.3, -1.2, 0.5], [1e-4, 0, 0]]).as_matrix())
    assert torch.autograd.gradcheck(g.matrix_to_axis_angle, (R.requires_grad_(True),))


def test_project_points():
    K = torch.tensor([[500.0, 0, 112], [0, 480.0, 100], [0, 0, 1]], dtype=torch.float64)
    pts = torch.tensor([[[0.1, -0.05, 0.5], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    uv = g.project_points(pts, K[None])
    expected = [[500 * 0.2 + 112, 480 * -0.1 + 100], [112, 100]]
    np.testing.assert_allclose(uv[0].numpy(), expected)
    np.testing.assert_allclose(g.project_points_np(pts.numpy(), K.numpy()[None]), uv.numpy())
    assert torch.isfinite(g.project_points(torch.zeros(1, 1, 3), K[None].float())).all()


def test_crop_intrinsics_maps_projections_like_the_crop():
    rng = np.random.default_rng(4)
    K = torch.tensor([[600.0, 0.5, 320], [0, 610.0, 240], [0, 0, 1]], dtype=torch.float64)
    box = torch.tensor([200.0, 150.0, 360.0, 310.0], dtype=torch.float64)
    Kc = g.crop_intrinsics(K, box, 224)
    pts = torch.tensor(rng.uniform([-0.1, -0.1, 0.4], [0.1, 0.1, 0.8], size=(1, 30, 3)))
    uv = g.project_points(pts, K[None])[0]
    uv_crop = g.project_points(pts, Kc[None])[0]
    s = 224 / 160
    np.testing.assert_allclose(uv_crop.numpy(), ((uv - box[:2]) * s).numpy(), atol=1e-9)
    np.testing.assert_allclose(g.crop_intrinsics_np(K.numpy(), box.numpy(), 224), Kc.numpy())
    # Batched: (B,3,3) with (B,4).
    assert g.crop_intrinsics(K.expand(5, 3, 3), box.expand(5, 4), 224).shape == (5, 3, 3)


def _official_align_reference(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Straightforward per-sample alignment with scipy, as the FreiHAND evaluation defines it."""
    g0, p0 = gt - gt.mean(0), pred - pred.mean(0)
    sg, sp = np.linalg.norm(g0) + 1e-8, np.linalg.norm(p0) + 1e-8
    R, s = orthogonal_procrustes(g0 / sg, p0 / sp)
    return (p0 / sp) @ R.T * s * sg + gt.mean(0)


def test_similarity_align_matches_scipy_procrustes():
    rng = np.random.default_rng(5)
    gt = rng.normal(size=(20, 50, 3))
    pred = rng.normal(size=(20, 50, 3))
    ours = g.similarity_align_np(pred, gt)
    ref = np.stack([_official_align_reference(p, q) for p, q in zip(pred, gt, strict=True)])
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    ours_t = g.similarity_align(torch.tensor(pred), torch.tensor(gt)).numpy()
    np.testing.assert_allclose(ours_t, ref, rtol=1e-10, atol=1e-12)


def test_similarity_align_recovers_similarity_and_reflection():
    rng = np.random.default_rng(6)
    gt = rng.normal(size=(3, 40, 3)) * 0.05 + [0, 0, 0.7]
    R = Rotation.random(3, random_state=7).as_matrix()
    pred = 2.5 * gt @ R.transpose(0, 2, 1) + [0.1, -0.2, 0.3]
    np.testing.assert_allclose(g.similarity_align_np(pred, gt), gt, atol=1e-7)
    mirrored = gt * [-1, 1, 1]  # det -1: the official alignment may reflect
    np.testing.assert_allclose(g.similarity_align_np(mirrored, gt), gt, atol=1e-7)


# ----------------------------------------------------------------------------- numpy twins and owners


def test_numpy_twins_are_native_numpy_and_match_torch():
    from handmesh import geometry_np as gn

    rng = np.random.default_rng(8)
    aa = _random_aa(rng, 60)
    R = gn.axis_angle_to_matrix_np(aa)
    assert isinstance(R, np.ndarray) and R.dtype == np.float64
    np.testing.assert_allclose(R, g.axis_angle_to_matrix(torch.tensor(aa)).numpy(), atol=1e-12)
    back = gn.matrix_to_axis_angle_np(R)
    np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(), R, atol=1e-10)
    # right Jacobian: exp(aa + d) ~= exp(aa) exp(Jr(aa) d) to first order in d
    d = rng.normal(size=(60, 3)) * 1e-6
    lhs = gn.axis_angle_to_matrix_np(aa + d)
    rhs = R @ gn.axis_angle_to_matrix_np((gn.right_jacobian_np(aa) @ d[..., None])[..., 0])
    np.testing.assert_allclose(lhs, rhs, atol=1e-10)
    v = rng.normal(size=(5, 3))
    np.testing.assert_allclose((gn.skew_np(v) @ v[..., None])[..., 0], 0.0, atol=1e-15)
    K = np.array([[600.0, 0.5, 320], [0, 610.0, 240], [0, 0, 1]])
    box = np.array([[200.0, 150.0, 360.0, 310.0], [10.0, 20.0, 110.0, 120.0]])
    np.testing.assert_allclose(
        gn.crop_intrinsics_np(K, box, 96), g.crop_intrinsics(torch.tensor(K), torch.tensor(box), 96).numpy()
    )
    pts = rng.uniform([-0.1, -0.1, 0.4], [0.1, 0.1, 0.8], size=(2, 7, 3))
    np.testing.assert_allclose(
        gn.project_points_np(pts, K), g.project_points(torch.tensor(pts), torch.tensor(K)).numpy()
    )
    # handmesh.geometry's _np names are these functions, not wrappers around the torch code
    assert g.project_points_np is gn.project_points_np and g.similarity_align_np is gn.similarity_align_np


def test_torch_free_modules_import_without_torch():
    """Synth's render workers and GL-free tests rely on these importing neither torch nor GL."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import handmesh.geometry_np, handmesh.mirror, handmesh.hand_model.joints, handmesh.data.synth\n"
        "import handmesh.render.overlay\n"
        "from handmesh.hand_model.joints import ROOT_JOINT\n"
        "assert ROOT_JOINT == 9\n"
        "bad = [m for m in ('torch', 'pyrender', 'OpenGL') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_mirroring_numpy_and_torch_alike():
    from handmesh.mirror import flip_intrinsics, mirror_faces, mirror_pose, mirror_vertices

    pts = np.array([[0.1, -0.2, 0.5]])
    np.testing.assert_allclose(mirror_vertices(pts), [[-0.1, -0.2, 0.5]])
    assert torch.equal(
        mirror_vertices(torch.tensor(pts)), torch.tensor([[-0.1, -0.2, 0.5]], dtype=torch.float64)
    )
    np.testing.assert_allclose(
        mirror_pose(np.array([0.1, 0.2, 0.3, -1.0, 2.0, 3.0])), [0.1, -0.2, -0.3, -1, -2, -3]
    )
    assert (mirror_faces(np.array([[0, 1, 2]])) == [[2, 1, 0]]).all()
    # a mirrored point seen through the flipped image's intrinsics lands on the flipped pixel
    K = np.array([[500.0, 0.3, 100.0], [0, 520.0, 90.0], [0, 0, 1]])
    uv = g.project_points_np(pts, K)
    uv_flipped = g.project_points_np(mirror_vertices(pts), flip_intrinsics(K, 224))
    np.testing.assert_allclose(uv_flipped, [[223 - uv[0, 0], uv[0, 1]]], atol=1e-9)
    assert torch.allclose(flip_intrinsics(torch.tensor(K), 224), torch.tensor(flip_intrinsics(K, 224)))
    assert K[0, 2] == 100.0  # the input is not modified
