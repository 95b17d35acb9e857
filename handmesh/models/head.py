"""MANO-parameter heads: encoder features -> 16 rotations (6D), 10 shape values and the crop camera.

Every head predicts corrections to one mean state (`ParamHead`): 16 rotations in continuous 6D (global
orientation + 15 articulations, relative to the hand model's mean pose), 10 shape coefficients, and the
weak-perspective camera as (log s, tx, ty). The scale lives in log space so it stays positive (the depth
2f/(S s) never flips sign or divides by zero) and its corrections are relative, whatever the hand's size
in the crop. Decoders start near zero, so an untrained model already outputs the mean hand.

- ``"pooled"`` (`IterativeHead`): HMR-style iterative error feedback on globally pooled features. It
  throws away where the fingers are; kept for comparison.
- ``"keypoint"`` (`KeypointHead`): a light top-down neck brings the last stage back to 1/8 (or 1/4) of
  the input, 21 heatmaps give 2D keypoints by soft-argmax, and the same softmax weights pool one feature
  token per joint; an MLP over the 21 joint tokens (features + where they are) and a global token
  predicts the corrections. The keypoints are supervised by every dataset's 2D labels, so the network
  learns where the fingers are before how they bend (SimpleHand's keypoint-guided idea; pooling by the
  heatmap instead of bilinear sampling keeps it matmuls, cheap and ONNX-friendly).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from handmesh.errors import HandmeshError

NUM_ROT = 16
ROT_DIM = NUM_ROT * 6
NUM_BETAS = 10
CAM_DIM = 3
STATE_DIM = ROT_DIM + NUM_BETAS + CAM_DIM
NUM_KEYPOINTS = 21


class ParamHead(nn.Module):
    """Base of every head: the mean state (buffer), near-zero decoders of corrections, state decoding."""

    def __init__(self, init_pose6d: torch.Tensor, init_cam: torch.Tensor, hidden: int) -> None:
        super().__init__()
        init_cam = init_cam.detach().float().reshape(CAM_DIM)
        init_state = torch.cat(
            [
                init_pose6d.detach().float().reshape(ROT_DIM),
                torch.zeros(NUM_BETAS),
                torch.stack([init_cam[0].log(), init_cam[1], init_cam[2]]),
            ]
        )
        self.register_buffer("init_state", init_state)
        self.dec_pose = nn.Linear(hidden, ROT_DIM)
        self.dec_betas = nn.Linear(hidden, NUM_BETAS)
        self.dec_cam = nn.Linear(hidden, CAM_DIM)
        # small decoders: the first forward pass stays near the mean hand, so refinement starts from a
        # valid mesh instead of a random one
        for dec in (self.dec_pose, self.dec_betas, self.dec_cam):
            nn.init.xavier_uniform_(dec.weight, gain=0.01)
            nn.init.zeros_(dec.bias)

    def initial(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        """The mean state (B, STATE_DIM) in the dtype and device of `like`."""
        return self.init_state.to(like.dtype).expand(batch, STATE_DIM)

    def correction(self, h: torch.Tensor) -> torch.Tensor:
        """A state correction (B, STATE_DIM) from hidden features (B, hidden)."""
        return torch.cat([self.dec_pose(h), self.dec_betas(h), self.dec_cam(h)], dim=1)

    @staticmethod
    def decode(state: torch.Tensor) -> dict[str, torch.Tensor]:
        """State (B, STATE_DIM) -> dict(pose6d (B,16,6), betas (B,10), cam (B,3) = (s, tx, ty))."""
        pose6d = state[:, :ROT_DIM].reshape(-1, NUM_ROT, 6)
        betas = state[:, ROT_DIM : ROT_DIM + NUM_BETAS]
        cam_state = state[:, ROT_DIM + NUM_BETAS :]
        cam = torch.cat([cam_state[:, :1].exp(), cam_state[:, 1:]], dim=1)
        return {"pose6d": pose6d, "betas": betas, "cam": cam}


def _mlp(width: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    blocks: list[nn.Module] = []
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = hidden
    return nn.Sequential(*blocks)


class IterativeHead(ParamHead):
    """Pooled final features -> dict(pose6d, betas, cam) by iterative error feedback."""

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
        super().__init__(init_pose6d, init_cam, hidden)
        if iterations < 1 or layers < 1:
            raise HandmeshError("head: iterations and layers must be >= 1")
        self.iterations = int(iterations)
        self.mlp = _mlp(in_features + STATE_DIM, hidden, layers, dropout)

    def forward(self, pyramid: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Regress MANO parameters and the camera from the encoder's last feature map."""
        features = pyramid[-1].mean(dim=(2, 3))
        state = self.initial(features.shape[0], features)
        for _ in range(self.iterations):
            state = state + self.correction(self.mlp(torch.cat([features, state], dim=1)))
        return self.decode(state)


