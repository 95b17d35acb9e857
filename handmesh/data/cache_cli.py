"""`handmesh synth-cache`: render synthetic hand foregrounds once, for `--data cache:DIR` training."""

from __future__ import annotations

import argparse
import json
import sys

from handmesh.config import add_config_options, add_overrides_option, apply_overrides, config_from_args

# the SynthConfig fields with their own option; the rendering knobs are `--set FIELD=VALUE`
CLI_FIELDS = ("seed", "size", "hand_model")


DESCRIPTION = """Render foregrounds 0..N-1 of the synthetic stream (hand, forearm, objects, lights: RGBA and
labels) into a folder. `handmesh train --data cache:DIR` composites each onto a fresh background with
fresh camera effects, occluders and crop/rotation jitter at every reuse (handmesh.data.cache)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `handmesh synth-cache`."""
    from handmesh.data.synth import SynthConfig

    p.add_argument("--out", required=True, help="cache folder")
    p.add_argument("--count", type=int, required=True, help="foregrounds to render")
    p.add_argument("--workers", type=int, default=1, help="rendering processes (results do not depend on it)")
    p.add_argument(
        "--backgrounds",
        type=int,
        default=None,
        help="procedural scenes to cache and draw crops of (default: half of --count, at most 2000; "
        "0 = a fresh scene for every composite, several times slower)",
    )
    add_config_options(p, SynthConfig, only=CLI_FIELDS)
    add_overrides_option(p, "any SynthConfig field, e.g. --set object_prob=0.2")


def run(args: argparse.Namespace) -> int:
    """Build the cache and print its timing figures."""
    from handmesh.data.cache import build_cache
    from handmesh.data.synth import SynthConfig

    cfg = apply_overrides(config_from_args(SynthConfig(), args, only=CLI_FIELDS), args.overrides)
    step = max(args.count // 10, 1)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            print(f"\r{done}/{total} foregrounds", end="\n" if done == total else "", file=sys.stderr)

    print(json.dumps(build_cache(cfg, args.out, args.count, args.workers, progress, args.backgrounds)))
    return 0
