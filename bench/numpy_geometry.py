"""Per-hand geometry on the ONNX Runtime path: native numpy against a round trip through torch.

    .venv/bin/python bench/numpy_geometry.py [--runs 2000] [--json bench/results/numpy_geometry_cpu.json]

The runtimes return numpy arrays; before `handmesh.geometry_np` the numpy twins ran the torch code
(numpy -> torch -> numpy per call), and the estimator converted every frame's outputs to torch for the
camera conversion. Each case times one hand's work both ways, the two calls taking turns, in one thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handmesh import geometry  # noqa: E402
from handmesh import geometry_np as gn  # noqa: E402
from handmesh.benchmarks.common import timing_stats, write_result  # noqa: E402
from handmesh.models.camera import crop_to_camera  # noqa: E402


def via_torch(fn, *arrays, **kwargs) -> np.ndarray:
    """What a numpy twin used to be: the torch function on float64 tensors, back to numpy."""
    return fn(*(torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in arrays), **kwargs).numpy()


def cases(rng: np.random.Generator) -> dict:
    """name -> (torch round trip, native numpy), each one hand's work."""
    verts = rng.normal(size=(1, 778, 3)) * 0.05
    cam = np.array([[7.0, 0.03, -0.02]])
    K_crop = np.array([[[560.0, 0.0, 100.0], [0.0, 560.0, 118.0], [0.0, 0.0, 1.0]]])
    K = K_crop[0]
    joints = rng.normal(size=(21, 3)) * 0.05 + [0.0, 0.0, 0.6]
    box = np.array([200.0, 120.0, 360.0, 280.0])
    aa = rng.normal(size=(16, 3))
    return {
        "crop_to_camera_778_vertices": (
            lambda: crop_to_camera(
                torch.as_tensor(verts), torch.as_tensor(cam), torch.as_tensor(K_crop), 224, mirrored=True
            ).numpy(),
            lambda: crop_to_camera(verts, cam, K_crop, 224, mirrored=True),
        ),
        "crop_affine": (
            lambda: geometry.crop_affine(torch.as_tensor(box), 224).numpy(),
            lambda: gn.crop_affine_np(box, 224),
        ),
        "project_21_joints": (
            lambda: via_torch(geometry.project_points, joints, K),
            lambda: gn.project_points_np(joints, K),
        ),
        "axis_angle_to_matrix_16_joints": (
            lambda: via_torch(geometry.axis_angle_to_matrix, aa),
            lambda: gn.axis_angle_to_matrix_np(aa),
        ),
    }


def main() -> int:
    """Time every case both ways and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--json", default="bench/results/numpy_geometry_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for name, (torch_path, numpy_path) in cases(np.random.default_rng(0)).items():
        np.testing.assert_allclose(numpy_path(), torch_path(), atol=1e-9)  # same numbers both ways
        times: dict[str, list[float]] = {"torch_round_trip": [], "numpy": []}
        for _ in range(args.runs):
            for key, fn in (("torch_round_trip", torch_path), ("numpy", numpy_path)):
                t0 = time.perf_counter()
                fn()
                times[key].append((time.perf_counter() - t0) * 1e6)
        row = {key: timing_stats(v, unit="us") for key, v in times.items()}
        row["speedup"] = round(row["torch_round_trip"]["median_us"] / row["numpy"]["median_us"], 2)
        results[name] = row
        print(
            f"{name}: torch round trip {row['torch_round_trip']['median_us']:.1f} us, "
            f"numpy {row['numpy']['median_us']:.1f} us ({row['speedup']}x)",
            flush=True,
        )
    write_result(args.json, {"what": __doc__.splitlines()[0], "runs": args.runs, "cases": results}, threads=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
