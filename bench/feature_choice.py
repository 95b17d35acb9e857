"""Evidence for the encoder feature choice: pool FastViT's last stage or its final expansion conv?

A tiny fit on a synthetic regression task (a coloured ellipse on a noisy background; targets: centre,
size, orientation as cos/sin of twice the angle), fastvit_t8 + a 2-layer MLP, the same seed, data and
schedule for both choices; reports the validation MSE, then the fused form's batch-1 CPU latency at 224
measured in interleaved rounds. Usage: .venv/bin/python bench/feature_choice.py SEED [--steps 150]
Results of the runs quoted in handmesh/models/encoder.py: bench/results/feature_choice.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import timm  # noqa: E402
import torch  # noqa: E402
from timm.utils import reparameterize_model  # noqa: E402

from handmesh.benchmarks.common import machine_info, timing_stats  # noqa: E402


def make_batch(n: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n,3,size,size) with one ellipse each, and targets (n,5)."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    cx, cy = torch.rand(n, generator=g) * 1.2 - 0.6, torch.rand(n, generator=g) * 1.2 - 0.6
    a = torch.rand(n, generator=g) * 0.3 + 0.15
    b = a * (torch.rand(n, generator=g) * 0.4 + 0.2)
    ang = torch.rand(n, generator=g) * math.pi
    dx, dy = xs[None] - cx[:, None, None], ys[None] - cy[:, None, None]
    c, s = torch.cos(ang)[:, None, None], torch.sin(ang)[:, None, None]
    u, v = dx * c + dy * s, -dx * s + dy * c
    mask = ((u / a[:, None, None]) ** 2 + (v / b[:, None, None]) ** 2 <= 1).float()[:, None]
    bg = torch.rand(n, 3, 1, 1, generator=g) * 0.5 + 0.2 * torch.rand(n, 3, size, size, generator=g)
    col = torch.rand(n, 3, 1, 1, generator=g) * 0.4 + 0.6
    img = bg * (1 - mask) + col * mask
    return img, torch.stack([cx, cy, a * 3, torch.cos(2 * ang), torch.sin(2 * ang)], 1)


class Net(torch.nn.Module):
    """fastvit_t8 trunk, average pool over the chosen features, small MLP."""

    def __init__(self, features: str) -> None:
        super().__init__()
        self.enc = timm.create_model("fastvit_t8", pretrained=False, num_classes=0, global_pool="")
        if features == "last_stage":
            self.enc.final_conv = torch.nn.Identity()
            ch = self.enc.feature_info[-1]["num_chs"]
        else:
            ch = self.enc.num_features
        self.fc = torch.nn.Sequential(torch.nn.Linear(ch, 256), torch.nn.ReLU(), torch.nn.Linear(256, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.enc.forward_features(x).mean((2, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed", type=int)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(1)
    val = make_batch(128, 96, torch.Generator().manual_seed(123))
    res, nets = {}, {}
    for feat in ("last_stage", "final_conv"):
        torch.manual_seed(args.seed)
        net = Net(feat)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
        g = torch.Generator().manual_seed(7 + args.seed)
        for _ in range(args.steps):
            x, y = make_batch(12, 96, g)
            loss = torch.nn.functional.mse_loss(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            res[feat] = {"val_mse": torch.nn.functional.mse_loss(net(val[0]), val[1]).item()}
        nets[feat] = reparameterize_model(net).eval()
    torch.set_num_threads(2)
    x1 = torch.rand(1, 3, 224, 224)
    times: dict[str, list[float]] = {f: [] for f in nets}
    with torch.no_grad():
        for _ in range(5):
            for f in nets:
                nets[f](x1)
        for _ in range(40):
            for f in nets:
                t0 = time.perf_counter()
                nets[f](x1)
                times[f].append((time.perf_counter() - t0) * 1e3)
    for f in nets:
        res[f]["deploy_ms_224_median"] = timing_stats(times[f])["median_ms"]
    print(json.dumps({"seed": args.seed, "steps": args.steps, **res, "machine": machine_info(2)}, indent=1))


if __name__ == "__main__":
    main()
