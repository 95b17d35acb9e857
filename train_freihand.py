"""Train the hand-mesh regressor: `python train_freihand.py --data DIR --out RUN [...]`.

The same options as `handmesh train` (see `--help`); for several processes or GPUs start it with
`torchrun --nproc_per_node N train_freihand.py ...`.
"""

import sys

from handmesh.cli import main

if __name__ == "__main__":
    # `handmesh train` under this script's own name, so its usage and errors say train_freihand.py
    sys.exit(main(["train", *sys.argv[1:]], prog="train_freihand.py"))
