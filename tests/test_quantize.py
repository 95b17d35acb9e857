"""int8 quantization of the exported model: it loads through the same runtime, its sidecar, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from handmesh import quantize
from handmesh.cli import main as cli_main
from handmesh.errors import HandmeshError
from handmesh.export import export_onnx, load_sidecar, sidecar_path
from handmesh.models import build_model, save_model
from handmesh.pipeline import load_runtime

S = 64


def _crops(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, S, S, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("fastvit_t8", img_size=S).eval()
    return export_onnx(model, tmp_path_factory.mktemp("quant") / "m.onnx", verify=False)


@pytest.mark.parametrize("mode", quantize.QUANTIZE_MODES)
def test_int8_model_runs_through_the_same_runtime(fp32, mode):
    out = quantize.quantize_onnx(fp32, fp32.with_name(f"m-{mode}.onnx"), mode, crops=_crops(8))
    side = load_sidecar(out)
    assert sidecar_path(out).is_file() and side["onnx_file"] == out.name
    assert side["quantization"]["mode"] == mode
    assert np.isfinite(side["quantization"]["max_abs_joint_diff_vs_fp32_m"])
    assert out.stat().st_size < fp32.stat().st_size  # int8 weights were really written

    ref_rt, rt = load_runtime(fp32), load_runtime(out)
    assert rt.input_size == S and np.array_equal(rt.faces, ref_rt.faces)
    x = _crops(2, seed=1)
    ref, got = ref_rt(x), rt(x)
    assert set(got) == set(ref)
    for name in ref:
        assert got[name].shape == ref[name].shape, name
        assert np.isfinite(got[name]).all(), name
    # a random network's joints span ~0.1 m; int8 may move them a little, not scramble them
    assert np.abs(got["joints"] - ref["joints"]).max() < 0.05
    assert not np.array_equal(got["joints"], ref["joints"])  # it is not the fp32 graph under a new name


def test_quantize_refuses_bad_inputs(fp32, tmp_path):
    with pytest.raises(HandmeshError, match="own file"):
        quantize.quantize_onnx(fp32, fp32, "int8", crops=_crops(2))
    with pytest.raises(HandmeshError, match="choose one of"):
        quantize.quantize_onnx(fp32, tmp_path / "q.onnx", "fp16", crops=_crops(2))
    done = quantize.quantize_onnx(fp32, tmp_path / "q.onnx", "int8", crops=_crops(2))
    with pytest.raises(HandmeshError, match="already quantized"):
        quantize.quantize_onnx(done, tmp_path / "qq.onnx", "int8", crops=_crops(2))


def test_export_cli_quantize(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    ckpt = save_model(build_model("fastvit_t8", img_size=S), tmp_path / "m.pt")
    calls = []

    def fake_crops(img_size, count=quantize.CALIBRATION_IMAGES, seed=quantize.CALIBRATION_SEED):
        calls.append(img_size)
        return _crops(count)

    monkeypatch.setattr(quantize, "calibration_crops", fake_crops)  # no renderer needed in tests
    out = tmp_path / "m-int8.onnx"
    assert cli_main(["export", str(ckpt), "--onnx", str(out), "--no-verify", "--quantize", "int8"]) == 0
    assert calls == [S] and "int8" in capsys.readouterr().out
    assert json.loads(sidecar_path(out).read_text())["quantization"]["mode"] == "int8"
    assert load_runtime(out)(_crops(1))["vertices"].shape == (1, 778, 3)

    bad = tmp_path / "bad.onnx"
    assert cli_main(["export", str(ckpt), "--onnx", str(bad), "--quantize", "int4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--quantize 'int4'" in err and "int8" in err
    assert not bad.exists()
