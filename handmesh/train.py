"""Training loop of the regressor: FreiHAND-layout or custom datasets, single process or torchrun DDP.

One script covers every setting: `torchrun --nproc_per_node N train_freihand.py ...` starts N workers
(gloo on CPU, nccl on GPU) with a DistributedSampler; rank 0 alone validates, logs and writes
checkpoints. A run folder holds `config.json`, `last.pt` (every epoch), `best.pt` (lowest validation
PA-MPJPE) and TensorBoard events under `tb/`. Both checkpoints load with `handmesh.load_model` (model
config + weights; the EMA weights when EMA is on) and also carry everything `--resume` needs to continue
exactly from the last completed epoch: raw weights, optimizer, schedule, AMP scaler, EMA, epoch, step,
best score and the RNG states of every rank — all plain tensors/numbers (`weights_only=True`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handmesh import config as cfgutil
from handmesh.errors import HandmeshError, MissingFileError

TRAIN_FORMAT = "handmesh-train"


@dataclass
class TrainConfig:
    """Everything about a training run except the model itself (that is `ModelConfig`)."""

    data: str = ""
    out: str = "runs/train"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    # Weights of the loss terms (handmesh.losses). 3D terms are L1 in metres (~0.01-0.04 at the start),
    # 2D ~0.15, rotations ~0.1, betas ~1: the hand-frame 3D terms lead (articulation is what the
    # aligned metrics measure), the camera-frame ones also teach the global rotation, shape is
    # down-weighted because it is the least visible label.
    loss_joints3d: float = 5.0
    loss_vertices: float = 5.0
    loss_joints3d_local: float = 20.0
    loss_vertices_local: float = 20.0
    loss_joints2d: float = 2.0
    loss_mano_pose: float = 2.0
    loss_mano_betas: float = 0.05
    loss_betas_prior: float = 1e-3
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    amp: str = "auto"  # auto (bf16 on GPU, off on CPU) | bf16 | fp16 | off
    channels_last: str = "auto"  # auto/on: on a GPU (never on a CPU, see _channels_last) | off
    ema_decay: float | None = None  # e.g. 0.999; None = no EMA
    workers: int = 4
    seed: int = 0
    val_fraction: float = 0.05
    augment: bool = True
    log_every: int = 20  # optimizer steps between TensorBoard scalars
    ckpt_every: int = 1  # epochs between last.pt writes (the final epoch is always written)
    image_grid: int = 8  # validation samples rendered into TensorBoard; 0 = none
    time_budget_min: float | None = None  # stop (and end the cosine decay) after this many minutes
    deterministic: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    progress: bool = True

    def loss_weights(self) -> dict[str, float]:
        """Loss term name -> weight."""
        names = (
            "joints3d",
            "vertices",
            "joints3d_local",
            "vertices_local",
            "joints2d",
            "mano_pose",
            "mano_betas",
            "betas_prior",
        )
        return {name: float(getattr(self, "loss_" + name)) for name in names}


# ----------------------------------------------------------------------------- datasets


def build_datasets(
    cfg: TrainConfig, img_size: int
) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """Training and validation sets of the folder (FreiHAND layout or custom annotations.jsonl, detected
    from its files); the validation split is held out by sample id and never augmented."""
    from handmesh.data import AugmentConfig, open_dataset

    common = {
        "cfg": AugmentConfig(img_size=img_size),
        "val_fraction": cfg.val_fraction,
        "split_seed": cfg.seed,
    }
    return (
        open_dataset(cfg.data, "train", augment=cfg.augment, **common),
        open_dataset(cfg.data, "val", augment=False, **common),
    )


# ----------------------------------------------------------------------------- distributed + devices


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


# ----------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) generator states as tensors and plain lists."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": [
            np_name,
            torch.from_numpy(np_keys.astype(np.int64)),
            int(np_pos),
            int(np_has_gauss),
            float(np_gauss),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    py_version, py_internal, py_gauss = state["python"]
    random.setstate((int(py_version), tuple(int(x) for x in py_internal), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state(
        (np_name, np_keys.numpy().astype(np.uint32), int(np_pos), int(np_has_gauss), float(np_gauss))
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- checkpoints


def read_train_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint (last.pt/best.pt) and check that it can be resumed."""
    from handmesh.checkpoint import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no checkpoint to resume at {path} (run training with --out first)")
    payload = load_checkpoint(path)
    if not isinstance(payload, dict) or TRAIN_FORMAT not in payload:
        raise HandmeshError(f"{path} is a model file without training state; it cannot be resumed")
    return payload


