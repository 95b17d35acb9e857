"""The training loop: a `Trainer` executes a `RunPlan`; `train()` plans and runs in one call.

One loop covers every setting: single process, or `torchrun --nproc_per_node N` workers (gloo on CPU,
nccl on GPU) with a DistributedSampler; rank 0 alone validates, logs and writes checkpoints. A run folder
holds `config.json`, `last.pt` (every `ckpt_every` epochs), `best.pt` (lowest validation PA-MPJPE; with
fewer than `--min-val-samples` validation samples, lowest training loss instead), `model.pt` (best.pt's
model without the training state: the file to share) and TensorBoard events under `tb/`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from handmesh import config as cfgutil
from handmesh.errors import HandmeshError
from handmesh.models import load_own_state, own_state, save_model
from handmesh.train import distributed as ddp
from handmesh.train.config import TrainConfig
from handmesh.train.data import build_datasets, make_loaders, split_summary
from handmesh.train.plan import RunPlan, plan_run
from handmesh.train.preview import MeshGrid
from handmesh.train.rng import rng_state, seed_everything, set_rng_state
from handmesh.train.state import (
    MODEL_FILE,
    freeze_hand_model,
    lock_run_dir,
    prepare_run_dir,
    refuse_existing_run,
    write_train_checkpoint,
)
from handmesh.train.validation import validate

Datasets = tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]
EpochCallback = Callable[[int, dict[str, Any]], None]

# consecutive non-finite losses/gradients before a run stops as diverged (single ones are skipped)
MAX_BAD_STEPS = 20


def log(msg: str) -> None:
    """One line on stderr, marked as training's."""
    print(f"[train] {msg}", file=sys.stderr, flush=True)


