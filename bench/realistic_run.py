"""A background training run's learning curve: held-out renders and real photos at every epoch's snapshot.

    .venv/bin/python bench/realistic_run.py runs/realistic128 --snapshots runs/snapshots \
        --run realistic_keypoint_128px --model-out bench/results/learn_realistic.pt

Reads the run's history from its last.pt (`handmesh train`: training loss and images/s per epoch) and
scores the models in `--snapshots` (copies of last.pt taken as the run went, one per epoch) on the
held-out renders of the run's data (the first `--val-images` images of its held-out seed, with a cache's
own render settings: what the trainer validates on; `--held-out SPEC` names others) beside the mean-pose
baseline on the same renders, and on the real 2D keypoint set (`handmesh bench real2d`'s protocol,
labelled boxes) beside the landmark fit. Real photos measure only: the model kept is the snapshot with the
lowest held-out PA-MPJPE. A resumed run whose earlier epochs were validated on other renders starts its
curve at `--from-epoch`, with `--start` (the checkpoint it was resumed from) scored as the first point; a
run started with `handmesh train --init MODEL` (a fine-tune) takes that model file as `--start`, and its
images seen count on from the ones the file records (`images_seen` in its notes);
`--phase EPOCH=TEXT` names the data from that epoch on. `--compare` scores other model files on the same
held-out renders (the model the run may replace), `--train-cache` scores every snapshot on the first
`--val-images` images of the cache it trained on, unaugmented (the train / held-out gap of reused
foregrounds); `--skip-real` leaves out the real photos (a probe). Scores are kept in
SNAPSHOTS/scores.json, so a rerun scores only new snapshots. Writes the run into
bench/results/learning_curve.json and the best model (weights only) to `--model-out`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handmesh.benchmarks.common import machine_info  # noqa: E402

REAL = Path("bench/realsets/keypoints")


class Scorer:
    """Held-out and real-photo scores of model files, remembered by file name and modification time."""

    def __init__(self, memo: Path | None, held: dict, held_spec: str, img_size: int, real: Path) -> None:
        self.memo = memo
        self.done: dict[str, Any] = json.loads(memo.read_text()) if memo and memo.is_file() else {}
        self.held, self.held_spec, self.img_size, self.real = held, held_spec, img_size, real
        self._fit: dict[str, Any] = {}

    def _key(self, path: Path, what: str) -> str:
        return f"{path.resolve()}@{int(path.stat().st_mtime)}:{what}"

    def _remember(self, key: str, value: Any) -> Any:
        self.done[key] = value
        if self.memo:
            self.memo.write_text(json.dumps(self.done, indent=1))
        return value

    def held_out(self, path: Path, data: dict | None = None, what: str | None = None) -> dict[str, Any]:
        """PA-MPJPE / PA-MPVPE / MPJPE (mm) on the held-out renders (or `data`), and the model's epoch."""
        key = self._key(path, what or f"held_out:{self.held_spec}")
        if key not in self.done:
            from handmesh.benchmarks.learn import score
            from handmesh.checkpoint import load_checkpoint
            from handmesh.models import load_model

            epoch = load_checkpoint(path).get("extra", {}).get("epoch")
            model = load_model(path)
            figures = score(model, self.held if data is None else data, self.img_size, "cpu")
            self._remember(key, {"epoch": epoch, **figures})
        return self.done[key]

    def fit(self, data: Path | None = None) -> dict[str, Any]:
        """The landmark fit on the real set (or another labelled folder), scored once per run of this script."""
        data = data or self.real
        if str(data) not in self._fit:
            from handmesh.benchmarks.real2d import score_run

            self._fit[str(data)] = score_run("landmark-fit", None, str(data), False, "fast")
        return self._fit[str(data)]

    def real_photos(self, path: Path, data: Path | None = None) -> dict[str, Any]:
        """The model's 2D scores on the real set (or another labelled folder) and its median against the
        fit's, hand by hand."""
        data = data or self.real
        key = self._key(path, f"2d:{data}")
        if key not in self.done:
            from handmesh.benchmarks.real2d import compare, score_run

            run = score_run("model", str(path), str(data), False, "fast")
            self._remember(key, {"scores": run["scores"], "compare": compare(run, self.fit(data))})
        return self.done[key]


def phase_of(epoch: int, phases: list[tuple[int, str]]) -> str | None:
    """The data named for an epoch by `--phase FROM=TEXT` (the last phase starting at or before it)."""
    names = [text for start, text in sorted(phases) if start <= epoch]
    return names[-1] if names else None


def parse_phase(value: str) -> tuple[int, str]:
    """'EPOCH=TEXT' -> (EPOCH, TEXT)."""
    start, sep, text = value.partition("=")
    if not sep or not start.strip().isdigit():
        raise argparse.ArgumentTypeError(f"--phase {value!r}: expected EPOCH=TEXT")
    return int(start), text.strip()