def check_resume_compatible(payload: dict[str, Any], model_cfg: Any, explicit: set[str], path: Path) -> Any:
    """The checkpoint's model config, unless the user explicitly asked for a different model."""
    from handmesh.models import ModelConfig

    saved = cfgutil.from_dict(ModelConfig, payload["model_config"], strict=False)
    for name in sorted(explicit):
        want, have = getattr(model_cfg, name), getattr(saved, name)
        if want != have:
            raise HandmeshError(
                f"cannot resume {path}: it was trained with {name}={have!r} but {name}={want!r} was asked; "
                "drop the option or start a new --out folder"
            )
    return saved


# ----------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    cfg: TrainConfig,
    img_size: int,
    device: torch.device,
    autocast: Callable[[], Any],
    channels_last: bool,
) -> dict[str, Any]:
    """Validation loss and, on samples with 3D joints and vertices, the official metrics."""
    from handmesh.evaluate import predict_camera_space
    from handmesh.losses import compute_losses
    from handmesh.metrics import score_arrays

    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    preds_j, preds_v, gts_j, gts_v = [], [], [], []
    first: dict[str, Any] | None = None
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        images = batch["image"]
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast():
            joints, verts, out = predict_camera_space(model, images, batch["K"], img_size)
        losses = compute_losses(out, batch, cfg.loss_weights(), img_size)
        n = images.shape[0]
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + float(value) * n
        count += n
        full = (batch["has_joints3d"] > 0.5) & (batch["has_vertices"] > 0.5)
        preds_j.append(joints[full].cpu())
        preds_v.append(verts[full].cpu())
        gts_j.append(batch["joints3d"][full].float().cpu())
        gts_v.append(batch["vertices"][full].float().cpu())
        if first is None:
            first = {
                "image": images[: cfg.image_grid].float().cpu(),
                "K": batch["K"][: cfg.image_grid].cpu(),
                "vertices": verts[: cfg.image_grid].cpu(),
            }
    model.train(was_training)
    result: dict[str, Any] = {"loss_" + k: v / max(count, 1) for k, v in sums.items()}
    result["num_samples"] = count
    pj = torch.cat(preds_j) if preds_j else torch.zeros(0, 21, 3)
    if len(pj):
        scores = score_arrays(
            pj.double().numpy(),
            torch.cat(preds_v).double().numpy(),
            torch.cat(gts_j).double().numpy(),
            torch.cat(gts_v).double().numpy(),
        )
        result.update({k: float(v) for k, v in scores.items()})
    result["_first"] = first
    return result


def render_grid(first: dict[str, Any], faces: np.ndarray, min_tile: int = 160) -> np.ndarray:
    """Predicted meshes drawn over the validation inputs, as one (3,H,W) uint8 grid (tiles >= min_tile px)."""
    import cv2
    import torchvision

    from handmesh.render import RIGHT_COLOR, MeshRenderer

    images = first["image"]
    up = max(1, math.ceil(min_tile / images.shape[-1]))  # small training inputs are upscaled to be legible
    size = images.shape[-1] * up
    renderer = MeshRenderer(size, size)
    tiles = []
    try:
        for img, K, verts in zip(images, first["K"], first["vertices"], strict=True):
            frame = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_NEAREST)
            K_up = K.double().numpy().copy()
            K_up[:2] *= up
            K_up[:2, 2] += (up - 1) / 2.0  # pixel centres sit at integer coordinates (OpenCV)
            drawn = renderer.overlay(frame, [(verts.numpy(), faces, RIGHT_COLOR)], K_up, 0.6)
            tiles.append(torch.from_numpy(np.ascontiguousarray(drawn)).permute(2, 0, 1))
    finally:
        renderer.close()
    return torchvision.utils.make_grid(torch.stack(tiles), nrow=min(4, len(tiles))).numpy()


# ----------------------------------------------------------------------------- the loop


