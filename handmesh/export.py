"""ONNX export of the deploy (fused) regressor, hand-model layer included, plus its JSON sidecar.

``export_onnx(model, "m.onnx")`` writes two files:

- ``m.onnx``: opset 17 (default). Input ``image``: float32 (B,3,S,S), RGB in [0,1], NCHW, dynamic batch
  (ImageNet normalization is inside the graph). Outputs, all float32 with the batch as first dim:
  ``vertices`` (B,778,3) and ``joints`` (B,21,3, FreiHAND order) in metres in the hand model's frame
  (no translation); ``global_orient`` (B,3,3) and ``hand_pose`` (B,15,3,3) rotation matrices (relative to
  the mean hand); ``betas`` (B,10); ``cam`` (B,3) weak-perspective (s, tx, ty); ``joints2d`` (B,21,2)
  crop pixels under the nominal crop camera. The camera conversions are in ``handmesh.models.camera``
  (``cam_to_translation(cam, K_crop, S)`` gives the translation for the crop's real intrinsics).
- ``m.onnx.json`` (the sidecar, always the ONNX path plus ".json"; see `sidecar_path`): a JSON object
  ``{"format": "handmesh-onnx", "version": 1, "onnx_file": "m.onnx", "input_name": "image",
  "input_size": S, "input_format": "...", "output_names": [...], "output_shapes": {name: [dims]},
  "faces": [[i, j, k], ...] (right hand, int), "hand_model_kind": "mano"|"standin",
  "focal_length": f (nominal crop camera, pixels), "model_config": {...}, "opset": 17,
  "max_abs_diff_vs_torch": float or null}``.

A runtime needs only onnxruntime, numpy and this sidecar. The command is `handmesh export`
(`handmesh.export_cli`); its ``--quantize int8`` writes an int8 model instead (`handmesh.quantize`), whose
sidecar adds a ``"quantization"`` record and loads the same way.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from handmesh.atomic import atomic_path, atomic_write
from handmesh.errors import HandmeshError, MissingFileError

SIDECAR_FORMAT = "handmesh-onnx"
SIDECAR_VERSION = 1
INPUT_NAME = "image"
MIN_OPSET = 13
VERIFY_TOLERANCE = 1e-2  # metres / radians-ish outputs: fused float32 graphs agree to about 1e-5


def sidecar_path(onnx_path: str | os.PathLike) -> Path:
    """The JSON sidecar of an ONNX file: the same path with ".json" appended (m.onnx -> m.onnx.json)."""
    return Path(str(onnx_path) + ".json")


class _TupleOutputs(nn.Module):
    """The regressor with its dict output flattened into OUTPUT_NAMES order (ONNX needs a tuple)."""

    def __init__(self, model: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        return tuple(out[n] for n in self.names)


def _max_diff_vs_torch(model: nn.Module, onnx_file: Path, names: tuple[str, ...], img_size: int) -> float:
    """Largest |ORT - torch| over all outputs for two random images (checks the dynamic batch too)."""
    import onnxruntime as ort

    x = torch.rand(2, 3, img_size, img_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x)
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    got = sess.run(list(names), {INPUT_NAME: x.numpy()})
    return max(float((torch.from_numpy(g) - ref[n]).abs().max()) for n, g in zip(names, got, strict=True))


def check_opset(opset: int) -> None:
    """Refuse an ONNX opset this export cannot produce (the graph needs opset 13's operators)."""
    from torch.onnx import _constants

    top = int(getattr(_constants, "ONNX_MAX_OPSET", 20))
    if not MIN_OPSET <= int(opset) <= top:
        raise HandmeshError(f"--opset {opset}: this export supports opsets {MIN_OPSET} to {top}")


def check_finite_weights(model: nn.Module) -> None:
    """Refuse a model with NaN or infinite weights: its export would "succeed" with NaN outputs."""
    bad = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if not torch.isfinite(t).all()]
    if bad:
        raise HandmeshError(f"model holds NaN or infinite weights in {len(bad)} tensor(s), e.g. {bad[0]}")


