"""`handmesh export CKPT --onnx OUT [--quantize int8]`: a checkpoint to an ONNX file and its sidecar.

The library parts live below this command: `handmesh.export` (the fp32 export and the sidecar format) and
`handmesh.quantize` (int8 copies of an export).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from handmesh.config import add_bool_option

DESCRIPTION = """Export a model checkpoint to an ONNX file (reparameterized, the hand model inside) and its
sidecar OUT.json; with --quantize, an int8 copy instead (docs/deployment.md)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `handmesh export CKPT --onnx OUT`."""
    p.add_argument("checkpoint", help="model file (.pt) written by training or save_model")
    p.add_argument("--onnx", required=True, metavar="OUT", help="ONNX file to write (sidecar: OUT.json)")
    p.add_argument("--opset", type=int, default=17)
    add_bool_option(p, "--verify", "check ONNX Runtime against torch on two random images", True)
    p.add_argument(
        "--quantize",
        default=None,
        metavar="MODE",
        help="write an int8 model to OUT instead of fp32: int8 or int8-static (handmesh.quantize)",
    )


def run(args: argparse.Namespace) -> int:
    """Export (and optionally quantize) the checkpoint; print what was written."""
    from handmesh.export import check_opset, export_onnx, load_sidecar, sidecar_path
    from handmesh.models import load_model
    from handmesh.quantize import check_quantize, quantize_onnx

    check_opset(args.opset)  # before the model is loaded: a wrong option costs nothing
    check_quantize(args.quantize)
    model = load_model(args.checkpoint)
    if args.quantize:
        with tempfile.TemporaryDirectory(prefix="handmesh-export-") as tmp:
            fp32 = export_onnx(
                model, Path(tmp) / f"{Path(args.onnx).stem}-fp32.onnx", opset=args.opset, verify=args.verify
            )
            out = quantize_onnx(fp32, args.onnx, args.quantize)
        diff = load_sidecar(out)["quantization"]["max_abs_joint_diff_vs_fp32_m"]
        note = f" ({args.quantize}; max |joint int8 - fp32| {diff * 1000:.2f} mm)"
    else:
        out = export_onnx(model, args.onnx, opset=args.opset, verify=args.verify)
        diff = load_sidecar(out)["max_abs_diff_vs_torch"]
        note = "" if diff is None else f" (max |ORT - torch| {diff:.2e})"
    print(f"wrote {out} and {sidecar_path(out)}{note}")
    return 0