def _amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    mode = cfg.amp
    if mode == "auto":
        mode = "bf16" if device.type == "cuda" else "off"
    if mode not in ("bf16", "fp16", "off"):
        raise HandmeshError(f"amp must be auto, bf16, fp16 or off, not {cfg.amp!r}")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[mode]


def _channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.channels_last not in ("auto", "on", "off"):
        raise HandmeshError(f"channels_last must be auto, on or off, not {cfg.channels_last!r}")
    if device.type != "cuda":
        if cfg.channels_last == "on":
            # torch 2.14's CPU convolution backward on channels-last FastViT tensors aborts the process
            # ("double free or corruption"), checked with plain timm fastvit_t8: never on a CPU
            _log("channels_last ignored on the CPU (its backward pass crashes there); it is for GPUs")
        return False
    return cfg.channels_last in ("on", "auto")


def _faces_of(model: torch.nn.Module) -> np.ndarray | None:
    for owner in (model, getattr(model, "hand", None), getattr(model, "hand_model", None)):
        faces = getattr(owner, "faces", None) if owner is not None else None
        if faces is not None:
            return np.asarray(faces.cpu() if torch.is_tensor(faces) else faces, dtype=np.int64)
    return None


def _max_across_ranks(value: float, dist_info: DistInfo, device: torch.device) -> float:
    """The largest of every rank's value (the value itself outside DDP)."""
    if not dist_info.enabled:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


# consecutive non-finite losses/gradients before a run stops as diverged (single ones are skipped)
MAX_BAD_STEPS = 20


def _log(msg: str) -> None:
    print(f"[train] {msg}", file=sys.stderr, flush=True)


