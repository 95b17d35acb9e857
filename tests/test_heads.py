"""The MANO heads: forward/backward, keypoint geometry, the keypoint loss, fused == train form, ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handmesh.errors import HandmeshError
from handmesh.losses import compute_losses
from handmesh.models import HEADS, build_model, reparameterize
from handmesh.train import TrainConfig

S = 64  # the smallest input: keeps each head's checks to seconds


def _randomize_norms(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics and a non-zero pose decoder, so fusing has real work to get right."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        model.head.dec_pose.weight.copy_(torch.randn(model.head.dec_pose.weight.shape, generator=g) * 1e-2)


@pytest.fixture(scope="module", params=HEADS)
def model(request):
    torch.manual_seed(0)
    m = build_model("fastvit_t8", img_size=S, head=request.param).eval()
    _randomize_norms(m)
    return m


def test_heads_are_listed_and_unknown_ones_refused():
    assert set(HEADS) == {"pooled", "keypoint"}
    with pytest.raises(HandmeshError, match=r"head='nope' must be one of \('pooled', 'keypoint'\)"):
        build_model("fastvit_t8", img_size=S, head="nope")


def test_forward_and_backward_reach_the_encoder(model):
    model.train()
    x = torch.rand(2, 3, S, S, generator=torch.Generator().manual_seed(1))
    out = model(x)
    assert out["vertices"].shape == (2, 778, 3) and out["joints"].shape == (2, 21, 3)
    assert out["hand_pose"].shape == (2, 15, 3, 3) and out["cam"].shape == (2, 3)
    if model.config.head == "keypoint":
        assert out["keypoints2d"].shape == (2, 21, 2)
        assert (out["keypoints2d"] >= -0.5).all() and (out["keypoints2d"] <= S - 0.5).all()
    else:
        assert "keypoints2d" not in out
    model.zero_grad()
    (out["joints"].sum() + out.get("keypoints2d", out["joints2d"]).sum() * 1e-3).backward()
    stem_grad = next(model.encoder.parameters()).grad
    assert stem_grad is not None and stem_grad.abs().sum() > 0
    model.eval()


def test_untrained_model_outputs_the_mean_hand_in_the_middle():
    """Near-zero decoders: the first forward pass is a valid mean hand, its keypoints near the crop centre."""
    torch.manual_seed(0)
    m = build_model("fastvit_t8", img_size=S, head="keypoint").eval()
    with torch.no_grad():
        torch.nn.init.zeros_(m.head.heatmap.weight)
        torch.nn.init.zeros_(m.head.heatmap.bias)
        out = m(torch.rand(1, 3, S, S))
    # a flat heatmap's soft-argmax is the centre of the crop in pixel-centre coordinates
    assert torch.allclose(out["keypoints2d"], torch.full((1, 21, 2), (S - 1) / 2), atol=1e-4)
    eye = torch.eye(3).expand(15, 3, 3)
    assert (out["hand_pose"][0] - eye).abs().max() < 0.05


def test_keypoint_heatmap_peak_gives_its_cell_centre():
    """A heatmap concentrated on one cell puts the keypoint on that cell's centre (crop pixels)."""
    torch.manual_seed(0)
    m = build_model("fastvit_t8", img_size=S, head="keypoint").eval()
    stride = m.config.head_stride
    cells = S // stride
    target = (5, 2)  # (column, row)

    def peaked(_self, pyramid):
        fmap = torch.zeros(1, m.config.head_width, cells, cells)
        fmap[0, 0, target[1], target[0]] = 100.0
        return fmap

    with torch.no_grad():
        torch.nn.init.zeros_(m.head.heatmap.weight)
        torch.nn.init.zeros_(m.head.heatmap.bias)
        m.head.heatmap.weight[:, 0] = 1.0
        m.head.neck = peaked.__get__(m.head)
        out = m(torch.rand(1, 3, S, S))
    expected = torch.tensor([(target[0] + 0.5) * stride - 0.5, (target[1] + 0.5) * stride - 0.5])
    assert torch.allclose(out["keypoints2d"][0], expected.expand(21, 2), atol=1e-3)


def test_keypoint_loss_is_zero_on_the_labels_and_grows_with_the_error():
    torch.manual_seed(0)
    m = build_model("fastvit_t8", img_size=S, head="keypoint").eval()
    with torch.no_grad():
        out = m(torch.rand(2, 3, S, S))
    batch = {
        "joints3d": out["joints"].clone(),
        "vertices": out["vertices"].clone(),
        "joints2d": out["keypoints2d"].clone(),
        "joints2d_conf": torch.ones(2, 21),
        "mano_pose": torch.zeros(2, 48),
        "betas": torch.zeros(2, 10),
        **{k: torch.ones(2) for k in ("has_joints3d", "has_vertices", "has_joints2d", "has_mano")},
    }
    weights = TrainConfig().loss_weights()
    assert weights["keypoints2d"] > 0
    assert float(compute_losses(out, batch, weights, S)["keypoints2d"]) == pytest.approx(0.0, abs=1e-7)
    batch["joints2d"] = batch["joints2d"] + 3.2  # 3.2 px off in x and y: L1 sum 6.4 px over 2 * S
    assert float(compute_losses(out, batch, weights, S)["keypoints2d"]) == pytest.approx(
        6.4 / (2 * S), rel=1e-4
    )


def test_fused_equals_train_form(model):
    deploy = reparameterize(model)
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in deploy.head.modules())
    x = torch.rand(2, 3, S, S, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = model(x), deploy(x)
    assert (a["vertices"] - b["vertices"]).abs().max() < 1e-5
    assert (a["joints"] - b["joints"]).abs().max() < 1e-5


def test_onnx_runtime_equals_torch(model, tmp_path):
    import onnxruntime as ort

    from handmesh.export import export_onnx
    from handmesh.models import OUTPUT_NAMES

    path = export_onnx(model, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, S, S, generator=torch.Generator().manual_seed(3))
    got = dict(zip(OUTPUT_NAMES, sess.run(None, {"image": x.numpy()}), strict=True))
    with torch.no_grad():
        ref = model(x)
    assert np.abs(got["vertices"] - ref["vertices"].numpy()).max() < 1e-4
    assert np.abs(got["joints"] - ref["joints"].numpy()).max() < 1e-4
