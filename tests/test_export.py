"""ONNX export of the fused regressor (hand-model layer inside), its sidecar, the CLI, the model benchmark."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from handmesh.cli import main as cli_main
from handmesh.errors import MissingFileError
from handmesh.export import export_onnx, load_sidecar, sidecar_path
from handmesh.models import OUTPUT_NAMES, build_model, save_model

S = 224


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("fastvit_t8").eval()
    # non-trivial statistics so the fused graph has real folding to get right
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        model.head.dec_pose.weight.copy_(torch.randn(model.head.dec_pose.weight.shape, generator=g) * 1e-2)
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "t8.onnx")
    return model, path


def test_onnx_runtime_equals_torch_with_dynamic_batch(exported):
    import onnxruntime as ort

    model, path = exported
    assert not getattr(model, "deploy", False)  # exporting left the train form alone
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"]
    assert [o.name for o in sess.get_outputs()] == list(OUTPUT_NAMES)
    x = torch.rand(3, 3, S, S, generator=torch.Generator().manual_seed(1))
    got = dict(zip(OUTPUT_NAMES, sess.run(None, {"image": x.numpy()}), strict=True))
    with torch.no_grad():
        ref = model(x)
    for name in OUTPUT_NAMES:
        assert got[name].shape == tuple(ref[name].shape), name
    assert np.abs(got["vertices"] - ref["vertices"].numpy()).max() < 1e-4
    assert np.abs(got["joints"] - ref["joints"].numpy()).max() < 1e-4
    assert np.abs(got["joints2d"] - ref["joints2d"].numpy()).max() < 1e-2  # pixels
    for name in ("global_orient", "hand_pose", "betas", "cam"):
        assert np.abs(got[name] - ref[name].numpy()).max() < 1e-4, name


def test_sidecar_describes_the_graph(exported):
    model, path = exported
    side = sidecar_path(path)
    assert side.name == "t8.onnx.json" and side.is_file()
    data = load_sidecar(path)
    assert data["input_name"] == "image" and data["input_size"] == S
    assert data["output_names"] == list(OUTPUT_NAMES)
    assert data["output_shapes"]["vertices"] == [None, 778, 3]
    assert np.array_equal(np.asarray(data["faces"]), model.faces)
    assert data["hand_model_kind"] == model.hand_model.kind
    assert data["model_config"]["variant"] == "fastvit_t8"
    assert data["focal_length"] == pytest.approx(model.config.focal_length)
    assert data["max_abs_diff_vs_torch"] < 1e-2
    with pytest.raises(MissingFileError):
        load_sidecar(path.with_name("absent.onnx"))


def test_export_cli(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("fastvit_t8")
    ckpt = save_model(model, tmp_path / "m.pt")
    out = tmp_path / "out" / "m.onnx"
    assert cli_main(["export", str(ckpt), "--onnx", str(out), "--no-verify"]) == 0
    assert out.is_file() and sidecar_path(out).is_file()
    assert json.loads(sidecar_path(out).read_text())["max_abs_diff_vs_torch"] is None
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    capsys.readouterr()
    assert cli_main(["export", str(tmp_path / "bad.pt"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "corrupt" in err


def test_model_benchmark_smoke(tmp_path):
    from handmesh.benchmarks.model import CPU_FORMS, ENCODER_FORM, markdown_table

    out = tmp_path / "model_cpu.json"
    args = ["bench", "model", "--variants", "t8", "--runs", "2", "--warmup", "0", "--json", str(out)]
    assert cli_main(args) == 0
    result = json.loads(out.read_text())
    (row,) = result["results"]
    assert row["variant"] == "fastvit_t8" and row["params_m"] > 1 and row["gflops"] > 0.3
    for form in (*CPU_FORMS, ENCODER_FORM):
        assert row[form]["median_ms"] > 0
    assert row["max_abs_diff_fused_m"] < 1e-5 and row["max_abs_diff_ort_m"] < 1e-4
    table = markdown_table(result)
    assert "| t8 |" in table and table.splitlines()[2].count("|") == table.splitlines()[0].count("|")