class Trainer:
    """One training run: everything built from the configs (and restored from a checkpoint on resume),
    then `fit()` runs the epochs. Use `train()` unless you need the pieces."""

    def __init__(
        self,
        cfg: TrainConfig,
        model_cfg: Any,
        resume: str | Path | None = None,
        datasets: tuple[torch.utils.data.Dataset, torch.utils.data.Dataset] | None = None,
        explicit_model_fields: set[str] | None = None,
    ):
        from handmesh.models import build_model
        from handmesh.optim import ModelEMA, WarmupCosine, build_optimizer

        self.t_start = time.perf_counter()
        self.cfg = cfg
        self.dist = init_distributed(cfg.device)
        self.device = resolve_device(cfg.device, self.dist)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.out_dir = Path(cfg.out)

        payload = None
        if resume is not None:
            payload = read_train_checkpoint(resume)
            model_cfg = check_resume_compatible(
                payload, model_cfg, explicit_model_fields or set(), Path(resume)
            )
            # the weights come from the checkpoint: the initial backbone file is not needed (or present) again
            model_cfg = dataclasses.replace(model_cfg, backbone_weights=None)

        seed_everything(cfg.seed + self.dist.rank)
        if payload is None and not model_cfg.backbone_weights and self.dist.main:
            # measured: from random weights the regressor fits its training images but barely generalizes
            # in CPU-sized budgets (bench/results/learning_diagnostics.json)
            _log(
                "the encoder starts from random weights; for FreiHAND-level accuracy pass ImageNet weights "
                "with --backbone-weights PATH (a local timm/Apple FastViT checkpoint)"
            )
        self.model = build_model(**cfgutil.to_dict(model_cfg)).to(self.device)
        self.model_cfg = getattr(self.model, "config", model_cfg)
        self.img_size = int(self.model_cfg.img_size)
        freeze_hand_model(self.model)
        self.channels_last = _channels_last(cfg, self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

        train_set, val_set = datasets if datasets is not None else build_datasets(cfg, self.img_size)
        self._make_loaders(train_set, val_set)

        self.optimizer = build_optimizer(self.model, cfg.lr, cfg.weight_decay)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        warmup = round(cfg.warmup_epochs * self.steps_per_epoch)
        self.scheduler = WarmupCosine(self.optimizer, self.total_steps, warmup, cfg.min_lr_ratio)
        self.amp_dtype = _amp_dtype(cfg, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.ema = ModelEMA(self.model, cfg.ema_decay) if cfg.ema_decay else None
        self.loss_weights = cfg.loss_weights()

        self.epoch, self.step, self.best, self.elapsed_before, self.finished = 0, 0, math.inf, 0.0, False
        self.bad_steps = 0  # consecutive steps skipped for a non-finite loss or gradient
        self.history: list[dict[str, Any]] = []
        if payload is not None:
            self._restore(payload[TRAIN_FORMAT])
            if self.dist.main:
                _log(f"resumed {resume} at epoch {self.epoch}, step {self.step}")

        self.train_model: torch.nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.faces = _faces_of(self.model)
        self.writer = None
        self._grid_warned = False

    # ------------------------------------------------------------------ setup

    def _make_loaders(self, train_set: torch.utils.data.Dataset, val_set: torch.utils.data.Dataset) -> None:
        cfg, dist_info = self.cfg, self.dist
        if len(train_set) == 0:
            raise HandmeshError(f"no training samples in {cfg.data}")
        # shuffling draws from its own generator, saved in checkpoints, so a resumed run sees the same order
        self.loader_gen = torch.Generator().manual_seed(cfg.seed)
        self.sampler = None
        if dist_info.enabled:
            self.sampler = torch.utils.data.DistributedSampler(
                train_set,
                num_replicas=dist_info.world_size,
                rank=dist_info.rank,
                shuffle=True,
                seed=cfg.seed,
                drop_last=True,
            )
        common: dict[str, Any] = {"num_workers": cfg.workers, "pin_memory": self.device.type == "cuda"}
        drop_last = len(train_set) // dist_info.world_size >= cfg.batch_size
        self.train_loader = torch.utils.data.DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            shuffle=self.sampler is None,
            sampler=self.sampler,
            generator=self.loader_gen,
            drop_last=drop_last,
            **common,
        )
        self.val_loader = torch.utils.data.DataLoader(
            val_set,
            batch_size=cfg.batch_size,
            shuffle=False,
            generator=torch.Generator().manual_seed(cfg.seed),
            **common,
        )
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise HandmeshError(
                f"batch size {cfg.batch_size} leaves no full batch of {len(train_set)} samples"
            )

    def _restore(self, state: dict[str, Any]) -> None:
        load_own_state(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.cfg.time_budget_min is None:  # a changed --epochs moves the end of the decay
            self.scheduler.set_horizon(self.total_steps)
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            load_own_state(self.ema.module, state["ema"]["module"])
            self.ema.updates = int(state["ema"]["updates"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best, self.elapsed_before = float(state["best"]), float(state["elapsed_s"])
        self.finished = bool(state.get("finished", False))
        self.history = list(state.get("history", []))
        self.loader_gen.set_state(state["loader_generator"])
        ranks = state["rng"]
        if len(ranks) == self.dist.world_size:
            set_rng_state(ranks[self.dist.rank])
        else:  # another number of processes: fresh, but still seeded, streams
            seed_everything(self.cfg.seed + 1000 * self.epoch + self.dist.rank)

    def autocast(self):
        """The forward pass's autocast context (a no-op without AMP)."""
        dtype = self.amp_dtype or torch.float32
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.amp_dtype is not None)

    # ------------------------------------------------------------------ the run

    def fit(self, on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Run the remaining epochs; returns a summary (epochs, steps, best PA-MPJPE, images/s, times)."""
        cfg = self.cfg
        if self.dist.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            config = {"train": cfgutil.to_dict(cfg), "model": cfgutil.to_dict(self.model_cfg)}
            (self.out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
            from torch.utils.tensorboard import SummaryWriter

            purge = self.step if self.step > 0 else None
            self.writer = SummaryWriter(log_dir=str(self.out_dir / "tb"), purge_step=purge)
        self.t_run = time.perf_counter()
        self.start_step = self.step
        images_seen, loop_time = 0, 0.0
        last: dict[str, Any] = {}
        while self.epoch < cfg.epochs and not self.finished:
            stats = self._train_epoch()
            images_seen += stats["images"]
            loop_time += stats["seconds"]
            last = self._end_epoch(stats)
            if on_epoch_end is not None:
                on_epoch_end(self.epoch, last)
        if self.writer is not None:
            self.writer.close()
        best = self.best if math.isfinite(self.best) else None
        result = {
            "epochs": self.epoch,
            "steps": self.step,
            "best_pa_mpjpe_mm": best,
            "images_per_s": images_seen / loop_time if images_seen else None,
            "wall_s": time.perf_counter() - self.t_start,
            "train_elapsed_s": self.elapsed_before + time.perf_counter() - self.t_run,
            "last": last,
            "out": str(self.out_dir),
        }
        if self.dist.enabled:
            import torch.distributed as dist

            dist.destroy_process_group()
        return result

    def _train_epoch(self) -> dict[str, float]:
        cfg = self.cfg
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
        self.train_model.train()
        bar = None
        if self.dist.main and cfg.progress:
            from tqdm import tqdm

            desc = f"epoch {self.epoch + 1}/{cfg.epochs}"
            bar = tqdm(
                total=self.steps_per_epoch, desc=desc, unit="step", dynamic_ncols=True, file=sys.stderr
            )
        t0, images, loss_sum, steps = time.perf_counter(), 0, 0.0, 0
        budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else None
        for batch in self.train_loader:
            losses, grad_norm = self._train_step(batch)
            self.step += 1
            steps += 1
            loss_sum += float(losses["total"])
            images += batch["image"].shape[0] * self.dist.world_size
            rate = images / max(time.perf_counter() - t0, 1e-9)
            if budget_s is not None:
                self._follow_budget(budget_s)
            if bar is not None:
                bar.set_postfix(loss=f"{float(losses['total']):.4f}", img_s=f"{rate:.1f}")
                bar.update(1)
            if self.writer is not None and (self.step % max(1, cfg.log_every) == 0 or self.step == 1):
                for key, value in losses.items():
                    self.writer.add_scalar(f"train/loss_{key}", float(value), self.step)
                self.writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
                self.writer.add_scalar("train/grad_norm", float(grad_norm), self.step)
                self.writer.add_scalar("train/images_per_s", rate, self.step)
            if self.finished:
                break
        if bar is not None:
            bar.close()
        self.epoch += 1
        seconds = time.perf_counter() - t0
        return {
            "images": images,
            "seconds": seconds,
            "images_per_s": images / max(seconds, 1e-9),
            "train_loss": loss_sum / max(steps, 1),
        }

    def _train_step(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        from handmesh.losses import compute_losses

        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        images = batch["image"]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            out = self.train_model(images)
        losses = compute_losses(out, batch, self.loss_weights, self.img_size)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total"]).backward()
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        # A NaN/inf loss or gradient (a corrupt label, a diverging run) must not reach the weights; a NaN
        # loss term can even come with finite gradients (L1's subgradient at NaN is 0). The fp16 scaler
        # still sees the step's infs in update() and lowers its scale. Every DDP rank decides alike.
        finite = bool(
            torch.isfinite(torch.stack([losses["total"].detach().float(), grad_norm.float()])).all()
        )
        finite = _max_across_ranks(0.0 if finite else 1.0, self.dist, self.device) == 0.0
        if finite:
            self.scaler.step(self.optimizer)
            self.bad_steps = 0
        else:
            self.bad_steps += 1
            if self.bad_steps >= MAX_BAD_STEPS:
                raise HandmeshError(
                    f"training diverged: loss or gradient not finite for {self.bad_steps} steps in a row "
                    f"(step {self.step + 1}); the last checkpoint is {self.out_dir / 'last.pt'}; lower --lr, "
                    "raise --warmup-epochs or check the labels"
                )
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return {k: v.detach() for k, v in losses.items()}, grad_norm

    def _follow_budget(self, budget_s: float) -> None:
        """Fit the cosine decay's end to the time left, and stop once the budget is spent."""
        # every rank must take the same decisions (learning rate, stop): the slowest clock rules
        run_time = _max_across_ranks(time.perf_counter() - self.t_run, self.dist, self.device)
        elapsed = self.elapsed_before + run_time
        if self.step > self.scheduler.warmup_steps + 10:
            per_step = run_time / max(self.step - self.start_step, 1)
            remaining = max(0, int((budget_s - elapsed) / max(per_step, 1e-9)))
            self.scheduler.set_horizon(min(self.total_steps, self.step + remaining))
        self.finished = elapsed >= budget_s

    def _end_epoch(self, stats: dict[str, float]) -> dict[str, Any]:
        """Validate, log and checkpoint (rank 0); returns this epoch's record."""
        # RNG states are captured before validation and restored after it: validation (its data
        # pipeline may draw random numbers) then never shifts training, resumed or not.
        ranks_rng = [rng_state()]
        if self.dist.enabled:
            import torch.distributed as dist

            gathered: list[Any] = [None] * self.dist.world_size
            dist.all_gather_object(gathered, ranks_rng[0])
            ranks_rng = gathered
        record: dict[str, Any] = {}
        if self.dist.main:
            record = self._validate_and_save(stats, ranks_rng)
        set_rng_state(ranks_rng[self.dist.rank])
        if self.dist.enabled:
            import torch.distributed as dist

            dist.barrier()
        return record

    def _validate_and_save(self, stats: dict[str, float], ranks_rng: list[Any]) -> dict[str, Any]:
        cfg, writer = self.cfg, self.writer
        eval_model = self.ema.module if self.ema is not None else self.model
        val = validate(
            eval_model, self.val_loader, cfg, self.img_size, self.device, self.autocast, self.channels_last
        )
        first = val.pop("_first")
        metric = val.get("pa_mpjpe_mm", val.get("loss_total", math.inf))
        improved = metric < self.best
        self.best = min(self.best, metric)
        numbers = {k: v for k, v in val.items() if isinstance(v, (int, float))}
        record = {
            "epoch": self.epoch,
            "step": self.step,
            "images_per_s": stats["images_per_s"],
            "train_loss": stats["train_loss"],
            **{"val_" + k: v for k, v in numbers.items()},
        }
        self.history.append(record)
        for key, value in numbers.items():
            writer.add_scalar(f"val/{key}", value, self.step)
        writer.add_scalar("train/epoch_images_per_s", stats["images_per_s"], self.step)
        if cfg.image_grid > 0 and first is not None and self.faces is not None:
            try:
                writer.add_image("val/meshes", render_grid(first, self.faces), self.step)
            except Exception as exc:  # noqa: BLE001 — a missing EGL must not stop training
                if not self._grid_warned:
                    _log(f"mesh image grid skipped ({type(exc).__name__}: {exc})")
                    self._grid_warned = True
        writer.flush()
        scores = ", ".join(f"{k}={val[k]:.2f}" for k in ("pa_mpjpe_mm", "pa_mpvpe_mm") if k in val)
        _log(
            f"epoch {self.epoch}/{cfg.epochs} step {self.step} val loss {val.get('loss_total', math.nan):.4f} "
            f"{scores} ({stats['images_per_s']:.1f} img/s)"
        )
        state = self._state(ranks_rng)
        if improved:
            write_checkpoint(self.out_dir / "best.pt", eval_model, state)
        if self.epoch >= cfg.epochs or self.finished or self.epoch % max(1, cfg.ckpt_every) == 0:
            write_checkpoint(self.out_dir / "last.pt", eval_model, state)
        return record

    def _state(self, ranks_rng: list[Any]) -> dict[str, Any]:
        """Everything `--resume` needs, as plain tensors and numbers."""
        ema = self.ema
        return {
            "epoch": self.epoch,
            "step": self.step,
            "best": self.best,
            "elapsed_s": self.elapsed_before + time.perf_counter() - self.t_run,
            "finished": self.finished,
            "model": own_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": None if ema is None else {"module": own_state(ema.module), "updates": ema.updates},
            "loader_generator": self.loader_gen.get_state(),
            "rng": ranks_rng,
            "train_config": cfgutil.to_dict(self.cfg),
            "history": self.history,
        }


def train(
    cfg: TrainConfig,
    model_cfg: Any,
    resume: str | Path | None = None,
    datasets: tuple[torch.utils.data.Dataset, torch.utils.data.Dataset] | None = None,
    explicit_model_fields: set[str] | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run; returns a summary (epochs, steps, best PA-MPJPE, images/s, wall time)."""
    trainer = Trainer(cfg, model_cfg, resume, datasets, explicit_model_fields)
    return trainer.fit(on_epoch_end)


def write_checkpoint(path: Path, model: torch.nn.Module, state: dict[str, Any]) -> None:
    """One file `handmesh.load_model` reads (config + weights) that also carries the training state."""
    from handmesh.checkpoint import save_checkpoint
    from handmesh.models import model_payload

    payload = model_payload(model)
    payload[TRAIN_FORMAT] = state
    save_checkpoint(path, payload)


def freeze_hand_model(model: torch.nn.Module) -> None:
    """The hand-model layer is fixed geometry: none of its tensors is trained (DDP also needs every
    trainable parameter to receive a gradient)."""
    from handmesh.models import HAND_MODEL_PREFIX

    for name, param in model.named_parameters():
        if name.startswith(HAND_MODEL_PREFIX):
            param.requires_grad_(False)


def own_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict without the hand-model layer's arrays (rebuilt from its files; MANO's may not be shared)."""
    from handmesh.models import HAND_MODEL_PREFIX

    return {k: v for k, v in module.state_dict().items() if not k.startswith(HAND_MODEL_PREFIX)}


def load_own_state(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load what `own_state` saved; anything else missing or unexpected is an error."""
    from handmesh.models import HAND_MODEL_PREFIX

    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(HAND_MODEL_PREFIX)]
    if missing or unexpected:
        raise HandmeshError(
            f"checkpoint weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )


# ----------------------------------------------------------------------------- command line

MODEL_OPTIONS = ("variant", "img_size", "backbone_weights")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh train` / train_freihand.py."""
    parser.add_argument("--variant", default=None, help="FastViT variant (default fastvit_t8)")
    parser.add_argument(
        "--img-size", dest="img_size", type=int, default=None, help="input size (default 224)"
    )
    parser.add_argument(
        "--backbone-weights",
        dest="backbone_weights",
        default=None,
        help="local ImageNet weights of the encoder (data/weights/...)",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="CKPT",
        help="continue OUT/last.pt (or the given checkpoint) from its last completed epoch",
    )
    cfgutil.add_overrides_option(parser, "override any TrainConfig or ModelConfig field (repeatable)")
    cfgutil.add_dataclass_args(parser, TrainConfig)


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, Any, Path | None, set[str]]:
    """TrainConfig, ModelConfig, checkpoint to resume (or None) and the model fields the user set."""
    from handmesh.models import ModelConfig

    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    train_over, model_over = [], []
    for item in args.overrides:
        key = item.split("=", 1)[0].strip().replace("-", "_")
        if key in train_fields:
            train_over.append(item)
        elif key in model_fields:
            model_over.append(item)
        else:
            raise HandmeshError(f"--set {item}: no TrainConfig or ModelConfig field named {key!r}")
    for name in MODEL_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            model_over.append(f"{name}={value}")
    explicit_model = {item.split("=", 1)[0].strip().replace("-", "_") for item in model_over}

    cfg = TrainConfig()
    resume_path = None
    if args.resume is not None:
        out = args.out or cfg.out
        resume_path = Path(out) / "last.pt" if args.resume == "auto" else Path(args.resume)
        if args.out is None and args.resume != "auto":
            args.out = str(resume_path.parent)
        saved = read_train_checkpoint(resume_path)[TRAIN_FORMAT]["train_config"]
        cfg = cfgutil.from_dict(TrainConfig, saved, strict=False)
    cfg = cfgutil.dataclass_from_args(cfg, args)
    cfg = cfgutil.apply_overrides(cfg, train_over)
    if not cfg.data:
        raise HandmeshError("--data DIR is required (a FreiHAND folder or a custom dataset)")
    model_cfg = cfgutil.apply_overrides(ModelConfig(), model_over)
    return cfg, model_cfg, resume_path, explicit_model


def run(args: argparse.Namespace) -> int:
    """`handmesh train`: parse the configuration and train."""
    cfg, model_cfg, resume_path, explicit = config_from_args(args)
    result = train(cfg, model_cfg, resume=resume_path, explicit_model_fields=explicit)
    if int(os.environ.get("RANK", "0")) == 0:
        printable = {k: v for k, v in result.items() if k != "last"}
        print(json.dumps(printable, indent=2))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `handmesh train`."""
    parser = subparsers.add_parser(
        "train",
        help="train the regressor (FreiHAND or a custom dataset)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of train_freihand.py (same options as `handmesh train`)."""
    from handmesh.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])
