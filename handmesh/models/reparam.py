"""The deploy form: a fused copy of the regressor for inference.

timm's `reparameterize_model` collapses FastViT's multi-branch blocks (MobileOne convs, RepMixer,
large-kernel convs, conditional positional encodings) into single convolutions. What it leaves unfused
is folded here too, exactly (eval-mode arithmetic): the BatchNorm after each ConvMlp's depthwise conv
into that conv, the BatchNorm in front of each attention block into the qkv projection, and every
LayerScale into the layer that feeds it. The head and the hand-model layer are kept as they are.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (a, b) with bn(x) == a * x + b in eval mode."""
    std = torch.sqrt(bn.running_var + bn.eps)
    weight = bn.weight if bn.affine else torch.ones_like(std)
    bias = bn.bias if bn.affine else torch.zeros_like(std)
    a = weight / std
    return a, bias - bn.running_mean * a


def _is_plain_bn(m: nn.Module) -> bool:
    """A BatchNorm2d with tracked statistics and no activation/dropout attached (timm's BatchNormAct2d)."""
    if not isinstance(m, nn.BatchNorm2d) or m.running_mean is None:
        return False
    return all(isinstance(getattr(m, name, nn.Identity()), nn.Identity) for name in ("act", "drop"))


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A single Conv2d equal to bn(conv(x)) in eval mode."""
    a, b = _bn_scale_shift(bn)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(conv.weight)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(a)
    fused.weight.data.copy_(conv.weight * a.reshape(-1, 1, 1, 1))
    fused.bias.data.copy_(bias * a + b)
    return fused


def _scale_out(layer: nn.Module, gamma: torch.Tensor) -> None:
    """Multiply the output channels of a Conv2d/Linear by gamma (C,) in place."""
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    layer.weight.data.mul_(gamma.reshape(shape))
    if layer.bias is not None:
        layer.bias.data.mul_(gamma)


def _fold_bn_into_linear(bn: nn.BatchNorm2d, linear: nn.Linear) -> nn.Linear:
    """A Linear equal to linear(bn(x)) for channel-last tokens of x."""
    a, b = _bn_scale_shift(bn)
    fused = nn.Linear(linear.in_features, linear.out_features, bias=True).to(linear.weight)
    bias = linear.bias if linear.bias is not None else torch.zeros(linear.out_features).to(a)
    fused.weight.data.copy_(linear.weight * a[None, :])
    fused.bias.data.copy_(bias + linear.weight @ b)
    return fused


def _layer_scale_gamma(m: nn.Module) -> torch.Tensor | None:
    from timm.models.fastvit import LayerScale2d

    return m.gamma.detach().reshape(-1) if isinstance(m, LayerScale2d) else None


@torch.no_grad()
def fold_fastvit_extras(trunk: nn.Module) -> dict[str, int]:
    """Fold the BatchNorms and LayerScales timm's reparameterization leaves in a FastViT trunk (in place)."""
    from timm.layers import ConvNormAct
    from timm.models.fastvit import AttentionBlock, RepMixerBlock

    counts = {"conv_bn": 0, "attn_bn": 0, "layer_scale": 0}
    for module in list(trunk.modules()):
        if isinstance(module, ConvNormAct) and isinstance(module.conv, nn.Conv2d) and _is_plain_bn(module.bn):
            module.conv = fuse_conv_bn(module.conv, module.bn)
            module.bn = nn.Identity()
            counts["conv_bn"] += 1
        elif isinstance(module, RepMixerBlock | AttentionBlock):
            scale_name = "layer_scale" if isinstance(module, RepMixerBlock) else "layer_scale_2"
            gamma = _layer_scale_gamma(getattr(module, scale_name))
            if gamma is not None:
                _scale_out(module.mlp.fc2, gamma)
                setattr(module, scale_name, nn.Identity())
                counts["layer_scale"] += 1
        if isinstance(module, AttentionBlock):
            attn = module.token_mixer
            gamma = _layer_scale_gamma(module.layer_scale_1)
            if gamma is not None:
                _scale_out(attn.proj, gamma)
                module.layer_scale_1 = nn.Identity()
                counts["layer_scale"] += 1
            if _is_plain_bn(module.norm):
                attn.qkv = _fold_bn_into_linear(module.norm, attn.qkv)
                module.norm = nn.Identity()
                counts["attn_bn"] += 1
    return counts


def reparameterize(model: nn.Module) -> nn.Module:
    """A fused deploy copy of a HandRegressor in eval mode; the original model is untouched."""
    from timm.utils import reparameterize_model

    if getattr(model, "deploy", False):
        return copy.deepcopy(model).eval()
    deploy = copy.deepcopy(model).eval()
    trunk = deploy.encoder.trunk
    reparameterize_model(trunk, inplace=True)
    fold_fastvit_extras(trunk)
    fuse_head = getattr(deploy.head, "fuse", None)
    if fuse_head is not None:  # heads with their own Conv+BN pairs (the keypoint head's neck)
        fuse_head()
    deploy.deploy = True
    for p in deploy.parameters():
        p.requires_grad_(False)
    return deploy
