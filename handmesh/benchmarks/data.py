"""Data-loader throughput: augmented training samples per second through a torch DataLoader.

Reads a FreiHAND-layout or custom folder (`--data`), or synthesizes a small FreiHAND-layout set first.
Each worker count is timed after one warm-up batch (worker start-up excluded), over `--batches`
batches. The machine's load average is recorded beside the figures: on a shared machine they are
lower bounds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from handmesh.benchmarks.common import write_result
from handmesh.config import add_bool_option

RESULTS = Path("bench/results/data_cpu.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench data`."""
    parser.add_argument("--data", default=None, help="dataset folder (default: synthesize --samples images)")
    parser.add_argument(
        "--samples", type=int, default=128, help="samples to synthesize when --data is absent"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per worker count")
    parser.add_argument("--img-size", dest="img_size", type=int, default=224)
    add_bool_option(parser, "--augment", "time augmented crops (--no-augment: plain crops)", True)
    parser.add_argument("--json", default=str(RESULTS), help=f"output JSON (default {RESULTS})")


def loader_rate(dataset, workers: int, batch_size: int, batches: int) -> float:
    """Images per second of a shuffled DataLoader in steady state: the clock starts once worker
    start-up and the batches they prefetched meanwhile (2 per worker) have been consumed."""
    import torch

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    warm = 2 * workers + 1
    seen, done, t0 = 0, 0, None
    while t0 is None or seen < batches * batch_size:
        for batch in loader:
            done += 1
            if done == warm:
                t0 = time.perf_counter()
            elif done > warm:
                seen += len(batch["image"])
                if seen >= batches * batch_size:
                    break
    return seen / (time.perf_counter() - t0)


def sample_cpu_ms(dataset, count: int) -> float:
    """CPU milliseconds per sample (decode + crop + augment + tensors), one thread, in this process."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    try:
        dataset[0]
        t0 = time.process_time()
        for i in range(count):
            dataset[i % len(dataset)]
        return 1000.0 * (time.process_time() - t0) / max(count, 1)
    finally:
        torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> int:
    """Time the loader for each worker count and write the JSON."""
    from handmesh.data import open_dataset
    from handmesh.data.transforms import AugmentConfig

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data
        if root is None:
            from handmesh.data.synth import SynthConfig, synthesize

            root = tmp
            synthesize(SynthConfig(train=args.samples, eval=0, workers=min(2, os.cpu_count() or 1)), root)
        ds = open_dataset(root, "training", AugmentConfig(img_size=args.img_size), augment=args.augment)
        load0 = os.getloadavg()[0]
        rates = {}
        for w in args.workers:
            rates[str(w)] = round(loader_rate(ds, w, args.batch_size, args.batches), 1)
            print(f"workers={w}: {rates[str(w)]} images/s", flush=True)
        cpu_ms = sample_cpu_ms(ds, min(len(ds), args.batches * args.batch_size))
        print(f"{cpu_ms:.1f} ms CPU per sample", flush=True)
    result = {
        "benchmark": "data loader",
        "images_per_s_by_workers": rates,
        "dataset": "synthetic FreiHAND layout" if args.data is None else str(args.data),
        "samples": len(ds),
        "img_size": args.img_size,
        "augment": args.augment,
        "cpu_ms_per_sample": round(cpu_ms, 2),
        # what the CPU time allows when the loader has every core to itself (a shared machine gets less)
        "idle_machine_images_per_s": round((os.cpu_count() or 1) * 1000.0 / cpu_ms, 1),
        "batch_size": args.batch_size,
        "batches": args.batches,
        "load_average_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    write_result(args.json, result)
    return 0
