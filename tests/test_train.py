"""Training: masked losses, schedule, a short run that learns, exact kill-and-resume, DDP, best.pt, CLI errors,
run-folder protection and the TensorBoard mesh grid."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import PoisonedLabels, tiny_train_config

from handmesh.losses import compute_losses
from handmesh.optim import WarmupCosine
from handmesh.train import TRAIN_FORMAT, TrainConfig, train
from handmesh.train.state import stale_temp_files

REPO = Path(__file__).resolve().parents[1]
IMG = 64  # the smallest input the model accepts: keeps every run here to seconds


@pytest.fixture(scope="module")
def synth_dir(make_synth_dir) -> Path:
    """A tiny FreiHAND-layout dataset from `handmesh synth` (16 training, 4 evaluation images)."""
    return make_synth_dir(train=16, eval=4, size=IMG, seed=3)


def model_config(**changes):
    from handmesh.models import ModelConfig

    return ModelConfig(variant="fastvit_t8", img_size=IMG, **changes)


# ----------------------------------------------------------------------------- units


def _fake_batch(b: int = 2) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    eye = torch.eye(3).expand(b, 16, 3, 3)
    out = {
        "joints": torch.randn(b, 21, 3, generator=g) * 0.05,
        "vertices": torch.randn(b, 778, 3, generator=g) * 0.05,
        "joints2d": torch.rand(b, 21, 2, generator=g) * IMG,
        "global_orient": eye[:, 0],
        "hand_pose": eye[:, 1:],
        "betas": torch.zeros(b, 10),
        "cam": torch.ones(b, 3),
    }
    batch = {
        "joints3d": torch.randn(b, 21, 3, generator=g) * 0.05 + torch.tensor([0, 0, 0.6]),
        "vertices": torch.randn(b, 778, 3, generator=g) * 0.05 + torch.tensor([0, 0, 0.6]),
        "joints2d": torch.rand(b, 21, 2, generator=g) * IMG,
        "mano_pose": torch.zeros(b, 48),
        "betas": torch.zeros(b, 10),
        **{k: torch.ones(b) for k in ("has_joints3d", "has_vertices", "has_joints2d", "has_mano")},
    }
    return out, batch


def test_losses_are_masked_per_sample_and_root_relative():
    out, batch = _fake_batch(2)
    weights = TrainConfig().loss_weights()
    only_first = {k: (v[:1] if torch.is_tensor(v) else v) for k, v in batch.items()}
    ref = compute_losses({k: v[:1] for k, v in out.items()}, only_first, weights, IMG)
    # sample 1 carries garbage labels but every mask is off: the losses are sample 0's alone
    for key in ("joints3d", "vertices", "joints2d", "mano"):
        batch[key if key != "mano" else "mano_pose"][1] = 1e3
        batch["has_" + key][1] = 0.0
    batch["betas"][1] = 5.0
    masked = compute_losses(out, batch, weights, IMG)
    for key in ("joints3d", "vertices", "joints2d", "mano_pose", "mano_betas"):
        assert torch.allclose(masked[key], ref[key]), key
    # 3D terms ignore translation: shifting the ground truth changes nothing
    shifted = dict(only_first, joints3d=only_first["joints3d"] + 0.3, vertices=only_first["vertices"] - 0.2)
    again = compute_losses({k: v[:1] for k, v in out.items()}, shifted, weights, IMG)
    assert torch.allclose(again["joints3d"], ref["joints3d"]) and torch.allclose(
        again["vertices"], ref["vertices"]
    )
    # a perfect rotation/shape prediction has zero MANO loss; no labelled sample gives 0, not NaN
    assert float(ref["mano_pose"]) == 0.0 and float(ref["mano_betas"]) == 0.0
    none = dict(batch, has_joints3d=torch.zeros(2))
    assert float(compute_losses(out, none, weights, IMG)["joints3d"]) == 0.0


def test_hand_frame_terms_ignore_the_global_rotation():
    from handmesh.geometry import axis_angle_to_matrix, matrix_to_axis_angle

    out, batch = _fake_batch(2)
    weights = TrainConfig().loss_weights()
    batch["mano_pose"][:, :3] = torch.tensor([[0.3, -0.2, 0.1], [1.0, 0.5, -0.4]])
    ref = compute_losses(out, batch, weights, IMG)
    # turn the ground truth (points and its global orientation) by R: hand-frame terms are unchanged
    R = axis_angle_to_matrix(torch.tensor([0.4, 1.1, -0.7]))
    turned = dict(batch, joints3d=batch["joints3d"] @ R.T, vertices=batch["vertices"] @ R.T)
    turned["mano_pose"] = batch["mano_pose"].clone()
    turned["mano_pose"][:, :3] = matrix_to_axis_angle(R @ axis_angle_to_matrix(batch["mano_pose"][:, :3]))
    again = compute_losses(out, turned, weights, IMG)
    for key in ("joints3d_local", "vertices_local"):
        assert torch.allclose(again[key], ref[key], atol=1e-6), key
    assert not torch.allclose(again["joints3d"], ref["joints3d"])  # the camera-frame term does change


def test_warmup_cosine_schedule():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosine(opt, total_steps=20, warmup_steps=4, min_ratio=0.1)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(25):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))  # non-increasing after warm-up
    assert lrs[20] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.1)
    clone = WarmupCosine(opt, total_steps=1, warmup_steps=0)
    clone.load_state_dict(sched.state_dict())
    assert clone.get_last_lr() == sched.get_last_lr()


# ----------------------------------------------------------------------------- a real short run


def small_sets(synth_dir: Path, n_train: int = 4, n_val: int = 2):
    """The first few unaugmented training and validation samples."""
    from torch.utils.data import Subset

    from handmesh.data.freihand import FreiHANDDataset, HoldOut
    from handmesh.data.transforms import AugmentConfig

    aug = AugmentConfig(img_size=IMG)
    train_set = FreiHANDDataset(synth_dir, "train", aug, augment=False, held_out=HoldOut(0.25))
    val_set = FreiHANDDataset(synth_dir, "val", aug, held_out=HoldOut(0.25))
    return Subset(train_set, range(n_train)), Subset(val_set, range(n_val))


EPOCHS = 12  # of the short run


@pytest.fixture(scope="module")
def short_run(synth_dir, tmp_path_factory):
    """Twelve one-step epochs on the same 4 images (no augmentation): the loss must fall."""
    out = tmp_path_factory.mktemp("run")
    history = []
    # a two-step warm-up, as every real run has one: the first full-rate AdamW step overshoots the camera;
    # twelve steps because the keypoint head's terms (its 2D keypoints, the camera) fall more slowly at first
    cfg = tiny_train_config(synth_dir, out, epochs=EPOCHS, augment=False, ckpt_every=4, warmup_epochs=2)
    result = train(
        cfg,
        model_config(),
        datasets=small_sets(synth_dir),
        on_epoch_end=lambda epoch, rec: history.append(rec),
    )
    return out, result, history


def test_short_run_lowers_the_loss(short_run):
    out, result, history = short_run
    assert result["epochs"] == EPOCHS and len(history) == EPOCHS
    first, last = history[0]["train_loss"], history[-1]["train_loss"]
    assert last < 0.7 * first, [h["train_loss"] for h in history]
    assert (out / "config.json").is_file()
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["epochs"] == EPOCHS and saved["model"]["variant"] == "fastvit_t8"


def test_best_checkpoint_is_lowest_validation_pa_mpjpe(short_run, synth_dir):
    from handmesh.checkpoint import load_checkpoint
    from handmesh.models import load_model

    out, result, history = short_run
    scores = [h["val_pa_mpjpe_mm"] for h in history]
    best_epoch = 1 + min(range(len(scores)), key=scores.__getitem__)
    best = load_checkpoint(out / "best.pt")[TRAIN_FORMAT]
    assert best["epoch"] == best_epoch and best["best"] == pytest.approx(min(scores))
    assert result["best_pa_mpjpe_mm"] == pytest.approx(min(scores))
    assert load_checkpoint(out / "last.pt")[TRAIN_FORMAT]["epoch"] == EPOCHS
    # both files are ordinary model files too, and model.pt is best.pt's model without the training state
    for name in ("best.pt", "last.pt", "model.pt"):
        model = load_model(out / name)
        assert model.config.img_size == IMG
        assert model(torch.rand(1, 3, IMG, IMG))["vertices"].shape == (1, 778, 3)
    shared = load_checkpoint(out / "model.pt")
    assert TRAIN_FORMAT not in shared and shared["extra"]["epoch"] == best_epoch
    best_weights = load_checkpoint(out / "best.pt")["state_dict"]
    assert all(torch.equal(v, best_weights[k]) for k, v in shared["state_dict"].items())
    assert (out / "model.pt").stat().st_size < 0.6 * (out / "best.pt").stat().st_size
    # every file says what it was trained on, which the demo shows beside the model's name
    from handmesh.models.model_file import training_note

    note = training_note(shared)
    assert note.startswith(f"trained on {synth_dir}, ")
    assert f"epoch {best_epoch} of {EPOCHS}" in note and "validation PA-MPJPE" in note
    assert training_note(load_checkpoint(out / "last.pt")).startswith("trained on ")
    assert training_note({"extra": {}}) == "training data not recorded in the file"


def test_tensorboard_has_losses_lr_metrics_and_mesh_grid(short_run, synth_dir, egl):
    import numpy as np
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _, history = short_run
    events = EventAccumulator(str(out / "tb"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {
        "train/loss_total",
        "train/lr",
        "val/pa_mpjpe_mm",
        "val/pa_mpvpe_mm",
        "val/pa_f5",
        "val/pa_f15",
    } <= scalars
    grids = events.Images("val/meshes")
    assert len(grids) == len(history)  # one grid per validation
    import cv2

    grid = cv2.imdecode(np.frombuffer(grids[-1].encoded_image_string, np.uint8), cv2.IMREAD_COLOR)
    # image_grid=2 tiles of 64 px upscaled to >= 160 px (3x: 192) side by side, 2 px padding
    assert grid.shape[:2] == (192 + 4, 2 * 192 + 6)
    # each tile is its validation input (nearest-upscaled 3x) with a mesh drawn over part of it
    _, val_set = small_sets(synth_dir)
    for i in range(2):
        tile = cv2.cvtColor(grid[2:194, 2 + i * 194 : 194 + i * 194], cv2.COLOR_BGR2RGB)
        image = (val_set[i]["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        plain = cv2.resize(image, (192, 192), interpolation=cv2.INTER_NEAREST)
        drawn = np.abs(tile.astype(int) - plain.astype(int)).max(axis=2) > 8
        assert 0.01 < drawn.mean() < 0.95, drawn.mean()


def test_mesh_grid_without_a_renderer_is_skipped_once_but_drawing_errors_propagate(monkeypatch, capsys):
    import numpy as np

    import handmesh.train.preview as preview
    from handmesh.train.preview import MeshGrid, Preview

    sample = Preview(torch.rand(2, 3, 64, 64), torch.eye(3).expand(2, 3, 3), torch.zeros(2, 778, 3))
    calls = []

    def no_egl(size):
        calls.append(size)
        raise ImportError("Unable to load EGL library")

    monkeypatch.setattr(preview, "open_renderer", no_egl)
    grid = MeshGrid(np.zeros((1, 3), np.int64))
    assert grid(sample) is None and grid(sample) is None
    assert len(calls) == 1  # not retried every epoch
    assert capsys.readouterr().err.count("mesh image grid off") == 1

    class Broken:
        def overlay(self, *args, **kwargs):
            raise TypeError("a bug in the drawing code")

        def close(self):
            calls.append("closed")

    monkeypatch.setattr(preview, "open_renderer", lambda size: Broken())
    with pytest.raises(TypeError, match="bug"):
        MeshGrid(np.zeros((1, 3), np.int64))(sample)
    assert calls[-1] == "closed"


def test_resume_with_another_variant_fails_clearly(short_run, synth_dir, capsys, monkeypatch):
    from handmesh.cli import main

    out, _, _ = short_run
    reads = _count_checkpoint_reads(monkeypatch)
    code = main(
        ["train", "--data", str(synth_dir), "--out", str(out), "--resume", "--variant", "fastvit_s12"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "fastvit_t8" in err[-1] and "fastvit_s12" in err[-1] and len(err) == 1
    assert reads == [out / "last.pt"]  # the run plan reads the checkpoint once, the trainer never again


def test_resume_of_a_model_only_file_fails_clearly(tmp_path, synth_dir, capsys):
    from handmesh.cli import main
    from handmesh.models import build_model, save_model

    save_model(build_model("fastvit_t8", img_size=IMG), tmp_path / "model.pt")
    code = main(
        ["train", "--data", str(synth_dir), "--out", str(tmp_path), "--resume", str(tmp_path / "model.pt")]
    )
    assert code == 2
    assert "cannot be resumed" in capsys.readouterr().err


def test_resume_keeps_the_recorded_hand_model_kind(tmp_path):
    """A resumed run rebuilds the hand model its weights were trained against (recorded once per file)."""
    from handmesh.models import build_model, model_payload
    from handmesh.train.plan import load_resume_point
    from handmesh.train.state import write_train_checkpoint

    model = build_model("fastvit_t8", img_size=IMG)
    write_train_checkpoint(tmp_path / "last.pt", model, {"train_config": {}, "epoch": 0})
    point = load_resume_point(tmp_path / "last.pt")
    assert point.hand_model_kind == model.hand_model.kind and point.model_config == model.config
    payload = model_payload(model)
    other = "mano" if model.hand_model.kind == "standin" else "standin"
    torch.save(
        dict(payload, hand_model_kind=other, **{TRAIN_FORMAT: {"train_config": {}}}), tmp_path / "x.pt"
    )
    assert load_resume_point(tmp_path / "x.pt").hand_model_kind == other


# ----------------------------------------------------------------------------- exact resume


class _Killed(Exception):
    pass


# data kind -> (--data, settings): a folder; the endless stream; the foreground cache, whose 6-image epochs
# cross its end (CACHE_COUNT = 4) so that the second epoch draws version 1
RESUME_DATA = {
    "folder": ("{synth_dir}", {}),
    "synth": ("synth:named_pose_prob=1.0", {"epoch_images": 8, "val_images": 4}),
    "cache": ("cache:{cache_dir}", {"epoch_images": 6, "val_images": 2, "batch_size": 3}),
}


@pytest.mark.parametrize("kind", ["folder", "synth", pytest.param("cache", marks=pytest.mark.slow)])
def test_kill_and_resume_gives_identical_weights(kind, request, tmp_path, restore_determinism):
    """Two epochs straight == one epoch, killed, resumed for the second: weights, EMA weights and the
    optimizer's moments equal to the bit, on every kind of training data."""
    from handmesh.checkpoint import load_checkpoint

    spec, settings = RESUME_DATA[kind]
    fixtures = {name: request.getfixturevalue(name) for name in ("synth_dir", "cache_dir") if name in spec}
    data = spec.format(**fixtures)

    # augmentation on (its random draws must be restored too), EMA on, deterministic CPU kernels
    def cfg(out):
        return tiny_train_config(data, out, ema_decay=0.9, deterministic=True, image_grid=0, **settings)

    train(cfg(tmp_path / "straight"), model_config())

    def kill_after_first(epoch, _record):
        if epoch == 1:
            raise _Killed

    with pytest.raises(_Killed):
        train(cfg(tmp_path / "resumed"), model_config(), on_epoch_end=kill_after_first)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")[TRAIN_FORMAT]["epoch"] == 1
    train(cfg(tmp_path / "resumed"), model_config(), resume=tmp_path / "resumed" / "last.pt")

    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    steps = 2 * settings["epoch_images"] // cfg(tmp_path).batch_size if settings else a[TRAIN_FORMAT]["step"]
    assert a[TRAIN_FORMAT]["step"] == b[TRAIN_FORMAT]["step"] == steps > 0
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name
    for name, value in a[TRAIN_FORMAT]["model"].items():
        assert torch.equal(value, b[TRAIN_FORMAT]["model"][name]), name
    opt_a, opt_b = a[TRAIN_FORMAT]["optimizer"]["state"], b[TRAIN_FORMAT]["optimizer"]["state"]
    for idx in opt_a:
        assert torch.equal(opt_a[idx]["exp_avg"], opt_b[idx]["exp_avg"])