class ConvBN(nn.Sequential):
    """Conv2d + BatchNorm2d (+ GELU); `fuse` folds the norm into the conv for the deploy form."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.GELU() if act else nn.Identity(),
        )

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the BatchNorm into the convolution (exact in eval mode)."""
        from handmesh.models.reparam import fuse_conv_bn

        if isinstance(self[1], nn.BatchNorm2d):
            self[0] = fuse_conv_bn(self[0], self[1])
            self[1] = nn.Identity()


class KeypointHead(ParamHead):
    """Encoder pyramid -> 2D keypoints by heatmap soft-argmax, joint tokens, and MANO corrections.

    `pyramid` holds the encoder's maps from stride 4 up to the final features at stride 32;
    `in_channels` their channel counts; `stride` (4 or 8) the resolution of the heatmaps.
    """

    def __init__(
        self,
        in_channels: list[int],
        init_pose6d: torch.Tensor,
        init_cam: torch.Tensor,
        img_size: int,
        stride: int = 8,
        width: int = 128,
        token_dim: int = 64,
        hidden: int = 512,
        layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(init_pose6d, init_cam, hidden)
        if stride not in (4, 8):
            raise HandmeshError(f"keypoint head: stride must be 4 or 8, got {stride}")
        self.img_size = int(img_size)
        self.stride = int(stride)
        # levels used by the top-down neck: strides 4, 8, 16, then the final map (32)
        self.first = {4: 0, 8: 1}[stride]
        chans = [*in_channels[self.first : 3], in_channels[-1]]
        self.lateral = nn.ModuleList(ConvBN(c, width, 1, act=False) for c in chans)
        self.refine = nn.Sequential(
            ConvBN(width, width, 3, groups=width),
            ConvBN(width, width, 1),
            ConvBN(width, width, 3, groups=width),
        )
        self.heatmap = nn.Conv2d(width, NUM_KEYPOINTS, 1)
        self.token = nn.Linear(width, token_dim)
        self.where = nn.Linear(2, token_dim)
        self.joint_embed = nn.Parameter(torch.zeros(NUM_KEYPOINTS, token_dim))
        self.global_token = nn.Linear(in_channels[-1], token_dim)
        self.mlp = _mlp((NUM_KEYPOINTS + 1) * token_dim, hidden, layers, dropout)

    def neck(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        """Top-down fusion of the pyramid into one map at the heatmap stride (B, width, S/stride, S/stride)."""
        levels = [*pyramid[self.first : 3], pyramid[-1]]
        x = self.lateral[-1](levels[-1])
        for lateral, level in zip(reversed(self.lateral[:-1]), reversed(levels[:-1]), strict=True):
            x = F.interpolate(x, size=level.shape[-2:], mode="nearest") + lateral(level)
        return self.refine(x)

    def forward(self, pyramid: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """MANO parameters, camera and the head's own 2D keypoints (B,21,2) in crop pixels."""
        fmap = self.neck(pyramid)
        b, c, h, w = fmap.shape
        logits = self.heatmap(fmap).flatten(2)  # (B,21,HW)
        weights = logits.float().softmax(dim=-1).to(fmap.dtype)
        # centres of the heatmap cells in crop pixel coordinates (pixel centres at integers, as the
        # labels): the map covers the crop exactly, cell j spans pixels [j*stride, (j+1)*stride)
        ys = (torch.arange(h, device=fmap.device, dtype=fmap.dtype) + 0.5) * (self.img_size / h) - 0.5
        xs = (torch.arange(w, device=fmap.device, dtype=fmap.dtype) + 0.5) * (self.img_size / w) - 0.5
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1).reshape(h * w, 2)
        keypoints = weights @ grid  # (B,21,2) soft-argmax, x then y
        feats = weights @ fmap.flatten(2).transpose(1, 2)  # (B,21,width): heatmap-weighted pooling
        where = keypoints * (2.0 / self.img_size) - 1.0
        tokens = self.token(feats) + self.where(where) + self.joint_embed
        glob = self.global_token(pyramid[-1].mean(dim=(2, 3)))[:, None]
        h_ = self.mlp(torch.cat([tokens, glob], dim=1).flatten(1))
        state = self.initial(b, h_) + self.correction(h_)
        return {**self.decode(state), "keypoints2d": keypoints}

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the neck's BatchNorms into their convolutions (deploy form)."""
        for m in self.modules():
            if isinstance(m, ConvBN):
                m.fuse()
