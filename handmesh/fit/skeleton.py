"""The hand model's kinematic skeleton: 16 rotating joints plus 5 fingertips, linear in the shape.

The fitter never runs the full mesh model inside its loop: joint positions only depend on the rest
joints (linear in betas) and the chain of rotations, so forward kinematics and its analytic Jacobian
over 21 points are all it needs. Fingertips are mesh vertices in the full model; here they ride
rigidly on their distal joint (the fitter corrects the small skinning difference afterwards).
Nodes are in "MANO-extended" order: MANO's 16 joints, then the tips (thumb, index, middle, ring, pinky).

This runs in float64 numpy: at one or two hands per call, per-operation overhead is the whole cost,
and numpy's is several times lower than torch's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from handmesh.geometry_np import right_jacobian_np, skew_np
from handmesh.hand_model.joints import (
    FREIHAND_PARENTS,
    FREIHAND_TIP_VERTEX_IDS,
    MANO_TO_FREIHAND,
    NUM_BETAS,
    NUM_MANO_JOINTS,
)

NUM_NODES = 21
NUM_LOCAL = NUM_MANO_JOINTS - 1
# Where each FreiHAND joint sits among the extended nodes, and the inverse map.
FREIHAND_TO_NODE = np.asarray(MANO_TO_FREIHAND, dtype=np.int64)
NODE_TO_FREIHAND = np.argsort(FREIHAND_TO_NODE)


def _node_parents() -> np.ndarray:
    """Parent of every extended node, derived from FreiHAND's tree so both orders stay in step."""
    parents = np.full(NUM_NODES, -1, dtype=np.int64)
    for joint, parent in enumerate(FREIHAND_PARENTS):
        if parent >= 0:
            parents[FREIHAND_TO_NODE[joint]] = FREIHAND_TO_NODE[parent]
    return parents


NODE_PARENTS = _node_parents()


def _ancestor_pairs() -> tuple[np.ndarray, np.ndarray]:
    """(node, rotating joint) pairs where the joint is a strict ancestor: the Jacobian's non-zero blocks."""
    nodes, joints = [], []
    for k in range(NUM_NODES):
        p = NODE_PARENTS[k]
        while p >= 0:
            nodes.append(k)
            joints.append(p)
            p = NODE_PARENTS[p]
    return np.asarray(nodes), np.asarray(joints)


def _levels() -> tuple[np.ndarray, ...]:
    depth = np.zeros(NUM_NODES, dtype=np.int64)
    for k in range(1, NUM_NODES):
        depth[k] = depth[NODE_PARENTS[k]] + 1 if NODE_PARENTS[k] < k else -1
    if (depth < 0).any():
        raise AssertionError("extended nodes must list parents before children")
    return tuple(np.flatnonzero(depth == d) for d in range(1, depth.max() + 1))


# Nodes grouped by depth (each level is one vectorized step of forward kinematics).
LEVELS = _levels()
PAIR_NODES, PAIR_JOINTS = _ancestor_pairs()
# The single child of each rotating joint other than the wrist: the bone its rotation swings.
CHILD = np.array([np.flatnonzero(NODE_PARENTS == j)[0] if j else -1 for j in range(NUM_MANO_JOINTS)])


@dataclass
class Skin:
    """The mesh arrays of a MANO-schema model, for skinning the fitted skeleton in numpy.

    One hand-model forward in torch is a few hundred tiny ops whose per-op overhead at batch 1 costs
    more than the whole solve; the same linear blend skinning in numpy, driven by the skeleton's own
    joint frames, costs a fraction of it. tests/test_fit.py checks it against HandModel's output.
    """

    v_template: np.ndarray  # (V,3)
    shapedirs: np.ndarray  # (V,3,10)
    posedirs: np.ndarray  # (135, V*3): pose feature (R_j - I for the 15 joints, flattened) -> offsets
    weights: np.ndarray  # (V,16)
    tip_ids: np.ndarray  # (5,) fingertip vertices, thumb to pinky

    @classmethod
    def from_hand_model(cls, hand) -> Skin | None:
        """The arrays of a HandModel's smplx layer, or None for a layer that does not expose them."""
        layer = getattr(hand, "mano", None)
        names = ("v_template", "shapedirs", "posedirs", "lbs_weights")
        if layer is None or not all(isinstance(getattr(layer, n, None), torch.Tensor) for n in names):
            return None
        arr = {n: getattr(layer, n).detach().double().cpu().numpy() for n in names}
        if arr["posedirs"].shape != (9 * NUM_LOCAL, arr["v_template"].size):
            return None
        tips = np.asarray(hand.tip_ids.cpu() if hasattr(hand, "tip_ids") else FREIHAND_TIP_VERTEX_IDS)
        return cls(arr["v_template"], arr["shapedirs"], arr["posedirs"], arr["lbs_weights"], tips)

    def vertices(
        self,
        local_rot: np.ndarray,
        betas: np.ndarray,
        frames: np.ndarray,
        joints: np.ndarray,
        rest: np.ndarray,
    ) -> np.ndarray:
        """Vertices (B,V,3): local rotations (B,15,3,3), betas (B,10), the skeleton's world frames
        (B,16,3,3), posed joints (B,16,3) and rest joints (B,16,3) of that pose and shape."""
        batch = betas.shape[0]
        v = self.v_template + (self.shapedirs @ betas.T).transpose(2, 0, 1)
        feature = (local_rot - np.eye(3)).reshape(batch, -1)
        v = v + (feature @ self.posedirs).reshape(batch, -1, 3)
        # Bone k maps a rest point x to G_k x + (p_k - G_k j_k).
        offset = joints - (frames @ rest[..., None])[..., 0]
        rot = np.einsum("vk,bkij->bvij", self.weights, frames)
        shift = np.einsum("vk,bki->bvi", self.weights, offset)
        return (rot @ v[..., None])[..., 0] + shift


