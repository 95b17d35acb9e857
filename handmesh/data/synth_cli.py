"""`handmesh synth`: generate a synthetic dataset in FreiHAND's layout."""

from __future__ import annotations

import argparse
import json
import sys

from handmesh.config import add_overrides_option, apply_overrides


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `handmesh synth`."""
    p = subparsers.add_parser(
        "synth",
        help="render a synthetic dataset in FreiHAND's exact layout",
        description="Render the hand model (MANO when configured, else the stand-in) into FreiHAND's layout: "
        "training/rgb, training/mask, evaluation/rgb and the *_K/_mano/_xyz/_verts JSON files.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--train", type=int, default=64, help="training samples (default 64)")
    p.add_argument("--eval", type=int, default=16, help="evaluation samples (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    p.add_argument(
        "--versions", type=int, default=1, help="background versions per training sample (FreiHAND: 4)"
    )
    p.add_argument("--workers", type=int, default=1, help="rendering processes (results do not depend on it)")
    p.add_argument(
        "--hand-model", default=None, help="MANO file or folder (default: configured MANO, else stand-in)"
    )
    add_overrides_option(p, "any SynthConfig field, e.g. --set occluder_prob=0.5")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Generate the dataset and print its timing figures."""
    from handmesh.data.synth import SynthConfig, synthesize

    cfg = SynthConfig(
        train=args.train,
        eval=args.eval,
        seed=args.seed,
        size=args.size,
        versions=args.versions,
        workers=args.workers,
        hand_model=args.hand_model,
    )
    cfg = apply_overrides(cfg, args.overrides)
    last = {"pct": -1}

    def progress(split: str, done: int, total: int) -> None:
        pct = int(100 * done / max(total, 1))
        if pct // 10 != last["pct"] // 10 or done == total:
            print(f"\r{split}: {done}/{total} images", end="\n" if done == total else "", file=sys.stderr)
            last["pct"] = pct

    stats = synthesize(cfg, args.out, progress)
    print(json.dumps(stats))
    return 0
