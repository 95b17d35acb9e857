"""Inference runtimes for the regressor: ONNX Runtime (the CPU default) and torch (GPU or checkpoints).

Both take a batch of crops (B, S, S, 3) uint8 RGB — all hands of a frame in one call — and return a
dict of numpy arrays with the model's outputs (vertices, joints, global_orient, hand_pose, betas, cam,
joints2d; see docs/api-contracts.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from handmesh.errors import HandmeshError, MissingFileError

# Threads per library in the live pipeline. Its stages already run side by side (`pipeline.stream`), so
# a stage that also fans out over every core fights the others -- and, in the demo, the browser -- for
# them: on 2 cores one thread each ran faster than the libraries' defaults, in the pipeline benchmark and
# in the browser (bench/results/pipeline_cpu.json and browser_cpu.json; docs/benchmarks.md, "Levers,
# measured" and "In the browser").
LIVE_THREADS = 1


def default_onnx_threads() -> int:
    """ONNX Runtime's intra-op threads when none are asked for: every core, at most four."""
    return min(4, os.cpu_count() or 1)


def set_stage_threads(n: int = LIVE_THREADS) -> None:
    """Give torch, numpy's BLAS, OpenMP, OpenCV and the GL rasterizer (llvmpipe) `n` threads each; call it
    before the renderer exists.

    ONNX Runtime's count is per session: pass the same `n` to `load_runtime` / `OnnxRuntimeModel`. A
    LP_NUM_THREADS already in the environment is left as the user set it.
    """
    import cv2
    import torch
    from threadpoolctl import threadpool_limits

    n = max(1, int(n))
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    # numpy's OpenBLAS spins up a thread per core for the fit's small products: pure contention here
    threadpool_limits(limits=n)
    os.environ.setdefault("LP_NUM_THREADS", str(n))


class Runtime(Protocol):
    """A batched regressor: crops in, numpy outputs out."""

    input_size: int
    faces: np.ndarray
    name: str

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on (B, S, S, 3) uint8 RGB crops."""
        ...


def crops_to_nchw(crops: np.ndarray) -> np.ndarray:
    """(B, S, S, 3) uint8 RGB -> (B, 3, S, S) float32 in [0, 1] (the model normalizes inside)."""
    x = np.ascontiguousarray(np.asarray(crops).transpose(0, 3, 1, 2), dtype=np.float32)
    x *= 1.0 / 255.0
    return x


class OnnxRuntimeModel:
    """An exported model run with ONNX Runtime; input size and faces come from its sidecar (handmesh.export)."""

    def __init__(self, path: str | Path, threads: int | None = None, providers: list[str] | None = None):
        import onnxruntime as ort

        from handmesh.export import load_sidecar

        path = Path(path)
        if not path.is_file():
            raise MissingFileError(
                f"ONNX model not found: {path} (export one with `handmesh export CKPT --onnx OUT`)"
            )
        # fails early, with its own message, when the sidecar is missing or not handmesh's
        self.meta: dict[str, Any] = load_sidecar(path)

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = int(threads or default_onnx_threads())
        opts.inter_op_num_threads = 1
        # No busy-waiting between calls: in the pipeline MediaPipe and the GL rasterizer run their own
        # threads right after the model, and spinning ORT workers would steal their cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=opts, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise HandmeshError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0]}") from exc
        self.path = path
        self.input_name = self.meta["input_name"]
        self.input_size = int(self.meta["input_size"])
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        if self.input_name not in inputs:
            raise HandmeshError(
                f"{path}: its sidecar names input {self.input_name!r}, the model has {sorted(inputs)[:4]}"
            )
        fixed = [d for d in inputs[self.input_name][2:] if isinstance(d, int)]
        if any(d != self.input_size for d in fixed):
            raise HandmeshError(
                f"{path}: its sidecar says input_size {self.input_size}, the model takes {inputs[self.input_name]}"
            )
        self.faces = np.asarray(self.meta["faces"], dtype=np.int64)
        self.hand_model_kind: str | None = self.meta.get("hand_model_kind")
        self.output_names = [o.name for o in self.session.get_outputs()]
        variant = (self.meta.get("model_config") or {}).get("variant")
        self.name = f"{variant or path.stem} (ONNX Runtime)"

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on (B, S, S, 3) uint8 RGB crops."""
        outs = self.session.run(self.output_names, {self.input_name: crops_to_nchw(crops)})
        return dict(zip(self.output_names, outs, strict=True))


class TorchRuntimeModel:
    """A checkpoint (or an nn.Module) run with torch in deploy (reparameterized) form."""

    def __init__(self, model_or_path, device: str | None = None, deploy: bool = True):
        import torch

        from handmesh.models import load_model, reparameterize

        if isinstance(model_or_path, (str, Path)):
            path = Path(model_or_path)
            if not path.is_file():
                raise MissingFileError(f"checkpoint not found: {path} (train one with train_freihand.py)")
            model = load_model(path)
            self.name = (
                f"{getattr(getattr(model, 'config', None), 'variant', path.stem)} ({path.name}, torch)"
            )
        else:
            model = model_or_path
            self.name = f"{getattr(getattr(model, 'config', None), 'variant', type(model).__name__)} (torch)"
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = model.eval()
        if deploy:
            model = reparameterize(model)
        self.model = model.to(self.device).eval()
        self.input_size = int(self.model.config.img_size)
        self.faces = np.asarray(self.model.faces, dtype=np.int64)
        self.hand_model_kind: str | None = getattr(getattr(self.model, "hand_model", None), "kind", None)
        self._torch = torch

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on (B, S, S, 3) uint8 RGB crops."""
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(crops_to_nchw(crops)).to(self.device)
            out = self.model(x)
        return {k: v.detach().float().cpu().numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}