@dataclass
class Posed:
    """Forward kinematics: node positions (B,21,3), joint frames (B,16,3,3), d positions/d betas (B,21,3,10)."""

    points: np.ndarray
    frames: np.ndarray
    shape_jac: np.ndarray


class Skeleton:
    """Rest joints of one hand model (linear in betas) with batched forward kinematics and Jacobians."""

    def __init__(
        self, rest: np.ndarray, shape_dirs: np.ndarray, hands_mean: np.ndarray, skin: Skin | None = None
    ) -> None:
        self.rest = rest  # (21,3) extended order, betas = 0
        self.shape_dirs = shape_dirs  # (21,3,10)
        self.hands_mean = hands_mean  # (15,3) flat-relative mean articulation
        self.skin = skin
        parents = NODE_PARENTS.clip(min=0)
        self.bone_dirs = shape_dirs - np.where((NODE_PARENTS >= 0)[:, None, None], shape_dirs[parents], 0.0)
        self._level_parents = [NODE_PARENTS[lv] for lv in LEVELS]
        self._level_rot = [lv[lv < NUM_MANO_JOINTS] for lv in LEVELS]

    @classmethod
    @torch.no_grad()
    def from_hand_model(cls, hand) -> Skeleton:
        """Read the skeleton off a HandModel through its public forward (flat pose, unit betas)."""
        n = NUM_BETAS + 1
        ref = hand.hands_mean
        betas = torch.cat([ref.new_zeros(1, NUM_BETAS), torch.eye(NUM_BETAS, dtype=ref.dtype)], 0)
        flat = -ref.reshape(1, -1).expand(n, -1)
        out = hand(global_orient=ref.new_zeros(n, 3), hand_pose=flat, betas=betas, transl=ref.new_zeros(n, 3))
        nodes = out.joints.double().cpu().numpy()[:, NODE_TO_FREIHAND]
        # The flat-pose joints are exactly linear in betas, so unit betas give the shape directions.
        rest = nodes[0]
        dirs = np.ascontiguousarray((nodes[1:] - rest).transpose(1, 2, 0))
        return cls(rest, dirs, ref.double().cpu().numpy().reshape(NUM_LOCAL, 3), Skin.from_hand_model(hand))

    def rest_joints(self, betas: np.ndarray) -> np.ndarray:
        """Rest node positions (B,21,3) for betas (B,10)."""
        return self.rest + (self.shape_dirs @ betas.T).transpose(2, 0, 1)

    def forward(self, root: np.ndarray, local: np.ndarray, betas: np.ndarray, transl: np.ndarray) -> Posed:
        """Pose the skeleton: root (B,3,3), local rotations (B,15,3,3), betas (B,10), transl (B,3)."""
        batch = root.shape[0]
        rest = self.rest_joints(betas)
        bones = rest - rest[:, NODE_PARENTS.clip(min=0)]
        rot = np.concatenate([root[:, None], local], 1)
        frames = np.empty((batch, NUM_MANO_JOINTS, 3, 3))
        points = np.empty((batch, NUM_NODES, 3))
        shape_jac = np.empty((batch, NUM_NODES, 3, NUM_BETAS))
        frames[:, 0] = root
        points[:, 0] = rest[:, 0] + transl
        shape_jac[:, 0] = self.shape_dirs[0]
        for nodes, parents, rnodes in zip(LEVELS, self._level_parents, self._level_rot, strict=True):
            g = frames[:, parents]
            points[:, nodes] = points[:, parents] + (g @ bones[:, nodes, :, None])[..., 0]
            shape_jac[:, nodes] = shape_jac[:, parents] + g @ self.bone_dirs[nodes]
            if len(rnodes):
                frames[:, rnodes] = frames[:, NODE_PARENTS[rnodes]] @ rot[:, rnodes]
        return Posed(points, frames, shape_jac)

    def rotation_jacobian(self, posed: Posed, local_aa: np.ndarray) -> np.ndarray:
        """d points / d (root increment, local axis-angle) as (B,63,48).

        The root is updated multiplicatively (R <- R exp(d)); the 15 local joints additively in
        axis-angle (so joint limits stay box constraints), hence their right Jacobian. Only
        (node, ancestor) blocks are non-zero: a point moves by w x (p_k - p_j) when joint j turns by w.
        """
        pts, frames = posed.points, posed.frames
        batch = pts.shape[0]
        world = frames.copy()
        world[:, 1:] = frames[:, 1:] @ right_jacobian_np(local_aa)
        lever = pts[:, PAIR_NODES] - pts[:, PAIR_JOINTS]
        blocks = -skew_np(lever) @ world[:, PAIR_JOINTS]  # (B,P,3,3)
        jac = np.zeros((batch, NUM_NODES, 3, NUM_MANO_JOINTS, 3))
        jac[:, PAIR_NODES, :, PAIR_JOINTS, :] = blocks.transpose(1, 0, 2, 3)
        return jac.reshape(batch, NUM_NODES * 3, NUM_MANO_JOINTS * 3)
