"""Where a process sits in a torchrun job, its device and kernel choices, and the collectives training needs.

Without torchrun every helper is a no-op for a single process, so the trainer calls them unconditionally.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import torch

from handmesh.errors import HandmeshError


@dataclass
class DistInfo:
    """Where this process sits in a torchrun job (world_size 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True inside a multi-process job."""
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """True on the process that logs and writes checkpoints."""
        return self.rank == 0


def init_distributed(device_spec: str) -> DistInfo:
    """Join the torchrun process group when torchrun's environment is set (nccl on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        on_gpu = device_spec != "cpu" and torch.cuda.is_available()
        if on_gpu:
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend="nccl" if on_gpu else "gloo")
    return info


def resolve_device(spec: str, dist_info: DistInfo) -> torch.device:
    """'auto' -> this rank's GPU when CUDA is present, else the CPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda":
        spec = f"cuda:{dist_info.local_rank}"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise HandmeshError(f"device {spec} asked for but CUDA is not available")
        torch.cuda.set_device(device)
    return device


def select_kernels(deterministic: bool, device: torch.device) -> None:
    """Deterministic kernels when asked (exact resume tests), else cuDNN autotuning on a GPU."""
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of an `amp` setting on this device (None: full precision)."""
    if mode == "auto":
        mode = "bf16" if device.type == "cuda" else "off"
    if mode not in ("bf16", "fp16", "off"):
        raise HandmeshError(f"amp must be auto, bf16, fp16 or off, not {mode!r}")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[mode]


def use_channels_last(mode: str, device: torch.device) -> bool:
    """Whether to train in channels-last memory format (GPUs only)."""
    if mode not in ("auto", "on", "off"):
        raise HandmeshError(f"channels_last must be auto, on or off, not {mode!r}")
    if device.type != "cuda":
        if mode == "on":
            # torch 2.14's CPU convolution backward on channels-last FastViT tensors aborts the process
            # ("double free or corruption"), checked with plain timm fastvit_t8: never on a CPU
            print(
                "[train] channels_last ignored on the CPU (its backward pass crashes there); it is for GPUs",
                file=sys.stderr,
            )
        return False
    return mode in ("on", "auto")


def max_across_ranks(value: float, dist_info: DistInfo, device: torch.device) -> float:
    """The largest of every rank's value (the value itself outside DDP)."""
    if not dist_info.enabled:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def gather_objects(obj: Any, dist_info: DistInfo) -> list[Any]:
    """Every rank's `obj`, in rank order (`[obj]` outside DDP)."""
    if not dist_info.enabled:
        return [obj]
    import torch.distributed as dist

    gathered: list[Any] = [None] * dist_info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(dist_info: DistInfo) -> None:
    """Wait for every rank (nothing outside DDP)."""
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()


def shutdown(dist_info: DistInfo) -> None:
    """Leave the process group (nothing outside DDP)."""
    if dist_info.enabled:
        import torch.distributed as dist

        dist.destroy_process_group()
