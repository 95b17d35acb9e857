"""The hand-model layer: schema, joint order, fingertips, mean/flat pose, left hands, rotation inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from smplx.lbs import batch_rodrigues

from handmesh.hand_model import load_hand_model, mirror_pose
from handmesh.hand_model.joints import (
    FINGER_MANO_JOINTS,
    FINGER_TIP_VERTEX,
    FINGERS,
    FREIHAND_PARENTS,
    FREIHAND_TIP_VERTEX_IDS,
    MANO_PARENTS,
    MANO_TO_FREIHAND,
)


@pytest.fixture(scope="module")
def right():
    return load_hand_model(flat_hand_mean=True)


@pytest.fixture(scope="module")
def right_mean():
    return load_hand_model()


def _random_pose(n, seed=0, scale=0.4):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 45, generator=g) - 0.5) * 2 * scale


def test_schema_and_shapes(right):
    assert right.kind == "standin" and right.side == "right" and right.num_betas == 10
    assert right.faces.dtype == np.int64 and right.faces.shape[1] == 3
    assert right.faces.min() >= 0 and right.faces.max() == 777
    assert tuple(right.hands_mean.shape) == (45,)
    out = right(
        global_orient=torch.zeros(3, 3),
        hand_pose=_random_pose(3),
        betas=torch.randn(3, 10) * 0.5,
        transl=torch.ones(3, 3),
    )
    assert out.vertices.shape == (3, 778, 3)
    assert out.joints.shape == (3, 21, 3)
    assert out.joints16.shape == (3, 16, 3)
    assert torch.isfinite(out.vertices).all()


def test_joint_order_constants():
    # FreiHAND joint i is MANO joint MANO_TO_FREIHAND[i]; parents must agree under that map.
    for i, parent in enumerate(FREIHAND_PARENTS):
        src = MANO_TO_FREIHAND[i]
        if src >= 16 or parent < 0:
            continue
        assert MANO_PARENTS[src] == MANO_TO_FREIHAND[parent]
    assert MANO_TO_FREIHAND[4] == 16 and MANO_TO_FREIHAND[20] == 20
    assert FREIHAND_TIP_VERTEX_IDS == (744, 320, 443, 555, 672)


def test_fingertips_are_tip_vertices(right):
    out = right(hand_pose=_random_pose(2, seed=3))
    for k, finger in enumerate(FINGERS):
        joint = 4 * (k + 1)
        vid = FREIHAND_TIP_VERTEX_IDS[k]
        assert torch.equal(out.joints[:, joint], out.vertices[:, vid])
        # FreiHAND joints 1..3 of each finger are that finger's MANO joints.
        for m, mano_joint in enumerate(FINGER_MANO_JOINTS[finger]):
            assert torch.equal(out.joints[:, 4 * k + 1 + m], out.joints16[:, mano_joint])


def test_fingertips_are_extreme_points_of_fingers_at_flat_pose(right):
    out = right()
    verts, joints = out.vertices[0].numpy(), out.joints16[0].numpy()
    owner = right.mano.lbs_weights.argmax(1).numpy()
    for finger in FINGERS:
        base, _, last = FINGER_MANO_JOINTS[finger]
        direction = joints[last] - joints[base]
        direction /= np.linalg.norm(direction)
        tip = verts[FINGER_TIP_VERTEX[finger]]
        # The tip lies furthest along the finger among the vertices its distal segment carries.
        distal = verts[owner == last]
        assert (distal @ direction <= tip @ direction + 1e-7).all(), finger


def test_zero_pose_flat_is_template(right):
    out = right(hand_pose=torch.zeros(1, 45), betas=torch.zeros(1, 10))
    assert torch.allclose(out.vertices[0], right.v_template, atol=1e-6)


def test_mean_pose_is_hands_mean(right, right_mean):
    a = right_mean(hand_pose=torch.zeros(1, 45)).vertices
    b = right(hand_pose=right.hands_mean[None]).vertices
    assert torch.allclose(a, b, atol=1e-6)


def test_left_at_rest_is_mirrored_right(right):
    left = load_hand_model(side="left", flat_hand_mean=True)
    assert left.side == "left"
    vr, vl = right().vertices[0], left().vertices[0]
    assert torch.allclose(vl, vr * torch.tensor([-1.0, 1.0, 1.0]), atol=1e-7)
    assert np.array_equal(left.faces, right.faces[:, ::-1])


def test_left_posed_is_mirror_of_right_with_mirrored_pose(right):
    left = load_hand_model(side="left", flat_hand_mean=True)
    pose = _random_pose(2, seed=5)
    orient = torch.tensor([[0.3, -0.5, 0.2], [1.0, 0.4, -0.7]])
    betas = torch.randn(2, 10)
    r = right(global_orient=orient, hand_pose=pose, betas=betas)
    lo = torch.tensor(mirror_pose(orient.numpy()), dtype=torch.float32)
    lp = torch.tensor(mirror_pose(pose.numpy()), dtype=torch.float32)
    left_out = left(global_orient=lo, hand_pose=lp, betas=betas)
    flip = torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(left_out.vertices, r.vertices * flip, atol=1e-5)
    assert torch.allclose(left_out.joints, r.joints * flip, atol=1e-5)


@pytest.mark.parametrize("flat", [True, False])
def test_axis_angle_and_matrix_inputs_agree(flat):
    hand = load_hand_model(flat_hand_mean=flat)
    pose = _random_pose(4, seed=1, scale=1.0)
    orient = _random_pose(4, seed=2, scale=2.0)[:, :3]
    a = hand(global_orient=orient, hand_pose=pose)
    rot_pose = batch_rodrigues(pose.reshape(-1, 3)).reshape(4, 15, 3, 3)
    rot_orient = batch_rodrigues(orient)
    b = hand(global_orient=rot_orient, hand_pose=rot_pose)
    c = hand(global_orient=rot_orient[:, None], hand_pose=pose.reshape(4, 15, 3))
    assert torch.allclose(a.vertices, b.vertices, atol=1e-5)
    assert torch.allclose(a.vertices, c.vertices, atol=1e-5)


def test_pca_with_all_components_equals_full_pose():
    full = load_hand_model(flat_hand_mean=False)
    pca = load_hand_model(flat_hand_mean=False, use_pca=True, num_pca_comps=45)
    coeffs = _random_pose(3, seed=4)
    pose = coeffs @ pca.hands_components
    assert torch.allclose(pca(hand_pose=coeffs).vertices, full(hand_pose=pose).vertices, atol=1e-5)
    few = load_hand_model(use_pca=True, num_pca_comps=6)
    assert few(hand_pose=torch.zeros(2, 6)).vertices.shape == (2, 778, 3)
    with pytest.raises(ValueError):
        few(hand_pose=torch.zeros(2, 45))
