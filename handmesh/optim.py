"""Optimizer pieces of training: AdamW groups, a warm-up + cosine schedule and an EMA of the weights.

Both the schedule and the EMA keep their state as plain numbers and tensors so that a checkpoint holding
them loads with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and normalization parameters (1-D tensors); the decayed
    group comes first (`set_weight_decay`)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def set_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    """Set the decay of `build_optimizer`'s decayed group (a resumed run given another --weight-decay)."""
    optimizer.param_groups[0]["weight_decay"] = float(weight_decay)


class WarmupCosine:
    """Per-step learning rate: linear warm-up to the base rate, then cosine decay to `min_ratio` of it."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_ratio: float = 0.01
    ):
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, int(warmup_steps))
        self.min_ratio = float(min_ratio)
        self.step_count = 0
        self._apply()

    def factor(self, step: int) -> float:
        """Multiplier of the base rate at optimizer step `step` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _apply(self) -> None:
        f = self.factor(self.step_count)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * f

    def step(self) -> None:
        """Advance one optimizer step."""
        self.step_count += 1
        self._apply()

    def set_horizon(self, total_steps: int) -> None:
        """Move the end of the decay (a time budget re-estimates it as the run measures its speed)."""
        self.total_steps = max(self.warmup_steps + 1, int(total_steps))
        self._apply()

    def set_base_lr(self, lr: float) -> None:
        """Change every group's peak rate (a resumed run given another --lr); the schedule's shape stays."""
        self.base_lrs = [float(lr)] * len(self.optimizer.param_groups)
        self._apply()

    def get_last_lr(self) -> list[float]:
        """Current learning rate of each parameter group."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Plain-number state."""
        return {
            "base_lrs": list(self.base_lrs),
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "min_ratio": self.min_ratio,
            "step_count": self.step_count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state written by `state_dict`."""
        self.base_lrs = [float(x) for x in state["base_lrs"]]
        self.total_steps = int(state["total_steps"])
        self.warmup_steps = int(state["warmup_steps"])
        self.min_ratio = float(state["min_ratio"])
        self.step_count = int(state["step_count"])
        self._apply()


class ModelEMA:
    """Exponential moving average of a model's parameters and buffers, kept in an eval-mode copy."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Blend the model's current weights in; the decay ramps up so early averages are not stale."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        for name, value in self.module.state_dict().items():
            src = current[name].detach()
            if value.dtype.is_floating_point:
                value.lerp_(src.to(value.dtype), 1.0 - decay)
            else:
                value.copy_(src)