def export_onnx(model: nn.Module, path: str | os.PathLike, opset: int = 17, verify: bool = True) -> Path:
    """Export the fused form of a regressor (train or deploy form) to ONNX with its JSON sidecar."""
    from handmesh.config import to_dict
    from handmesh.models import OUTPUT_NAMES, reparameterize

    check_opset(opset)
    check_finite_weights(model)
    path = Path(path)
    deploy = reparameterize(model).cpu().float().eval()
    img_size = int(deploy.config.img_size)
    names = tuple(OUTPUT_NAMES)
    wrapper = _TupleOutputs(deploy, names).eval()
    dummy = torch.rand(1, 3, img_size, img_size)
    axes = {INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in names}}
    with atomic_path(path) as tmp:
        # the tracer warns about every Python-level shape check in the model; they are all static here
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (dummy,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=list(names),
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        diff = _max_diff_vs_torch(deploy, tmp, names, img_size) if verify else None
        if diff is not None and not diff <= VERIFY_TOLERANCE:  # NaN compares false
            raise HandmeshError(
                f"ONNX Runtime and torch disagree by {diff:.3g} (tolerance {VERIFY_TOLERANCE})"
            )
    with torch.no_grad():
        shapes = {n: [None, *list(v.shape[1:])] for n, v in deploy(dummy).items() if n in names}
    sidecar = {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "onnx_file": path.name,
        "input_name": INPUT_NAME,
        "input_size": img_size,
        "input_format": "float32 (B,3,S,S) RGB in [0,1], NCHW; normalization is inside the graph",
        "output_names": list(names),
        "output_shapes": shapes,
        "faces": deploy.faces.tolist(),
        "hand_model_kind": deploy.hand_model.kind,
        "focal_length": deploy.config.resolved_focal(),
        "model_config": to_dict(deploy.config),
        "opset": opset,
        "max_abs_diff_vs_torch": diff,
    }
    write_sidecar(path, sidecar)
    return path


def write_sidecar(onnx_path: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write the JSON sidecar of an ONNX file (atomically); returns its path."""
    return atomic_write(sidecar_path(onnx_path), json.dumps(meta) + "\n")


MAX_SIDECAR_BYTES = 16 * 1024 * 1024  # an exported sidecar is about 60 kB (the faces)
MAX_FACES = 100_000  # MANO and the stand-in have 1,538
HAND_VERTICES = 778


def _sidecar_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a sidecar's fields, in words (None: every field a runtime reads is sound)."""
    from handmesh.models.config import MAX_IMG_SIZE

    size = data.get("input_size")
    if isinstance(size, bool) or not isinstance(size, int) or not 64 <= size <= MAX_IMG_SIZE or size % 32:
        return f"input_size {size!r} must be a multiple of 32 in 64..{MAX_IMG_SIZE}"
    name = data.get("input_name")
    if not isinstance(name, str) or not 0 < len(name) <= 256:
        return f"input_name {str(name)[:40]!r} must be a short string"
    faces = data.get("faces")
    if not isinstance(faces, list) or not 0 < len(faces) <= MAX_FACES:
        return f"faces must be a list of 1..{MAX_FACES} triangles"
    if not all(
        isinstance(f, list) and len(f) == 3 and all(type(i) is int and 0 <= i < HAND_VERTICES for i in f)
        for f in faces
    ):
        return f"faces must be triangles of vertex indices 0..{HAND_VERTICES - 1}"
    if data.get("hand_model_kind") not in (None, "mano", "standin"):
        return f"hand_model_kind {str(data.get('hand_model_kind'))[:40]!r} must be mano or standin"
    if not isinstance(data.get("model_config", {}), dict | None):
        return "model_config must be an object"
    return None


def load_sidecar(onnx_path: str | os.PathLike) -> dict[str, Any]:
    """Read and check the JSON sidecar of an exported ONNX file (every field a runtime uses is validated)."""
    side = sidecar_path(onnx_path)
    if not side.is_file():
        raise MissingFileError(
            f"ONNX sidecar {side} not found: re-export with `handmesh export CKPT --onnx OUT`"
        )
    if side.stat().st_size > MAX_SIDECAR_BYTES:
        raise HandmeshError(
            f"ONNX sidecar {side} is over {MAX_SIDECAR_BYTES >> 20} MB: not a handmesh sidecar"
        )
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise HandmeshError(f"ONNX sidecar {side} is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise HandmeshError(f"{side} is not a handmesh ONNX sidecar")
    if data.get("version") != SIDECAR_VERSION:
        raise HandmeshError(f"{side}: sidecar version {str(data.get('version'))[:40]!r} is not supported")
    problem = _sidecar_problem(data)
    if problem:
        raise HandmeshError(f"ONNX sidecar {side}: {problem}")
    return data
