"""HandModel: MANO parameters -> vertices and FreiHAND-order joints, through smplx's MANO layer."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
import smplx
import torch
from smplx.utils import Struct
from torch import Tensor, nn

from handmesh.errors import HandmeshError
from handmesh.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from handmesh.hand_model.joints import (
    FREIHAND_TIP_VERTEX_IDS,
    MANO_TO_FREIHAND,
    NUM_BETAS,
    NUM_MANO_JOINTS,
    NUM_POSE,
)


@dataclass
class HandOutput:
    """Posed hand: vertices (B,778,3), joints (B,21,3) FreiHAND order, joints16 (B,16,3) MANO order."""

    vertices: Tensor
    joints: Tensor
    joints16: Tensor


class HandModel(nn.Module):
    """MANO-schema hand model (real MANO or the stand-in) evaluated by smplx's MANO layer."""

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        kind: str,
        side: str = "right",
        flat_hand_mean: bool = False,
        use_pca: bool = False,
        num_pca_comps: int = 45,
        source: str = "",
    ) -> None:
        super().__init__()
        if kind not in ("mano", "standin"):
            raise HandmeshError(f"hand model kind must be 'mano' or 'standin', got {kind!r}")
        if side not in ("right", "left"):
            raise HandmeshError(f"side must be 'right' or 'left', got {side!r}")
        if not 1 <= num_pca_comps <= NUM_POSE:
            raise HandmeshError(f"num_pca_comps must be in 1..{NUM_POSE}, got {num_pca_comps}")
        self.kind = kind
        self.side = side
        self.source = source
        self.flat_hand_mean = bool(flat_hand_mean)
        self.use_pca = bool(use_pca)
        self.num_pca_comps = int(num_pca_comps)
        self.num_betas = NUM_BETAS
        struct = Struct(**{k: np.asarray(v) for k, v in arrays.items()})
        # smplx prints a warning about having only 10 shape directions on every construction.
        with contextlib.redirect_stdout(io.StringIO()):
            self.mano = smplx.MANOLayer(
                model_path="",
                data_struct=struct,
                is_rhand=side == "right",
                use_pca=False,
                num_pca_comps=NUM_POSE,
                flat_hand_mean=True,
                num_betas=NUM_BETAS,
                create_body_pose=False,  # SMPL's default would add a stray learnable parameter
            )
        self.faces = np.ascontiguousarray(np.asarray(arrays["f"], dtype=np.int64))
        # Pictures may draw a finer topology over the same vertices (the stand-in's skin webs); labels
        # and masks always use `faces`.
        self.render_faces = np.ascontiguousarray(
            np.asarray(arrays.get("render_f", arrays["f"]), dtype=np.int64)
        )
        self.register_buffer(
            "hands_mean", torch.tensor(np.asarray(arrays["hands_mean"]), dtype=torch.float32)
        )
        self.register_buffer(
            "hands_components", torch.tensor(np.asarray(arrays["hands_components"]), dtype=torch.float32)
        )
        self.register_buffer("tip_ids", torch.tensor(FREIHAND_TIP_VERTEX_IDS, dtype=torch.long))
        self.register_buffer("to_freihand", torch.tensor(MANO_TO_FREIHAND, dtype=torch.long))

    @property
    def v_template(self) -> Tensor:
        """Rest-pose template vertices (778,3)."""
        return self.mano.v_template

    def extra_repr(self) -> str:
        return f"kind={self.kind}, side={self.side}, flat_hand_mean={self.flat_hand_mean}, use_pca={self.use_pca}"

    def pose_to_axis_angle(self, hand_pose: Tensor) -> Tensor:
        """Articulation as flat-relative axis-angle (B,45) from (B,45) axis-angle or (B,num_pca_comps) PCA."""
        if self.use_pca:
            if hand_pose.shape[-1] != self.num_pca_comps:
                raise HandmeshError(
                    f"hand_pose: expected (B,{self.num_pca_comps}) PCA coefficients, got {tuple(hand_pose.shape)}"
                )
            hand_pose = hand_pose @ self.hands_components[: self.num_pca_comps]
        if not self.flat_hand_mean:
            hand_pose = hand_pose + self.hands_mean
        return hand_pose

    def _hand_rotmats(self, hand_pose: Tensor | None, batch: int, ref: Tensor) -> Tensor:
        if hand_pose is None:
            hand_pose = ref.new_zeros(batch, self.num_pca_comps if self.use_pca else NUM_POSE)
        hand_pose = hand_pose.to(ref)
        if hand_pose.dim() == 4 and hand_pose.shape[1:] == (NUM_MANO_JOINTS - 1, 3, 3):
            if self.flat_hand_mean:
                return hand_pose
            # Relative to the mean hand: add the mean in axis-angle space, as FreiHAND's parameters do.
            aa = matrix_to_axis_angle(hand_pose).reshape(-1, NUM_POSE) + self.hands_mean
        elif hand_pose.dim() == 3 and hand_pose.shape[1:] == (NUM_MANO_JOINTS - 1, 3) and not self.use_pca:
            aa = self.pose_to_axis_angle(hand_pose.reshape(-1, NUM_POSE))
        elif hand_pose.dim() == 2 and (self.use_pca or hand_pose.shape[1] == NUM_POSE):
            aa = self.pose_to_axis_angle(hand_pose)
        else:
            want = f"(B,{self.num_pca_comps}) PCA" if self.use_pca else "(B,45) axis-angle"
            raise HandmeshError(
                f"hand_pose: expected {want} or (B,15,3,3) matrices, got {tuple(hand_pose.shape)}"
            )
        return axis_angle_to_matrix(aa.reshape(-1, NUM_MANO_JOINTS - 1, 3))

    @staticmethod
    def _orient_rotmat(global_orient: Tensor | None, batch: int, ref: Tensor) -> Tensor:
        if global_orient is None:
            return torch.eye(3, dtype=ref.dtype, device=ref.device).expand(batch, 1, 3, 3)
        global_orient = global_orient.to(ref)
        if global_orient.dim() == 2 and global_orient.shape[1] == 3:
            return axis_angle_to_matrix(global_orient).reshape(-1, 1, 3, 3)
        if global_orient.shape[-2:] == (3, 3) and global_orient.dim() in (3, 4):
            return global_orient.reshape(-1, 1, 3, 3)
        raise HandmeshError(
            f"global_orient: expected (B,3) axis-angle or (B,3,3) matrices, got {tuple(global_orient.shape)}"
        )

    def forward(
        self,
        global_orient: Tensor | None = None,
        hand_pose: Tensor | None = None,
        betas: Tensor | None = None,
        transl: Tensor | None = None,
    ) -> HandOutput:
        """Pose the hand; missing arguments are zeros (identity rotations, mean shape, no translation)."""
        ref = self.mano.shapedirs
        given = [t for t in (global_orient, hand_pose, betas, transl) if t is not None]
        batch = given[0].shape[0] if given else 1
        orient = self._orient_rotmat(global_orient, batch, ref)
        pose = self._hand_rotmats(hand_pose, batch, ref)
        betas = ref.new_zeros(batch, NUM_BETAS) if betas is None else betas.to(ref)
        if betas.dim() != 2 or betas.shape[1] != NUM_BETAS:
            raise HandmeshError(f"betas: expected (B,{NUM_BETAS}), got {tuple(betas.shape)}")
        shapes = {orient.shape[0], pose.shape[0], betas.shape[0]}
        if transl is not None:
            if transl.dim() != 2 or transl.shape[1] != 3:
                raise HandmeshError(f"transl: expected (B,3), got {tuple(transl.shape)}")
            shapes.add(transl.shape[0])
        # sizes are tensors while tracing for ONNX export, so the set check only runs eagerly
        if len(shapes) != 1 and not torch.jit.is_tracing():
            raise HandmeshError("global_orient, hand_pose, betas and transl must share the batch size")
        out = self.mano(global_orient=orient, hand_pose=pose, betas=betas)
        vertices, joints16 = out.vertices, out.joints
        if transl is not None:
            shift = transl.to(ref)[:, None, :]
            vertices, joints16 = vertices + shift, joints16 + shift
        tips = vertices[:, self.tip_ids]
        joints = torch.cat([joints16, tips], dim=1)[:, self.to_freihand]
        return HandOutput(vertices=vertices, joints=joints, joints16=joints16)
