"""The MANO-parameter head: iterative error feedback from mean parameters (HMR-style).

State per sample: 16 rotations in continuous 6D (global orientation + 15 articulations, relative to
the hand model's mean pose), 10 shape coefficients, and the weak-perspective camera as
(log s, tx, ty). Each iteration reads the pooled image features together with the current state and
adds a correction. The scale is kept in log space so it stays positive (the depth 2f/(S s) never
flips sign or divides by zero) and its corrections are relative, whatever the hand's size in the crop.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_ROT = 16
ROT_DIM = NUM_ROT * 6
NUM_BETAS = 10
CAM_DIM = 3
STATE_DIM = ROT_DIM + NUM_BETAS + CAM_DIM


class IterativeHead(nn.Module):
    """Pooled features (B,C) -> dict(pose6d (B,16,6), betas (B,10), cam (B,3) = (s, tx, ty))."""

    def __init__(
        self,
        in_features: int,
        init_pose6d: torch.Tensor,
        init_cam: torch.Tensor,
        hidden: int = 1024,
        layers: int = 2,
        iterations: int = 3,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if iterations < 1 or layers < 1:
            raise ValueError("head: iterations and layers must be >= 1")
        self.iterations = int(iterations)
        blocks: list[nn.Module] = []
        width = in_features + STATE_DIM
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = hidden
        self.mlp = nn.Sequential(*blocks)
        self.dec_pose = nn.Linear(hidden, ROT_DIM)
        self.dec_betas = nn.Linear(hidden, NUM_BETAS)
        self.dec_cam = nn.Linear(hidden, CAM_DIM)
        # Small decoders so the first forward pass stays near the mean hand: the refinement then starts
        # from a valid mesh instead of a random one.
        for dec in (self.dec_pose, self.dec_betas, self.dec_cam):
            nn.init.xavier_uniform_(dec.weight, gain=0.01)
            nn.init.zeros_(dec.bias)
        init_cam = init_cam.detach().float().reshape(CAM_DIM)
        init_state = torch.cat(
            [
                init_pose6d.detach().float().reshape(ROT_DIM),
                torch.zeros(NUM_BETAS),
                torch.stack([init_cam[0].log(), init_cam[1], init_cam[2]]),
            ]
        )
        self.register_buffer("init_state", init_state)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Regress MANO parameters and the camera from pooled features."""
        state = self.init_state.to(features.dtype).expand(features.shape[0], STATE_DIM)
        for _ in range(self.iterations):
            h = self.mlp(torch.cat([features, state], dim=1))
            state = state + torch.cat([self.dec_pose(h), self.dec_betas(h), self.dec_cam(h)], dim=1)
        pose6d = state[:, :ROT_DIM].reshape(-1, NUM_ROT, 6)
        betas = state[:, ROT_DIM : ROT_DIM + NUM_BETAS]
        cam_state = state[:, ROT_DIM + NUM_BETAS :]
        cam = torch.cat([cam_state[:, :1].exp(), cam_state[:, 1:]], dim=1)
        return {"pose6d": pose6d, "betas": betas, "cam": cam}
