"""The hand-model layer: schema, joint order, fingertips, mean/flat pose, left hands, rotation inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from smplx.lbs import batch_rodrigues

from handmesh.errors import HandmeshError
from handmesh.hand_model import HandModel, load_hand_model, mirror_pose
from handmesh.hand_model.joints import (
    FINGER_MANO_JOINTS,
    FINGER_TIP_VERTEX,
    FINGERS,
    FREIHAND_PARENTS,
    FREIHAND_TIP_VERTEX_IDS,
    MANO_PARENTS,
    MANO_TO_FREIHAND,
)
from handmesh.hand_model.prior import (
    JOINT_LIMITS_LOWER,
    JOINT_LIMITS_UPPER,
    NAMED_POSES,
    ROWS,
    clamp_to_limits,
    named_pose,
    sample_poses,
)
from handmesh.hand_model.standin import standin_arrays


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


def test_hand_model_has_buffers_only(right):
    # Nothing in the hand model is learnable: regressors that embed it train only their own weights.
    assert list(right.parameters()) == []
    assert "hands_mean" in dict(right.named_buffers())


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
    with pytest.raises(HandmeshError):
        few(hand_pose=torch.zeros(2, 45))


# --- the stand-in hand itself -----------------------------------------------------------------------


def _edges(faces):
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def test_shipped_standin_asset_is_what_the_generator_makes():
    from handmesh.hand_model.standin import ASSET, build_standin

    assert ASSET.is_file(), (
        "handmesh/assets/standin_right.npz is missing: run python -m handmesh.hand_model.standin"
    )
    built = build_standin()
    with np.load(ASSET, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(built)
        for key, value in built.items():
            assert npz[key].shape == value.shape, key
            if value.dtype.kind == "i":
                assert np.array_equal(npz[key], value), key
            else:  # float arithmetic may differ in the last bits between BLAS builds
                np.testing.assert_allclose(npz[key], value, rtol=0, atol=1e-10, err_msg=key)


def test_standin_mesh_is_closed_oriented_and_hand_sized(right):
    import trimesh

    verts = right.v_template.numpy().astype(np.float64)
    mesh = trimesh.Trimesh(verts, right.faces, process=False)
    assert len(verts) == 778
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    joints = right().joints[0].numpy()
    # MANO's right-hand frame: wrist at +x, fingers toward -x, thumb on the +z side, palm facing -y.
    wrist_to_middle_tip = np.linalg.norm(joints[12] - joints[0])
    assert 0.17 < wrist_to_middle_tip < 0.20
    assert joints[0, 0] > 0.08 and joints[12, 0] < -0.08
    assert joints[4, 2] > joints[8, 2] > joints[20, 2]
    assert 0.08 < np.linalg.norm(joints[9] - joints[0]) < 0.11
    fist = right(hand_pose=torch.tensor(named_pose("fist"), dtype=torch.float32)[None]).joints[0].numpy()
    assert fist[11, 1] < joints[11, 1] - 0.03  # curling fingers move toward the palm side (-y)


def _inside(verts: np.ndarray, faces: np.ndarray, point: np.ndarray) -> bool:
    """Whether `point` is inside a closed mesh (its winding number, from the faces' solid angles)."""
    a, b, c = (verts[faces[:, k]] - point for k in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
    num = np.einsum("ij,ij->i", a, np.cross(b, c))
    den = la * lb * lc + (a * b).sum(1) * lc + (b * c).sum(1) * la + (c * a).sum(1) * lb
    return abs(np.arctan2(num, den).sum() / (2 * np.pi)) > 0.5


def test_standin_pictures_draw_skin_webs_that_the_label_mesh_leaves_open(right):
    """The render topology joins neighbouring fingers, and thumb and index, with skin over the same 778
    vertices; the label mesh (faces, masks) keeps its gaps."""
    import trimesh

    verts = right.v_template.numpy().astype(np.float64)
    render = trimesh.Trimesh(verts, right.render_faces, process=False)
    assert render.is_watertight and render.is_winding_consistent
    assert render.volume > trimesh.Trimesh(verts, right.faces, process=False).volume
    kept = {tuple(f) for f in right.faces} & {tuple(f) for f in right.render_faces}
    assert len(kept) > 0.95 * len(right.faces)  # the same surface with the same winding elsewhere
    j = right().joints[0].numpy()
    for a, b in ((5, 9), (9, 13), (13, 17)):  # between neighbouring proximal bones, near their base
        point = (j[a] + j[b] + 0.35 * (j[a + 1] - j[a] + j[b + 1] - j[b])) / 2
        assert _inside(verts, right.render_faces, point) and not _inside(verts, right.faces, point), a
        point = (j[a] + j[b] + 0.7 * (j[a + 1] - j[a] + j[b + 1] - j[b])) / 2  # past the web: open
        assert not _inside(verts, right.render_faces, point), a
    between = j[2] + 0.5 * (j[5] - j[2])  # halfway from the thumb's MCP to the index's
    assert _inside(verts, right.render_faces, between) and not _inside(verts, right.faces, between)
    left = load_hand_model(side="left", flat_hand_mean=True)  # mirrored: webs kept, still outward
    mirrored = trimesh.Trimesh(left.v_template.numpy().astype(np.float64), left.render_faces, process=False)
    assert mirrored.is_winding_consistent and np.isclose(mirrored.volume, render.volume)


def test_standin_weights_regressor_and_bases_are_sane(right):
    arrays = standin_arrays()
    w = arrays["weights"]
    assert (w >= 0).all() and np.allclose(w.sum(1), 1)
    assert np.allclose(arrays["J_regressor"].sum(1), 1)
    comps = arrays["hands_components"]
    assert np.allclose(comps @ comps.T, np.eye(45), atol=1e-8)
    assert np.allclose(arrays["hands_mean"], named_pose("relaxed"))
    # Each tip vertex is carried by its finger's last joint.
    for finger, vid in FINGER_TIP_VERTEX.items():
        assert w[vid].argmax() == FINGER_MANO_JOINTS[finger][2]


def test_standin_shape_directions(right):
    base = right().joints[0]
    bigger = right(betas=torch.tensor([[2.0] + [0.0] * 9])).joints[0]
    ratio = np.linalg.norm((bigger[12] - bigger[0]).numpy()) / np.linalg.norm((base[12] - base[0]).numpy())
    assert 1.08 < ratio < 1.16  # beta 0 is overall size, about 6 % per unit
    longer = right(betas=torch.tensor([[0.0, 2.0] + [0.0] * 8])).joints[0]
    palm = lambda j: np.linalg.norm((j[9] - j[0]).numpy())  # noqa: E731
    finger = lambda j: np.linalg.norm((j[12] - j[9]).numpy())  # noqa: E731
    assert finger(longer) > 1.05 * finger(base) and abs(palm(longer) - palm(base)) < 1e-4
    dirs = standin_arrays()["shapedirs"].reshape(-1, 10)
    assert np.linalg.matrix_rank(dirs, tol=1e-6) == 10


def _stretch(hand, pose, mask=None):
    rest = hand().vertices[0].numpy()
    posed = hand(hand_pose=torch.tensor(pose, dtype=torch.float32).reshape(1, 45)).vertices[0].numpy()
    e = _edges(hand.faces)
    if mask is not None:
        e = e[mask(e)]
    ratio = np.linalg.norm(posed[e[:, 0]] - posed[e[:, 1]], axis=1) / np.linalg.norm(
        rest[e[:, 0]] - rest[e[:, 1]], axis=1
    )
    return ratio.min(), ratio.max()


def _finger_edges(hand, finger):
    owner = hand.mano.lbs_weights.argmax(1).numpy()
    ids = FINGER_MANO_JOINTS[finger]
    return lambda e: np.isin(owner[e[:, 0]], ids) & np.isin(owner[e[:, 1]], ids)


@pytest.mark.parametrize("finger", ["index", "middle", "ring", "pinky"])
def test_bending_a_finger_90_degrees_does_not_tear(right, finger):
    for k in range(3):
        pose = np.zeros((15, 3))
        pose[ROWS[finger][k], 2] = np.pi / 2
        lo, hi = _stretch(right, pose, _finger_edges(right, finger))
        assert lo > 0.35 and hi < 1.6, (finger, k, lo, hi)
        lo, hi = _stretch(right, pose)
        assert lo > 0.1 and hi < 2.6, (finger, k, lo, hi)


def test_tearing_check_catches_rigid_skinning():
    # The bound above must be able to fail: with rigid (one-joint) weights the knuckles tear open.
    arrays = standin_arrays()
    hard = np.zeros_like(arrays["weights"])
    hard[np.arange(778), arrays["weights"].argmax(1)] = 1.0
    arrays["weights"] = hard
    rigid = HandModel(arrays, kind="standin", flat_hand_mean=True)
    pose = np.zeros((15, 3))
    pose[ROWS["middle"][1], 2] = np.pi / 2
    assert _stretch(rigid, pose, _finger_edges(rigid, "middle"))[1] > 1.6


def test_named_poses_do_not_tear(right):
    for name in NAMED_POSES:
        lo, hi = _stretch(right, named_pose(name))
        assert lo > 0.1 and hi < 3.0, (name, lo, hi)


# --- the articulation prior --------------------------------------------------------------------------


def test_named_poses_and_limits():
    lower, upper = np.asarray(JOINT_LIMITS_LOWER), np.asarray(JOINT_LIMITS_UPPER)
    assert lower.shape == upper.shape == (15, 3) and (lower < upper).all()
    for name in NAMED_POSES:
        pose = named_pose(name).reshape(15, 3)
        assert pose.shape == (15, 3)
        assert (pose >= lower).all() and (pose <= upper).all(), name
    assert np.array_equal(named_pose("flat"), np.zeros(45))
    with pytest.raises(HandmeshError):
        named_pose("jazz hands")


def test_pinch_closes_and_fist_curls(right):
    out = right(
        hand_pose=torch.tensor(np.stack([named_pose("pinch"), named_pose("fist")]), dtype=torch.float32)
    )
    joints = out.joints.numpy()
    assert np.linalg.norm(joints[0, 4] - joints[0, 8]) < 0.025  # thumb tip meets index tip
    flat = right().joints[0].numpy()
    for tip in (8, 12, 16, 20):
        assert np.linalg.norm(joints[1, tip] - joints[1, 0]) < 0.75 * np.linalg.norm(flat[tip] - flat[0])


def test_sample_poses_and_clamp():
    a, b = sample_poses(64, 3), sample_poses(64, 3)
    assert a.shape == (64, 45) and np.array_equal(a, b)
    assert not np.array_equal(a, sample_poses(64, 4))
    assert np.array_equal(clamp_to_limits(a), a)
    wild = np.full((2, 45), 5.0)
    clamped = clamp_to_limits(wild)
    assert np.allclose(clamped, np.asarray(JOINT_LIMITS_UPPER).reshape(45))
    t = clamp_to_limits(torch.full((2, 15, 3), -5.0))
    assert torch.allclose(t, torch.tensor(JOINT_LIMITS_LOWER, dtype=torch.float32).expand(2, 15, 3))
