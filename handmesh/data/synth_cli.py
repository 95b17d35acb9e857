"""`handmesh synth`: generate a synthetic dataset in FreiHAND's layout."""

from __future__ import annotations

import argparse
import json
import sys

from handmesh.config import add_config_options, add_overrides_option, apply_overrides, config_from_args

# the SynthConfig fields with their own option; the rendering knobs are `--set FIELD=VALUE`
CLI_FIELDS = ("train", "eval", "seed", "size", "versions", "workers", "hand_model", "appearance", "backgrounds")


DESCRIPTION = """Render the hand model (MANO when configured, else the stand-in) into FreiHAND's layout:
training/rgb, training/mask, evaluation/rgb and the *_K/_mano/_xyz/_verts JSON files."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `handmesh synth`."""
    from handmesh.data.synth import SynthConfig

    p.add_argument("--out", required=True, help="output folder")
    add_config_options(p, SynthConfig, only=CLI_FIELDS)
    add_overrides_option(p, "any SynthConfig field, e.g. --set occluder_prob=0.5")


def run(args: argparse.Namespace) -> int:
    """Generate the dataset and print its timing figures."""
    from handmesh.data.synth import SynthConfig, synthesize

    cfg = config_from_args(SynthConfig(), args)
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