# ----------------------------------------------------------------------------- DDP


def test_two_process_gloo_ddp_run_writes_a_checkpoint(synth_dir, tmp_path):
    from handmesh.checkpoint import load_checkpoint

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "train_freihand.py"),
        "--data",
        str(synth_dir),
        "--out",
        str(tmp_path / "ddp"),
        "--img-size",
        str(IMG),
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-progress",
        "--image-grid",
        "0",
        "--set",
        "val_fraction=0.25",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = load_checkpoint(tmp_path / "ddp" / "last.pt")[TRAIN_FORMAT]
    # 12 training images over 2 ranks x batch 2: 3 steps, one RNG state per rank
    assert state["epoch"] == 1 and state["step"] == 3 and len(state["rng"]) == 2


def _count_checkpoint_reads(monkeypatch) -> list:
    """Every file torch.load reads from now on, whoever calls it: a module that imported
    `load_checkpoint` by name, or one that calls torch.load itself, is seen too."""
    reads, real = [], torch.load

    def counting(f, *args, **kwargs):
        reads.append(Path(f) if isinstance(f, str | os.PathLike) else f)
        return real(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    return reads


def test_time_budget_stops_the_run_and_marks_it_finished(synth_dir, tmp_path, monkeypatch):
    from handmesh.checkpoint import load_checkpoint

    sets = small_sets(synth_dir, n_train=8)
    cfg = tiny_train_config(synth_dir, tmp_path, epochs=50, batch_size=2, time_budget_min=1e-4, image_grid=0)
    result = train(cfg, model_config(), datasets=sets)
    state = load_checkpoint(tmp_path / "last.pt")[TRAIN_FORMAT]
    assert result["steps"] == 1 and state["finished"] and state["epoch"] == 1
    # resuming a finished run does nothing, and reads its checkpoint once
    reads = _count_checkpoint_reads(monkeypatch)
    again = train(cfg, model_config(), datasets=sets, resume=tmp_path / "last.pt")
    assert again["steps"] == 1 and reads == [tmp_path / "last.pt"]
    # a larger budget continues the finished run (here to the end of its second epoch)
    longer = dataclasses.replace(cfg, epochs=2, time_budget_min=60.0)
    more = train(longer, model_config(), datasets=sets, resume=tmp_path / "last.pt")
    assert more["epochs"] == 2 and more["steps"] > 1
    assert not load_checkpoint(tmp_path / "last.pt")[TRAIN_FORMAT]["finished"]


def test_resume_applies_another_learning_rate_and_weight_decay(synth_dir, tmp_path):
    from handmesh.checkpoint import load_checkpoint

    sets = small_sets(synth_dir, n_train=4)
    cfg = tiny_train_config(synth_dir, tmp_path, epochs=1, batch_size=2, image_grid=0)
    train(cfg, model_config(), datasets=sets)
    changed = dataclasses.replace(cfg, epochs=2, lr=3e-3, weight_decay=0.05)
    train(changed, model_config(), datasets=sets, resume=tmp_path / "last.pt")
    state = load_checkpoint(tmp_path / "last.pt")[TRAIN_FORMAT]
    assert state["epoch"] == 2 and state["scheduler"]["base_lrs"] == [3e-3, 3e-3]
    groups = state["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]  # biases and norms stay undecayed


def test_non_finite_gradients_are_skipped_and_a_diverged_run_stops(synth_dir, tmp_path, monkeypatch):
    import handmesh.train.trainer as train_mod
    from handmesh.checkpoint import load_checkpoint
    from handmesh.errors import HandmeshError

    train_set, val_set = small_sets(synth_dir)
    cfg = tiny_train_config(synth_dir, tmp_path / "one", epochs=2, batch_size=1, image_grid=0)
    train(cfg, model_config(), datasets=(PoisonedLabels(train_set, [1]), val_set))  # one bad sample
    state = load_checkpoint(tmp_path / "one" / "last.pt")
    weights = [v for v in state["state_dict"].values() if torch.is_tensor(v) and v.is_floating_point()]
    assert weights and all(bool(torch.isfinite(w).all()) for w in weights)

    monkeypatch.setattr(train_mod, "MAX_BAD_STEPS", 3)
    cfg = tiny_train_config(synth_dir, tmp_path / "all", epochs=2, batch_size=1, image_grid=0)
    with pytest.raises(HandmeshError, match="diverged"):
        train(cfg, model_config(), datasets=(PoisonedLabels(train_set, range(4)), val_set))


# ----------------------------------------------------------------------------- the run folder


def _killed_checkpoint_write(folder: Path) -> Path:
    """Run `save_checkpoint` in a child process that dies (os._exit) in the middle of writing last.pt."""
    code = (
        "import os, sys, torch\n"
        "from handmesh.checkpoint import save_checkpoint\n"
        "def dying_save(obj, fh):\n"
        "    fh.write(b'partial'); fh.flush(); os._exit(9)\n"
        "torch.save = dying_save\n"
        "save_checkpoint(sys.argv[1], {'x': 1})\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code, str(folder / "last.pt")], env=env, timeout=120)
    assert proc.returncode == 9
    (leftover,) = stale_temp_files(folder)
    return leftover


def test_a_fresh_run_into_a_used_folder_is_refused_in_one_line(synth_dir, tmp_path, capsys):
    from handmesh.cli import main
    from handmesh.errors import HandmeshError

    (tmp_path / "best.pt").write_bytes(b"another run's weights")
    code = main(["train", "--data", str(synth_dir), "--out", str(tmp_path), "--img-size", str(IMG)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "best.pt" in err[0] and "--resume" in err[0] and "--overwrite" in err[0]
    assert (tmp_path / "best.pt").read_bytes() == b"another run's weights"
    assert not (tmp_path / "config.json").exists()  # refused before anything was written
    with pytest.raises(HandmeshError, match="already holds a run"):  # the Python API refuses too
        train(tiny_train_config(synth_dir, tmp_path), model_config())


def test_overwrite_replaces_the_old_run_and_a_killed_write_is_cleaned(synth_dir, tmp_path):
    from handmesh.checkpoint import load_checkpoint

    (tmp_path / "best.pt").write_bytes(b"old")
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "events.out.tfevents.old").write_bytes(b"old curves")
    leftover = _killed_checkpoint_write(tmp_path)
    cfg = tiny_train_config(synth_dir, tmp_path, epochs=1, image_grid=0)
    train(cfg, model_config(), datasets=small_sets(synth_dir), overwrite=True)
    assert not leftover.exists() and stale_temp_files(tmp_path) == []
    assert not (tmp_path / "tb" / "events.out.tfevents.old").exists()
    assert load_checkpoint(tmp_path / "best.pt")[TRAIN_FORMAT]["epoch"] == 1

    # a resume also starts by removing what a killed write left, and keeps the run's files
    leftover = _killed_checkpoint_write(tmp_path)
    again = train(
        dataclasses.replace(cfg, epochs=2),
        model_config(),
        datasets=small_sets(synth_dir),
        resume=tmp_path / "last.pt",
    )
    assert again["epochs"] == 2 and not leftover.exists()
    assert load_checkpoint(tmp_path / "last.pt")[TRAIN_FORMAT]["epoch"] == 2


def test_a_small_validation_split_is_stated_and_best_follows_the_training_loss(synth_dir, tmp_path, capsys):
    from handmesh.checkpoint import load_checkpoint

    history = []
    cfg = tiny_train_config(synth_dir, tmp_path, epochs=3, image_grid=0, augment=False, min_val_samples=20)
    result = train(
        cfg, model_config(), datasets=small_sets(synth_dir), on_epoch_end=lambda e, r: history.append(r)
    )
    err = capsys.readouterr().err
    assert "data: 4 training samples, 2 validation samples" in err
    assert "only 2 validation sample(s)" in err and "best.pt follows the training loss" in err
    assert result["best_by"] == "training loss" and result["best_pa_mpjpe_mm"] is None
    losses = [h["train_loss"] for h in history]
    best = load_checkpoint(tmp_path / "best.pt")[TRAIN_FORMAT]
    assert best["epoch"] == 1 + losses.index(min(losses)) and best["best"] == pytest.approx(min(losses))


def test_freihand_labels_made_with_mano_are_refused_for_the_standin_unless_asked(synth_dir, tmp_path, capsys):
    import shutil

    from handmesh.cli import main
    from handmesh.hand_model import load_hand_model

    if load_hand_model().kind != "standin":
        pytest.skip("MANO is configured here: nothing to refuse")
    real = tmp_path / "freihand"
    shutil.copytree(synth_dir, real)
    (real / "handmesh_synth.json").unlink()  # no generator's note: labels made with MANO, as real FreiHAND
    args = ["train", "--data", str(real), "--img-size", str(IMG), "--epochs", "1", "--batch-size", "4"]
    args += ["--workers", "0", "--no-progress", "--image-grid", "0"]
    code = main([*args, "--out", str(tmp_path / "refused")])
    err = capsys.readouterr().err.strip().splitlines()
    from handmesh.hand_model.mano_io import mano_dir

    assert code == 2 and "labels made with MANO" in err[-1] and str(mano_dir()) in err[-1]
    assert "--train-standin-on-mano-labels" in err[-1]
    assert not (tmp_path / "refused" / "config.json").exists()
    # said explicitly: trained, with a warning that says what it means
    code = main([*args, "--out", str(tmp_path / "asked"), "--train-standin-on-mano-labels"])
    assert code == 0 and (tmp_path / "asked" / "last.pt").is_file()
    assert "training the open stand-in hand on labels made with MANO" in capsys.readouterr().err


def test_training_data_reads_each_folder_once(synth_dir, tmp_path, monkeypatch):
    """`--data` is parsed once and each folder's labels are read once: the preflight's reading is reused by
    the training and validation sets (a mix naming a folder twice reads it once too)."""
    import numpy as np
    from PIL import Image

    from handmesh.data import custom, freihand
    from handmesh.data.mix import MixedDataset
    from handmesh.train.data import build_datasets

    folder = tmp_path / "mine"
    (folder / "img").mkdir(parents=True)
    lines = []
    for i in range(4):
        Image.fromarray(np.full((96, 96, 3), 40 * i, np.uint8)).save(folder / f"img/{i}.jpg")
        keypoints = [[30.0 + 2 * j, 30.0 + j] for j in range(21)]
        lines.append(json.dumps({"image": f"img/{i}.jpg", "keypoints2d": keypoints, "box": [20, 20, 80, 80]}))
    (folder / "annotations.jsonl").write_text("\n".join(lines) + "\n")

    reads = {"freihand": 0, "custom": 0}
    init, read = freihand.FreiHANDAnnotations.__init__, custom.read_annotations

    def counted_init(self, *args, **kwargs):
        reads["freihand"] += 1
        init(self, *args, **kwargs)

    def counted_read(*args, **kwargs):
        reads["custom"] += 1
        return read(*args, **kwargs)

    monkeypatch.setattr(freihand.FreiHANDAnnotations, "__init__", counted_init)
    monkeypatch.setattr(custom, "read_annotations", counted_read)
    spec = f"0.5*{synth_dir} + 0.3*{folder} + 0.2*{synth_dir}"
    train_set, val_set = build_datasets(tiny_train_config(spec, tmp_path / "run"), IMG)
    assert isinstance(train_set, MixedDataset) and len(val_set) > 0
    assert reads == {"freihand": 1, "custom": 1}
    assert train_set[0]["image"].shape == (3, IMG, IMG)


# ----------------------------------------------------------------------------- --init (fine-tuning)


def _start_model(path: Path) -> Path:
    """A saved tiny model with a head width the defaults do not have, drawn from its own seed."""
    from handmesh.models import build_model, save_model

    torch.manual_seed(123)
    return save_model(build_model("fastvit_t8", img_size=IMG, head_hidden=64), path)


def test_init_starts_a_fresh_run_from_exactly_the_files_weights_and_records_it(synth_dir, tmp_path):
    import hashlib

    from handmesh.checkpoint import load_checkpoint
    from handmesh.models import own_state
    from handmesh.train import Trainer
    from handmesh.train.plan import plan_run

    start = _start_model(tmp_path / "start.pt")
    weights = load_checkpoint(start)["state_dict"]
    sets = small_sets(synth_dir, n_train=4)
    cfg = tiny_train_config(
        synth_dir, tmp_path / "run", epochs=1, batch_size=2, image_grid=0, init=str(start)
    )
    trainer = Trainer(plan_run(cfg, model_config()), sets)
    # step 0: the file's model configuration and every one of its tensors, a fresh optimizer and schedule
    assert trainer.model.config.head_hidden == 64 and trainer.step == 0 and not trainer.optimizer.state
    at_start = own_state(trainer.model)
    assert at_start.keys() == weights.keys()
    assert all(torch.equal(at_start[k], v) for k, v in weights.items())
    # the same run without --init (the same seed, the file's head) starts elsewhere
    plain = Trainer(plan_run(dataclasses.replace(cfg, init=None), model_config(head_hidden=64)), sets)
    assert not all(torch.equal(own_state(plain.model)[k], v) for k, v in weights.items())

    trainer.fit()
    record = {"path": str(start), "sha256": hashlib.sha256(start.read_bytes()).hexdigest()}
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["init"] == record and saved["train"]["init"] == str(start)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last[TRAIN_FORMAT]["init"] == record and last["extra"]["init"] == record
    assert last[TRAIN_FORMAT]["step"] == 2
    assert load_checkpoint(tmp_path / "run" / "model.pt")["extra"]["init"] == record


def test_init_refuses_another_architecture_a_deploy_file_and_resume(synth_dir, tmp_path, capsys):
    from handmesh.cli import main
    from handmesh.models import build_model, save_model
    from handmesh.models.reparam import reparameterize

    start = _start_model(tmp_path / "start.pt")
    base = ["train", "--data", str(synth_dir), "--out", str(tmp_path / "run"), "--init", str(start)]

    def refused(*extra: str) -> str:
        code = main([*base, *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        return err[0]

    line = refused("--variant", "fastvit_s12")
    assert "variant='fastvit_t8'" in line and "variant='fastvit_s12'" in line
    line = refused("--set", "head=pooled")
    assert "head='keypoint'" in line and "head='pooled'" in line
    line = refused("--set", "head_hidden=128")
    assert "head_hidden=64" in line and "head_hidden=128" in line
    assert "img_size=100" in refused("--img-size", "100")  # no model of that size: not a multiple of 32
    save_model(reparameterize(build_model("fastvit_t8", img_size=IMG)), tmp_path / "deploy.pt")
    base[-1] = str(tmp_path / "deploy.pt")
    assert "deploy-form" in refused()
    base[-1] = str(start)
    assert "--resume" in refused("--resume", str(start)) and not (tmp_path / "run").exists()


def test_init_at_another_input_size_keeps_the_field_of_view(tmp_path):
    from handmesh.models import ModelConfig
    from handmesh.train.plan import load_init_point, plan_run

    start = _start_model(tmp_path / "start.pt")
    cfg = TrainConfig(data="unused", out=str(tmp_path / "run"), init=str(start))
    plan = plan_run(
        cfg,
        ModelConfig(variant="fastvit_t8", img_size=96, head_dropout=0.3),
        explicit_model_fields={"img_size", "head_dropout"},
    )
    have = load_init_point(start).model_config
    assert plan.model_cfg.img_size == 96 and plan.model_cfg.head_dropout == 0.3
    assert plan.model_cfg.head_hidden == 64 and plan.model_cfg.backbone_weights is None
    assert plan.model_cfg.focal_length == pytest.approx(have.resolved_focal() * 96 / IMG)
    assert plan.init.record()["path"] == str(start)