def train(
    cfg: TrainConfig,
    model_cfg: Any,
    resume: str | Path | None = None,
    datasets: Datasets | None = None,
    explicit_model_fields: set[str] | None = None,
    on_epoch_end: EpochCallback | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train (or resume) a run; returns a summary (epochs, steps, best PA-MPJPE, images/s, wall time).
    A fresh run into a folder that holds checkpoints is refused unless `overwrite`."""
    plan = plan_run(cfg, model_cfg, resume, explicit_model_fields or (), overwrite)
    return Trainer(plan, datasets).fit(on_epoch_end)


class Trainer:
    """One training run: everything built from a plan (and restored on resume), then `fit()` runs it."""

    def __init__(self, plan: RunPlan, datasets: Datasets | None = None):
        from handmesh.losses import compute_losses
        from handmesh.models import build_model_from_config
        from handmesh.optim import ModelEMA, WarmupCosine, build_optimizer

        self.t_start = time.perf_counter()
        self.plan, self.cfg = plan, plan.cfg
        cfg = self.cfg
        self.dist = ddp.init_distributed(cfg.device)
        self.device = ddp.resolve_device(cfg.device, self.dist)
        ddp.select_kernels(cfg.deterministic, self.device)
        self.out_dir = Path(cfg.out)
        seed_everything(cfg.seed + self.dist.rank)
        if (
            plan.resume is None
            and plan.init is None
            and not plan.model_cfg.backbone_weights
            and self.dist.main
        ):
            # measured: from random weights the regressor fits its training images but barely generalizes
            # in CPU-sized budgets (bench/results/learning_diagnostics.json)
            log(
                "the encoder starts from random weights; for FreiHAND-level accuracy pass ImageNet weights "
                "with --backbone-weights PATH (a local timm/Apple FastViT checkpoint)"
            )
        # a resumed or fine-tuned run keeps the hand model its weights were trained against, whatever is
        # configured now
        start = plan.resume or plan.init
        kind = start.hand_model_kind if start is not None else None
        self.model = build_model_from_config(plan.model_cfg, hand_model_kind=kind).to(self.device)
        # where the weights started (path and sha256): recorded in config.json and every checkpoint
        self.init_record = plan.init.record() if plan.init is not None else None
        if plan.init is not None:
            load_own_state(self.model, plan.init.state_dict, f"--init {plan.init.path}")
            if self.dist.main:
                log(f"starting from the weights of {plan.init.path} (sha256 {plan.init.sha256[:12]})")
        self.model_cfg = self.model.config
        self.img_size = int(self.model_cfg.img_size)
        freeze_hand_model(self.model)
        self.channels_last = ddp.use_channels_last(cfg.channels_last, self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

        hand_kind = getattr(getattr(self.model, "hand_model", None), "kind", None)
        train_set, val_set = (
            datasets if datasets is not None else build_datasets(cfg, self.img_size, hand_kind)
        )
        summary, too_small = split_summary(cfg, train_set, val_set)
        # too few validation samples make a noisy score: best.pt then follows the training loss
        self.best_by = "training loss" if too_small else "validation"
        if self.dist.main:
            log(summary)
            if too_small:
                log(f"warning: {too_small}")
        loaders = make_loaders(cfg, train_set, val_set, self.dist, self.device)
        self.train_loader, self.val_loader = loaders.train, loaders.val
        self.sampler, self.loader_gen = loaders.sampler, loaders.generator
        self.steps_per_epoch = len(self.train_loader)
        self.optimizer = build_optimizer(self.model, cfg.lr, cfg.weight_decay)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        warmup = round(cfg.warmup_epochs * self.steps_per_epoch)
        self.scheduler = WarmupCosine(self.optimizer, self.total_steps, warmup, cfg.min_lr_ratio)
        self.amp_dtype = ddp.amp_dtype(cfg.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.ema = ModelEMA(self.model, cfg.ema_decay) if cfg.ema_decay else None
        self.compute_losses, self.loss_weights = compute_losses, cfg.loss_weights()
        self.clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf

        self.epoch, self.step, self.best, self.elapsed_before, self.finished = 0, 0, math.inf, 0.0, False
        self.bad_steps = 0  # consecutive steps skipped for a non-finite loss or gradient
        self.skipped: dict[str, int] = {}  # this epoch's skipped steps by reason
        self.history: list[dict[str, Any]] = []
        if plan.resume is not None:
            self.init_record = plan.resume.state.get("init")
            self._restore(plan.resume.state)
            if self.dist.main:
                log(f"resumed {plan.resume.path} at epoch {self.epoch}, step {self.step}")

        self.train_model: torch.nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.mesh_grid = MeshGrid(self.model.faces)
        self.writer = None
        self._lock: int | None = None  # the run folder's lock (rank 0, from _open_run_dir)

    # ------------------------------------------------------------------ the loop

    def fit(self, on_epoch_end: EpochCallback | None = None) -> dict[str, Any]:
        """Run the remaining epochs; returns a summary (epochs, steps, best PA-MPJPE, images/s, times)."""
        try:
            if self.dist.main:
                self._open_run_dir()
            self.t_run, self.start_step = time.perf_counter(), self.step
            images_seen, loop_time, last = 0, 0.0, {}
            while self.epoch < self.cfg.epochs and not self.finished:
                stats = self._train_epoch()
                images_seen += stats["images"]
                loop_time += stats["seconds"]
                last = self._end_epoch(stats)
                if on_epoch_end is not None:
                    on_epoch_end(self.epoch, last)
            if self.writer is not None:
                self.writer.close()
        finally:
            if self._lock is not None:  # the run folder is free for the next run (resume) in this process
                os.close(self._lock)
                self._lock = None
        ddp.shutdown(self.dist)
        return {
            "epochs": self.epoch,
            "steps": self.step,
            "best_pa_mpjpe_mm": self.best
            if math.isfinite(self.best) and self.best_by == "validation"
            else None,
            "best_by": self.best_by,
            "images_per_s": images_seen / loop_time if images_seen else None,
            "wall_s": time.perf_counter() - self.t_start,
            "train_elapsed_s": self.elapsed_before + time.perf_counter() - self.t_run,
            "last": last,
            "out": str(self.out_dir),
        }

    def _train_epoch(self) -> dict[str, float]:
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
        self.train_model.train()
        bar = self._progress_bar()
        t0, images, loss_sum, steps = time.perf_counter(), 0, 0.0, 0
        self.skipped = {}
        for batch in self.train_loader:
            losses, grad_norm = self._train_step(batch)
            self.step, steps = self.step + 1, steps + 1
            loss_sum += float(losses["total"])
            images += batch["image"].shape[0] * self.dist.world_size
            rate = images / max(time.perf_counter() - t0, 1e-9)
            if self.cfg.time_budget_min:
                self._follow_budget(self.cfg.time_budget_min * 60)
            if bar is not None:
                bar.set_postfix(loss=f"{float(losses['total']):.4f}", img_s=f"{rate:.1f}")
                bar.update(1)
            self._log_step(losses, grad_norm, rate)
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
            "steps": steps,
        }

    def _train_step(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Forward, loss, backward, clip, (skip if not finite) step, schedule, EMA."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        images = batch["image"]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            out = self.train_model(images)
        losses = self.compute_losses(out, batch, self.loss_weights, self.img_size)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total"]).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        if self._finite_on_every_rank(losses["total"], grad_norm):
            self.scaler.step(self.optimizer)
        self.scaler.update()  # the fp16 scaler still sees a skipped step's infs and lowers its scale
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return {k: v.detach() for k, v in losses.items()}, grad_norm

    def _finite_on_every_rank(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> bool:
        """False (the step is skipped) when any rank's loss or gradient is NaN/inf; too many in a row stop
        the run. A NaN loss can even come with finite gradients (L1's subgradient at NaN is 0)."""
        local = torch.isfinite(torch.stack([loss.detach().float(), grad_norm.float()]))
        finite = ddp.max_across_ranks(0.0 if bool(local.all()) else 1.0, self.dist, self.device) == 0.0
        if not finite:
            reason = (
                "non-finite loss"
                if not local[0]
                else "non-finite gradient"
                if not local[1]
                else "another rank"
            )
            self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.bad_steps = 0 if finite else self.bad_steps + 1
        if self.bad_steps >= MAX_BAD_STEPS:
            raise HandmeshError(
                f"training diverged: loss or gradient not finite for {self.bad_steps} steps in a row "
                f"(step {self.step + 1}); the last checkpoint is {self.out_dir / 'last.pt'}; lower --lr, "
                "raise --warmup-epochs or check the labels"
            )
        return finite

    def _follow_budget(self, budget_s: float) -> None:
        """Fit the cosine decay's end to the time left, and stop once the budget is spent."""
        # every rank must take the same decisions (learning rate, stop): the slowest clock rules
        run_time = ddp.max_across_ranks(time.perf_counter() - self.t_run, self.dist, self.device)
        elapsed = self.elapsed_before + run_time
        measured = self.step - self.start_step
        # the speed is measured over this process's own steps: a resumed run keeps its checkpoint's
        # horizon until 10 steps are timed (the first step alone carries the loaders' start-up)
        if self.step > self.scheduler.warmup_steps + 10 and measured > 10:
            per_step = run_time / measured
            remaining = max(0, int((budget_s - elapsed) / max(per_step, 1e-9)))
            self.scheduler.set_horizon(min(self.total_steps, self.step + remaining))
        self.finished = elapsed >= budget_s

    def _end_epoch(self, stats: dict[str, float]) -> dict[str, Any]:
        """Validate, log and checkpoint (rank 0); returns this epoch's record."""
        # RNG states are captured before validation and restored after it: validation (its data
        # pipeline may draw random numbers) then never shifts training, resumed or not.
        ranks_rng = ddp.gather_objects(rng_state(), self.dist)
        record = self._validate_and_save(stats, ranks_rng) if self.dist.main else {}
        set_rng_state(ranks_rng[self.dist.rank])
        ddp.barrier(self.dist)
        return record

    def _validate_and_save(self, stats: dict[str, float], ranks_rng: list[Any]) -> dict[str, Any]:
        cfg = self.cfg
        eval_model = self.ema.module if self.ema is not None else self.model
        val = validate(
            eval_model,
            self.val_loader,
            self.loss_weights,
            self.img_size,
            self.device,
            self.autocast,
            self.channels_last,
            preview_size=cfg.image_grid,
        )
        score = val.score if self.best_by == "validation" else stats["train_loss"]
        improved = score < self.best
        self.best = min(self.best, score)
        numbers = val.scalars()
        record = {
            "epoch": self.epoch,
            "step": self.step,
            "images_per_s": stats["images_per_s"],
            "train_loss": stats["train_loss"],
            **{"val_" + k: v for k, v in numbers.items()},
        }
        self.history.append(record)
        for key, value in numbers.items():
            self.writer.add_scalar(f"val/{key}", value, self.step)
        self.writer.add_scalar("train/epoch_images_per_s", stats["images_per_s"], self.step)
        grid = self.mesh_grid(val.preview)
        if grid is not None:
            self.writer.add_image("val/meshes", grid, self.step)
        self.writer.flush()
        scores = ", ".join(
            f"{k}={v:.2f}" for k, v in val.metrics.items() if k in ("pa_mpjpe_mm", "pa_mpvpe_mm")
        )
        log(
            f"epoch {self.epoch}/{cfg.epochs} step {self.step} val loss {val.losses.get('total', math.nan):.4f} "
            f"{scores} ({stats['images_per_s']:.1f} img/s)"
        )
        if self.skipped:
            # a label the checks let through (or a diverging run) shows here, not as a silent loss of data
            n = sum(self.skipped.values())
            reasons = ", ".join(f"{count} {why}" for why, count in sorted(self.skipped.items()))
            log(
                f"epoch {self.epoch}: skipped {n} of {stats['steps']} batch(es) ({reasons}); check the "
                "labels with `handmesh check-dataset`, or lower --lr"
            )
        record["skipped_batches"] = dict(self.skipped)
        self.writer.add_scalar("train/skipped_batches", sum(self.skipped.values()), self.step)
        state = self._state(ranks_rng)
        # what the page and `handmesh predict` say about a model: its data, epoch and validation score
        notes = {"trained_on": cfg.data, "epoch": self.epoch, "epochs": cfg.epochs, **numbers}
        if self.init_record is not None:
            notes["init"] = self.init_record
        if improved:
            write_train_checkpoint(self.out_dir / "best.pt", eval_model, state, notes)
            save_model(eval_model, self.out_dir / MODEL_FILE, extra=notes)
        if self.epoch >= cfg.epochs or self.finished or self.epoch % max(1, cfg.ckpt_every) == 0:
            write_train_checkpoint(self.out_dir / "last.pt", eval_model, state, notes)
        return record

    # ------------------------------------------------------------------ setup and state

    def autocast(self):
        """The forward pass's autocast context (a no-op without AMP)."""
        dtype = self.amp_dtype or torch.float32
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.amp_dtype is not None)

    def _open_run_dir(self) -> None:
        """Rank 0: clean the folder (stale temp files; a replaced run), write config.json, open TensorBoard."""
        self._lock = lock_run_dir(self.out_dir)
        if self.plan.resume is None:  # checked again under the lock: another run may have finished since
            refuse_existing_run(self.out_dir, self.plan.overwrite)
        removed = prepare_run_dir(self.out_dir, fresh=self.plan.resume is None)
        if removed:
            log(f"removed from {self.out_dir}: {', '.join(removed)}")
        config = {"train": cfgutil.to_dict(self.cfg), "model": cfgutil.to_dict(self.model_cfg)}
        if self.init_record is not None:
            config["init"] = self.init_record
        (self.out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        from torch.utils.tensorboard import SummaryWriter

        purge = self.step if self.step > 0 else None
        self.writer = SummaryWriter(log_dir=str(self.out_dir / "tb"), purge_step=purge)

    def _progress_bar(self) -> Any:
        if not (self.dist.main and self.cfg.progress):
            return None
        from tqdm import tqdm

        desc = f"epoch {self.epoch + 1}/{self.cfg.epochs}"
        return tqdm(total=self.steps_per_epoch, desc=desc, unit="step", dynamic_ncols=True, file=sys.stderr)

    def _log_step(self, losses: dict[str, torch.Tensor], grad_norm: torch.Tensor, rate: float) -> None:
        if self.writer is None or not (self.step % max(1, self.cfg.log_every) == 0 or self.step == 1):
            return
        for key, value in losses.items():
            self.writer.add_scalar(f"train/loss_{key}", float(value), self.step)
        self.writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
        self.writer.add_scalar("train/grad_norm", float(grad_norm), self.step)
        self.writer.add_scalar("train/images_per_s", rate, self.step)

    def _state(self, ranks_rng: list[Any]) -> dict[str, Any]:
        """Everything `--resume` needs, as plain tensors and numbers (read back by `_restore`)."""
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
            "init": self.init_record,
            "history": self.history,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        from handmesh.optim import set_weight_decay

        load_own_state(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # the checkpoint's rates unless the resume asks for others (equal when unchanged: both came
        # from the config)
        self.scheduler.set_base_lr(self.cfg.lr)
        set_weight_decay(self.optimizer, self.cfg.weight_decay)
        if self.cfg.time_budget_min is None:  # a changed --epochs moves the end of the decay
            self.scheduler.set_horizon(self.total_steps)
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            load_own_state(self.ema.module, state["ema"]["module"])
            self.ema.updates = int(state["ema"]["updates"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best, self.elapsed_before = float(state["best"]), float(state["elapsed_s"])
        # finished means the budget is spent: a resume with a larger --time-budget-min continues (the
        # cosine's end then refits to the new time left), one with the same budget does nothing
        budget = self.cfg.time_budget_min
        self.finished = budget is not None and self.elapsed_before >= budget * 60
        self.history = list(state.get("history", []))
        self.loader_gen.set_state(state["loader_generator"])
        ranks = state["rng"]
        if len(ranks) == self.dist.world_size:
            set_rng_state(ranks[self.dist.rank])
        else:  # another number of processes: fresh, but still seeded, streams
            seed_everything(self.cfg.seed + 1000 * self.epoch + self.dist.rank)
