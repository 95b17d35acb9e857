"""int8 quantization of an exported ONNX model (`handmesh export CKPT --onnx OUT --quantize int8`).

``quantize_onnx(fp32, out, mode)`` writes ``out`` plus a sidecar (the fp32 one with ``onnx_file`` and a
``quantization`` record), so the int8 file loads through `OnnxRuntimeModel` / `load_runtime` unchanged.

Modes (both leave the hand-model layer, i.e. blend shapes, skinning and rotation conversions, in
float32: int8 there would add error to every vertex and save nothing, it is a few small products):

- ``int8``: dynamic quantization of the encoder's and head's MatMul/Gemm weights (activations are
  quantized per call, no calibration). In the keypoint head these are the MLP's large layers, which at
  batch 1 are bound by reading their weights; int8 weights read 4x less. The Conv encoder stays float32.
- ``int8-static``: static QDQ quantization of Conv, MatMul and Gemm (u8 activations, s8 per-channel
  weights: MLAS's VNNI kernel), calibrated on synthetic crops prepared exactly as the runtime prepares
  its input (`crops_to_nchw`). This is what a conv net usually needs, but on an avx512_vnni Xeon it was
  slower than fp32 for fastvit_t8 at 64 and 224 px (the GELU/Add/BatchNorm-folded blocks between convs
  force a quantize/dequantize pair around almost every Conv) and moved the joints 9 mm on average
  (bench/results/quantize_cpu.json); kept so `handmesh bench quantize` can re-check it on other CPUs
  (e.g. AMX), not as the default.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from handmesh.atomic import atomic_path
from handmesh.errors import HandmeshError

QUANTIZE_MODES = ("int8", "int8-static")
# graph-name prefixes of nodes kept in float32 (the torch exporter names nodes by module path)
FLOAT_PREFIXES = ("/model/hand_model/",)
CALIBRATION_IMAGES = 200
CALIBRATION_DATA = "synth:"  # the stream at `handmesh synth` defaults (bench learn's "standard" step)
CALIBRATION_SEED = 1  # not the benchmark's held-out seed (0): calibrating on the test set would flatter it
CALIBRATION_BATCH = 8
CHECK_CROPS = 16  # crops on which the written model is compared with the fp32 one


def check_quantize(mode: str | None) -> None:
    """Refuse a --quantize value this export cannot produce."""
    if mode is not None and mode not in QUANTIZE_MODES:
        raise HandmeshError(f"--quantize {mode!r}: choose one of {', '.join(QUANTIZE_MODES)}")


def to_crops(images) -> np.ndarray:
    """(N,3,S,S) float tensor in [0,1] (a dataset's images) -> (N,S,S,3) uint8 RGB crops (runtime input)."""
    # the stream's float images are uint8 / 255 exactly, so this round trip is lossless
    return (images.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).byte().numpy()


def calibration_crops(
    img_size: int, count: int = CALIBRATION_IMAGES, seed: int = CALIBRATION_SEED
) -> np.ndarray:
    """(count, S, S, 3) uint8 RGB crops of the synthetic stream (`handmesh synth` defaults), as the pipeline
    feeds them."""
    from handmesh.data.mix import held_out

    return to_crops(held_out(CALIBRATION_DATA, count, img_size, seed)["image"])


class _CropReader:
    """An onnxruntime CalibrationDataReader over uint8 crops (batches of CALIBRATION_BATCH)."""

    def __init__(self, crops: np.ndarray, input_name: str) -> None:
        from handmesh.pipeline.runtime import crops_to_nchw

        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            {input_name: crops_to_nchw(crops[i : i + CALIBRATION_BATCH])}
            for i in range(0, len(crops), CALIBRATION_BATCH)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _float_nodes(model_path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(model_path)).graph
    return [n.name for n in graph.node if n.name.startswith(FLOAT_PREFIXES)]


def _max_joint_diff(fp32: Path, int8: Path, crops: np.ndarray, input_name: str) -> float:
    """Largest |int8 - fp32| hand-frame joint coordinate (metres) over `crops`."""
    import onnxruntime as ort

    from handmesh.pipeline.runtime import crops_to_nchw

    feed = {input_name: crops_to_nchw(crops)}
    a, b = (
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(["joints"], feed)[0]
        for p in (fp32, int8)
    )
    return float(np.abs(a - b).max())


def _quantize(pre: Path, target: Path, mode: str, crops: np.ndarray, input_name: str) -> dict[str, Any]:
    """Quantize the pre-processed graph `pre` into `target`; returns what was done, for the sidecar."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    keep_float = _float_nodes(pre)
    if mode == "int8":
        ops = ["MatMul", "Gemm"]
        quantize_dynamic(
            str(pre),
            str(target),
            op_types_to_quantize=ops,
            nodes_to_exclude=keep_float,
            weight_type=QuantType.QInt8,
        )
        return {"method": "dynamic, s8 weights (per tensor), u8 activations quantized per call", "ops": ops}
    ops = ["Conv", "MatMul", "Gemm"]
    quantize_static(
        str(pre),
        str(target),
        _CropReader(crops, input_name),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,  # BN-folded conv channels have widely different weight ranges
        calibrate_method=CalibrationMethod.MinMax,
        op_types_to_quantize=ops,
        nodes_to_exclude=keep_float,
    )
    return {
        "method": "static QDQ, u8 activations / s8 per-channel weights, MinMax calibration",
        "ops": ops,
        "calibration_images": len(crops),
    }


def quantize_onnx(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    mode: str = "int8",
    crops: np.ndarray | None = None,
) -> Path:
    """Write an int8 copy of an exported fp32 model and its sidecar; returns its path.

    `crops` ((N,S,S,3) uint8) calibrate the static mode and check the result; by default synthetic ones.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from handmesh.export import load_sidecar, write_sidecar

    check_quantize(mode)
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if fp32_path.resolve() == out_path.resolve():
        raise HandmeshError(f"{out_path}: the int8 model needs its own file, not the fp32 one's")
    meta: dict[str, Any] = load_sidecar(fp32_path)
    if meta.get("quantization"):
        raise HandmeshError(f"{fp32_path} is already quantized: quantize the fp32 export")
    if crops is None:
        crops = calibration_crops(
            int(meta["input_size"]), CALIBRATION_IMAGES if mode != "int8" else CHECK_CROPS
        )
    with tempfile.TemporaryDirectory(prefix="handmesh-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        # shape inference and graph folding first: the quantizer needs every tensor's shape
        quant_pre_process(str(fp32_path), str(pre))
        with atomic_path(out_path) as target:
            record = _quantize(pre, target, mode, crops, meta["input_name"])
            diff = _max_joint_diff(fp32_path, target, crops[:CHECK_CROPS], meta["input_name"])
            if not np.isfinite(diff):
                raise HandmeshError(f"the {mode} model gives non-finite joints on the check crops")
    meta.update(
        onnx_file=out_path.name,
        max_abs_diff_vs_torch=None,
        quantization={
            "mode": mode,
            **record,
            "float_prefixes": list(FLOAT_PREFIXES),
            "source_onnx": fp32_path.name,
            "max_abs_joint_diff_vs_fp32_m": diff,
        },
    )
    write_sidecar(out_path, meta)
    return out_path
