"""The README's front-page picture: realistic renders (issue 17) and what each mesh source makes of them.

Renders a few pictures of the synthetic stream at seeds no training run uses, runs `handmesh predict` on
them with the landmark fit and with the committed model (bench/results/learn_standard.pt), and puts the
picture, the fit's overlay and the model's overlay side by side: docs/images/front_page.png.
Usage: PYOPENGL_PLATFORM=egl python bench/front_page_example.py [--indices 3,8,14] [--size 320]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
SEED = 400_000  # away from training (0..), held-out (100,000..) and the other benchmarks' seeds


def main() -> int:
    """Render, predict with both sources, write the side-by-side picture."""
    from handmesh.data.stream import SynthStream
    from handmesh.data.synth import SynthConfig

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--indices", default="1,4,7", help="stream indices to show (right, left in turn)")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--checkpoint", default="bench/results/learn_standard.pt")
    parser.add_argument("--out", default="docs/images/front_page.png")
    args = parser.parse_args()
    stream = SynthStream(SynthConfig(seed=SEED, size=args.size, occluder_prob=0.0))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, i in enumerate(int(x) for x in args.indices.split(",")):
            image = stream.record(i, ("right", "left")[k % 2]).image
            path = Path(tmp) / f"hand{i}.png"
            cv2.imwrite(str(path), image[..., ::-1])
            row = [image]
            for name, extra in (
                ("fit", ["--mode", "landmark-fit"]),
                ("model", ["--checkpoint", args.checkpoint]),
            ):
                out = Path(tmp) / f"{name}{i}"
                cmd = [sys.executable, "-m", "handmesh.cli", "predict", str(path), "--out", str(out), *extra]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                overlay = next(out.rglob("*overlay*.png"), None)
                row.append(image if overlay is None else cv2.imread(str(overlay))[..., ::-1])
            rows.append(np.concatenate(row, 1))
    stream.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, np.concatenate(rows, 0)[..., ::-1])
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