def point(figures: dict[str, Any], base: float, real: dict[str, Any] | None) -> dict[str, Any]:
    """One curve point's held-out figures, ratio to the mean pose and (measured only) real-photo figures."""
    out = {k: figures[k] for k in ("pa_mpjpe_mm", "pa_mpvpe_mm", "mpjpe_mm")}
    out["ratio_to_baseline"] = round(figures["pa_mpjpe_mm"] / base, 4)
    if real is not None:
        out["real_median_2d"] = round(real["scores"]["median_error_hand"], 4)
        out["real_pck_0.2"] = round(real["scores"]["pck_0.2"], 4)
        out["real_ratio_to_fit"] = real["compare"].get("ratio")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--run", required=True, help="name of the run in learning_curve.json")
    parser.add_argument("--snapshots", type=Path, required=True, help="folder of last.pt copies to score")
    parser.add_argument("--real", type=Path, default=REAL)
    parser.add_argument("--from-epoch", dest="from_epoch", type=int, default=1)
    parser.add_argument("--start", type=Path, default=None, help="the checkpoint the run resumed from")
    parser.add_argument("--phase", type=parse_phase, action="append", default=[], help="EPOCH=TEXT")
    parser.add_argument("--compare", type=Path, action="append", default=[], help="other model files")
    parser.add_argument("--train-cache", dest="train_cache", default=None, help="the cache trained on")
    parser.add_argument("--renders", type=Path, default=None, help="held-out renders to score in 2D")
    parser.add_argument(
        "--held-out",
        dest="held_out",
        default=None,
        help="--data spec of the held-out renders (default: the run's)",
    )
    parser.add_argument("--skip-real", dest="skip_real", action="store_true", help="no real-photo scores")
    parser.add_argument("--processes", type=int, default=2, help="training processes (for the record)")
    parser.add_argument("--init", default="random", help="where the weights started (for the record)")
    parser.add_argument("--model-out", default=None, help="write the best model (weights only) here")
    parser.add_argument("--notes", default="", help="a sentence on how the run went (data changes, resumes)")
    parser.add_argument("--json", default="bench/results/learning_curve.json")
    args = parser.parse_args()

    import torch

    from handmesh.benchmarks.learn import TARGET_RATIO, _update_results, baseline, plot
    from handmesh.checkpoint import load_checkpoint
    from handmesh.data.mix import build_training_data, held_out, load_stream_batch
    from handmesh.models import load_model, save_model
    from handmesh.train.plan import load_resume_point, resume_point
    from handmesh.train.state import TRAIN_FORMAT

    torch.set_num_threads(1)
    state_point = load_resume_point(args.run_dir / "last.pt")
    cfg, model_cfg, state = state_point.train_config, state_point.model_config, state_point.state
    size = int(model_cfg.img_size)
    # the trainer's validation set: the first val_images held-out renders of the run's data (a cache's
    # own stream settings, e.g. its subdivisions) for the run's seed, unless --held-out names others
    held_spec = args.held_out or cfg.data
    held = held_out(held_spec, cfg.val_images, size, cfg.seed)
    base = baseline(held)
    scorer = Scorer(args.snapshots / "scores.json", held, held_spec, size, args.real)
    history = {int(r["epoch"]): r for r in state["history"]}
    seen = None
    if args.train_cache:
        # foregrounds the run trained on, unaugmented (version 0 first), against the held-out renders
        train_set, _ = build_training_data(f"cache:{args.train_cache}", size, False, 0.0, cfg.seed, 1)
        seen = load_stream_batch(train_set, cfg.val_images)
        seen_base = baseline(seen)

    def trained(path: Path) -> dict[str, Any]:
        """PA-MPJPE on the trained foregrounds and its ratio to the mean pose on them."""
        figures = scorer.held_out(path, seen, f"train:{args.train_cache}")
        ratio = round(figures["pa_mpjpe_mm"] / seen_base["pa_mpjpe_mm"], 4)
        return {"trained_pa_mpjpe_mm": figures["pa_mpjpe_mm"], "trained_ratio_to_baseline": ratio}

    # images seen: epochs x epoch images; after a resume, the start's images plus its later steps at this
    # run's batch size and processes (a probe may change the epoch's size)
    start, start_notes = None, {}
    if args.start is not None:
        payload = load_checkpoint(args.start)  # read once: its notes, and its training state if any
        start_notes = payload.get("extra", {})
        # a model file without training state is the weights a fine-tune (--init) started from
        start = resume_point(args.start, payload) if TRAIN_FORMAT in payload else None
        del payload  # the weights are scored from the file later; keep only the notes and state
    init = state.get("init")
    init_images = int(start_notes.get("images_seen", 0)) if init else 0

    def images_at(epoch: int, step: int) -> int:
        if init:  # a fine-tune: the start model's images, then this run's steps from step 0
            return init_images + step * int(cfg.batch_size) * args.processes
        if start is None:
            return epoch * int(cfg.epoch_images)
        # by steps (a time budget may have cut the start's last epoch short), at the start's batch size
        start_images = int(start.state["step"]) * int(start.train_config.batch_size) * args.processes
        return start_images + (step - int(start.state["step"])) * int(cfg.batch_size) * args.processes

    curve: list[dict[str, Any]] = []
    if args.start is not None:
        figures = scorer.held_out(args.start)
        curve.append(
            {
                "images_seen": images_at(0, 0 if start is None else int(start.state["step"])),
                "epoch": figures["epoch"],
                "data": "the model fine-tuned from (--init)" if init else "the checkpoint resumed from",
                **point(
                    figures, base["pa_mpjpe_mm"], None if args.skip_real else scorer.real_photos(args.start)
                ),
                **(trained(args.start) if seen is not None else {}),
            }
        )
    snapshots: dict[int, Path] = {}
    for path in sorted(args.snapshots.glob("*.pt"), key=lambda p: p.stat().st_mtime):
        figures = scorer.held_out(path)
        if figures["epoch"] is None or figures["epoch"] < args.from_epoch:
            continue
        epoch = int(figures["epoch"])
        snapshots[epoch] = path
        record = history.get(epoch, {})
        real = None if args.skip_real else scorer.real_photos(path)
        entry = {
            "images_seen": images_at(epoch, int(record.get("step", 0))),
            "epoch": epoch,
            "data": phase_of(epoch, args.phase),
        }
        entry |= point(figures, base["pa_mpjpe_mm"], real)
        if seen is not None:
            entry |= trained(path)
        if record:
            entry["trainer_val_pa_mpjpe_mm"] = round(record["val_pa_mpjpe_mm"], 3)
            entry["train_loss"] = round(record["train_loss"], 5)
            entry["images_per_s"] = round(record["images_per_s"], 2)
        curve.append(entry)
        print(f"epoch {epoch}: {json.dumps(entry)}", flush=True)
    scored = [p for p in curve if p["epoch"] in snapshots]
    best = min(scored, key=lambda p: p["pa_mpjpe_mm"]) if scored else None
    entry: dict[str, Any] = {
        "settings": {
            "command": "torchrun --nproc_per_node 2 train_freihand.py (one thread per process), "
            + (f"started with --init {init['path']}" if init else "resumed with --resume"),
            "data": cfg.data,
            "held_out": held_spec,
            "variant": model_cfg.variant,
            "head": model_cfg.head,
            "img_size": size,
            "batch_size_per_process": cfg.batch_size,
            "processes": args.processes,
            "lr": cfg.lr,
            "epoch_images": cfg.epoch_images,
            "time_budget_min": cfg.time_budget_min,
            "val_images": cfg.val_images,
            "init": init or args.init,
            "notes": args.notes,
        },
        "baseline_mean_pose": base,
        "target_ratio": TARGET_RATIO["standard"],
        "curve": curve,
        "best": best,
        "target_met": bool(best and best["ratio_to_baseline"] <= TARGET_RATIO["standard"]),
        "steps": int(state["step"]),
        "train_elapsed_s": round(float(state["elapsed_s"]), 1),
        "real_photos": None
        if args.skip_real
        else {"data": str(args.real), "boxes": "labelled", "landmark_fit": scorer.fit()["scores"]},
        "machine": machine_info(threads=1),
    }
    if args.compare:
        entry["compare_on_these_renders"] = {}
        for path in args.compare:  # named with what the file says of itself: it may be replaced below
            extra = load_checkpoint(path).get("extra", {})
            name = f"{path} ({extra.get('learning_curve_run')}, epoch {extra.get('epoch')})"
            entry["compare_on_these_renders"][name] = point(scorer.held_out(path), base["pa_mpjpe_mm"], None)
    if seen is not None:
        entry["trained_foregrounds"] = {"cache": args.train_cache, "images": len(seen["image"])}
        entry["trained_foregrounds"]["mean_pose"] = seen_base
    if args.renders and best:
        # the real set's 2D protocol on renders the run never saw: is the real figure the model or the gap?
        entry["renders_2d"] = {"data": str(args.renders)}
        for name, path in (("best", snapshots[best["epoch"]]), ("start", args.start)):
            if path is not None:
                two_d = scorer.real_photos(path, args.renders)
                entry["renders_2d"][name] = {"epoch": scorer.held_out(path)["epoch"], **two_d}
        entry["renders_2d"]["landmark_fit"] = scorer.fit(args.renders)["scores"]
        print(
            f"renders in 2D: {json.dumps({k: v.get('compare') for k, v in entry['renders_2d'].items() if isinstance(v, dict) and 'compare' in v})}"
        )
    for name, figures in entry.get("compare_on_these_renders", {}).items():
        print(
            f"{name}: held-out {figures['pa_mpjpe_mm']:.2f} mm ({figures['ratio_to_baseline']}x the mean pose)"
        )
    if args.model_out and best:
        model = load_model(snapshots[best["epoch"]])
        extra = {"learning_curve_run": args.run, "trained_on": cfg.data, **best}
        if init:
            extra["init"] = init
        save_model(model, args.model_out, extra=extra)
        print(f"wrote {args.model_out} (epoch {best['epoch']})")
    results = _update_results(Path(args.json), args.run, entry)
    plot(results, Path(args.json).with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
