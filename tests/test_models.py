"""The regressor: variants, outputs, camera math, reparameterization, checkpoints, gradients, weights."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from handmesh.errors import HandmeshError, MissingFileError
from handmesh.geometry import crop_intrinsics, project_points
from handmesh.mirror import flip_intrinsics
from handmesh.models import (
    OUTPUT_NAMES,
    build_model,
    fastvit_variants,
    is_hand_model_key,
    load_model,
    load_own_state,
    own_state,
    reparameterize,
    save_model,
)
from handmesh.models.camera import (
    cam_to_translation,
    crop_to_camera,
    nominal_K,
    translation_to_cam,
    weak_perspective_project,
)

S = 224


@pytest.fixture(scope="module")
def t8():
    torch.manual_seed(0)
    return build_model("fastvit_t8")


def images(batch: int, size: int = S, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def randomize_statistics(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics/affines and LayerScales, so fusing has real work to match."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.copy_(torch.randn(n, generator=g) * 0.2)
        if type(m).__name__ == "LayerScale2d":
            m.gamma.copy_(torch.rand(m.gamma.shape, generator=g) * 0.5 + 0.1)
    for dec in (model.head.dec_pose, model.head.dec_betas, model.head.dec_cam):
        dec.weight.copy_(torch.randn(dec.weight.shape, generator=g) * 5e-2)
    heatmap = getattr(model.head, "heatmap", None)
    if heatmap is not None:  # peaked heatmaps: the keypoints (and the neck being fused) depend on the image
        heatmap.weight.mul_(10.0)


def assert_one_line(exc: pytest.ExceptionInfo) -> None:
    msg = str(exc.value)
    assert msg and "\n" not in msg, msg


# ----------------------------------------------------------------------------- build and run


@pytest.mark.parametrize("variant", fastvit_variants())
def test_every_variant_builds_and_runs(variant):
    torch.manual_seed(0)
    model = build_model(variant).eval()
    batch = 2 if variant == "fastvit_t8" else 1
    with torch.no_grad():
        out = model(images(batch))
    assert set(OUTPUT_NAMES) <= set(out)
    shapes = {
        "vertices": (batch, 778, 3),
        "joints": (batch, 21, 3),
        "global_orient": (batch, 3, 3),
        "hand_pose": (batch, 15, 3, 3),
        "betas": (batch, 10),
        "cam": (batch, 3),
        "joints2d": (batch, 21, 2),
    }
    for name, shape in shapes.items():
        assert tuple(out[name].shape) == shape, name
        assert torch.isfinite(out[name]).all(), name
    assert model.config.variant == variant and model.hand_model.kind in ("mano", "standin")


def test_variants_come_from_timm_and_each_gets_its_weights_normalization(t8):
    import timm

    from handmesh.models.config import UNSUPPORTED_VARIANTS

    names = fastvit_variants()
    assert {"fastvit_t8", "fastvit_ma36", "fastvit_mci0"} <= set(names)
    assert all(timm.is_model(n) for n in names) and not set(UNSUPPORTED_VARIANTS) & set(names)
    imagenet = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    assert torch.allclose(t8.pixel_mean, imagenet) and t8.pixel_std.min() < 0.3
    # MobileCLIP image towers were trained on unnormalized [0,1] pixels: mean 0, std 1
    mci = build_model("fastvit_mci0", head="pooled").eval()
    assert torch.equal(mci.pixel_mean, torch.zeros(1, 3, 1, 1)) and torch.equal(
        mci.pixel_std, torch.ones(1, 3, 1, 1)
    )
    x = images(1, seed=9)
    with torch.no_grad():
        assert torch.equal(mci.pyramid(x)[-1], mci.encoder.pyramid(x)[-1])
        assert not torch.allclose(t8.pyramid(x)[-1], t8.encoder.pyramid(x)[-1])


def test_mean_prediction_is_a_sensible_hand(t8):
    out = t8.eval()(images(1))
    # rotations are proper, the hand fills a good part of the crop and sits near its centre
    rots = torch.cat([out["global_orient"][:, None], out["hand_pose"]], 1)
    eye = torch.eye(3).expand_as(rots)
    assert torch.allclose(rots @ rots.transpose(-1, -2), eye, atol=1e-4)
    assert torch.allclose(torch.linalg.det(rots), torch.ones(rots.shape[:2]), atol=1e-4)
    j2d = out["joints2d"][0]
    span = (j2d.max(0).values - j2d.min(0).values).max()
    assert 0.4 * S < span < 1.0 * S
    assert ((j2d > 0) & (j2d < S)).all()


def test_img_size_256_and_last_stage_features():
    model = build_model("fastvit_t8", img_size=256, features="last_stage").eval()
    with torch.no_grad():
        out = model(images(1, 256))
    assert out["vertices"].shape == (1, 778, 3)
    assert model.config.focal_length == pytest.approx(500.0 * 256 / 224)
    assert model.encoder.out_channels == 384


def test_bad_options_fail_clearly():
    with pytest.raises(HandmeshError) as exc:
        build_model("fastvit_t9")
    assert_one_line(exc)
    with pytest.raises(HandmeshError) as exc:
        build_model("fastvit_t8", no_such_option=1)
    assert_one_line(exc)
    with pytest.raises(HandmeshError):
        build_model("fastvit_t8", img_size=100)


# ----------------------------------------------------------------------------- camera


def test_cam_translation_roundtrip_and_nominal_form():
    cam = torch.tensor([[8.0, 0.01, -0.02], [5.0, -0.03, 0.04]])
    K = nominal_K(S, 500.0)
    T = cam_to_translation(cam, K, S)
    # the usual form for the nominal camera: (tx, ty, 2 f / (S s))
    assert torch.allclose(T, torch.stack([cam[:, 1], cam[:, 2], 2 * 500.0 / (S * cam[:, 0])], 1), atol=1e-6)
    K2 = torch.tensor([[620.0, 0, 100.0], [0, 600.0, 120.0], [0, 0, 1]])
    assert torch.allclose(translation_to_cam(cam_to_translation(cam, K2, S), K2, S), cam, atol=1e-5)


def test_joints2d_is_the_projection_of_joints_plus_translation(t8):
    with torch.no_grad():
        out = t8.eval()(images(2))
    K = nominal_K(S, t8.config.focal_length)
    T = cam_to_translation(out["cam"], K, S)
    proj = project_points(out["joints"] + T[:, None], K.expand(2, 3, 3))
    assert torch.allclose(proj, out["joints2d"], atol=1e-3)
    # weak perspective agrees up to the hand's depth relief: |du| <= |u - c| * |dZ| / (Tz + dZ)
    depth = (out["joints"] + T[:, None])[..., 2]
    weak = weak_perspective_project(out["joints"], out["cam"], S)
    rel = (depth - T[:, None, 2]).abs() / depth
    bound = (weak - S / 2).norm(dim=-1) * rel + 1e-3
    assert ((weak - proj).norm(dim=-1) <= bound + 1e-3).all()
    assert (weak - proj).norm(dim=-1).max() < 0.1 * S


def test_crop_camera_equals_full_image_camera():
    g = torch.Generator().manual_seed(1)
    points = torch.randn(2, 30, 3, generator=g) * 0.05
    cam = torch.tensor([[7.0, 0.02, -0.01], [9.0, -0.01, 0.03]])
    K = torch.tensor([[600.0, 0, 320.0], [0, 600.0, 240.0], [0, 0, 1]]).expand(2, 3, 3)
    box = torch.tensor([[200.0, 100.0, 400.0, 300.0], [50.0, 60.0, 170.0, 180.0]])
    K_crop = crop_intrinsics(K, box, S)
    cam_pts = crop_to_camera(points, cam, K_crop, S)
    in_crop = project_points(cam_pts, K_crop)
    in_image = project_points(cam_pts, K)
    scale = (box[:, 2:] - box[:, :2]) / S
    assert torch.allclose(in_image, in_crop * scale[:, None] + box[:, None, :2], atol=1e-3)


def test_mirrored_crop_maps_back_to_the_real_hand():
    """A left hand seen through np.fliplr(crop) and predicted as a right hand lands on the real pixels."""
    g = torch.Generator().manual_seed(2)
    points = torch.randn(1, 30, 3, generator=g) * 0.05
    cam = torch.tensor([[7.0, 0.03, -0.02]])
    K_crop = torch.tensor([[[560.0, 0, 100.0], [0, 560.0, 118.0], [0, 0, 1]]])
    # what the network sees in the flipped crop: pixel u' = S - 1 - u of the real crop
    seen = project_points(
        points + cam_to_translation(cam, flip_intrinsics(K_crop, S), S)[:, None], flip_intrinsics(K_crop, S)
    )
    real = crop_to_camera(points, cam, K_crop, S, mirrored=True)
    real_px = project_points(real, K_crop)
    assert torch.allclose(real_px[..., 0], (S - 1) - seen[..., 0], atol=1e-3)
    assert torch.allclose(real_px[..., 1], seen[..., 1], atol=1e-3)


@pytest.mark.parametrize("mirrored", [False, True])
def test_crop_to_camera_numpy_equals_torch(mirrored):
    """The ONNX Runtime pipeline converts numpy outputs without a detour through torch: same numbers."""
    g = torch.Generator().manual_seed(3)
    points = torch.randn(2, 30, 3, generator=g, dtype=torch.float64) * 0.05
    cam = torch.tensor([[7.0, 0.03, -0.02], [5.5, -0.04, 0.01]], dtype=torch.float64)
    K_crop = torch.tensor([[560.0, 0.7, 100.0], [0, 540.0, 118.0], [0, 0, 1]], dtype=torch.float64)
    for K in (K_crop, K_crop.expand(2, 3, 3)):  # one K for the batch, or one per hand
        ref = crop_to_camera(points, cam, K, S, mirrored=mirrored)
        out = crop_to_camera(points.numpy(), cam.numpy(), K.numpy(), S, mirrored=mirrored)
        assert isinstance(out, np.ndarray) and out.shape == (2, 30, 3)
        np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=1e-12)
    assert np.abs(ref.numpy() - points.numpy()).max() > 0.1  # the translation is not a no-op


# ----------------------------------------------------------------------------- reparameterization


@pytest.mark.parametrize("variant", ["fastvit_t8", "fastvit_sa12"])
def test_fused_form_equals_train_form_with_random_batchnorm(variant):
    torch.manual_seed(0)
    model = build_model(variant)
    randomize_statistics(model)
    model.eval()
    before = copy.deepcopy(model.state_dict())
    x = images(2, seed=3)
    with torch.no_grad():
        ref = model(x)
        deploy = reparameterize(model)
        out = deploy(x)
    # the original is untouched and still the train form
    assert not getattr(model, "deploy", False) and getattr(deploy, "deploy", False)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # every BatchNorm and LayerScale is gone from the trunk, and from the head's neck (folded into its
    # convolutions); the head's MLP and decoders are intact
    kinds = {type(m).__name__ for m in deploy.encoder.trunk.modules()}
    assert not kinds & {"BatchNorm2d", "BatchNormAct2d", "LayerScale2d"}, kinds
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deploy.head.modules())
    head_ref, head_dep = model.head.state_dict(), deploy.head.state_dict()
    kept = [k for k in head_ref if k.startswith(("dec_", "mlp.", "init_state", "token.", "where."))]
    assert kept and all(torch.equal(head_ref[k], head_dep[k]) for k in kept)
    # the outputs are non-trivial (the randomized blocks matter) and equal
    assert (ref["vertices"][0] - ref["vertices"][1]).abs().max() > 1e-4
    assert (out["vertices"] - ref["vertices"]).abs().max() < 1e-5
    assert (out["joints"] - ref["joints"]).abs().max() < 1e-5
    assert (out["cam"] - ref["cam"]).abs().max() < 1e-4


# ----------------------------------------------------------------------------- checkpoints


def test_save_load_roundtrip_exact(t8, tmp_path):
    x = images(1, seed=4)
    for form, model in (("train", t8.eval()), ("deploy", reparameterize(t8))):
        path = save_model(model, tmp_path / f"{form}.pt", extra={"epoch": 3})
        payload = torch.load(path, weights_only=True)
        assert payload["format"] == "handmesh" and payload["version"] == 1
        assert payload["deploy"] is (form == "deploy") and payload["extra"] == {"epoch": 3}
        assert not any(is_hand_model_key(k) for k in payload["state_dict"])
        loaded = load_model(path)
        assert loaded.config == model.config
        with torch.no_grad():
            a, b = model(x), loaded(x)
        for name in OUTPUT_NAMES:
            assert torch.equal(a[name], b[name]), (form, name)


def test_wrong_variant_and_config_mismatch_fail_clearly(t8, tmp_path):
    path = save_model(t8, tmp_path / "t8.pt")
    payload = torch.load(path, weights_only=True)
    s12 = build_model("fastvit_s12")
    # a t8 file carrying s12-shaped weights
    bad = dict(payload, state_dict=own_state(s12))
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(HandmeshError) as exc:
        load_model(tmp_path / "bad.pt")
    assert_one_line(exc)
    assert "fastvit_t8" in str(exc.value)
    # config disagreeing with the weights (another feature choice), and an unknown variant
    for change in ({"features": "last_stage"}, {"variant": "fastvit_q99"}, {"no_such_field": 1}):
        cfg = dict(payload["model_config"], **change)
        torch.save(dict(payload, model_config=cfg), tmp_path / "cfg.pt")
        with pytest.raises(HandmeshError) as exc:
            load_model(tmp_path / "cfg.pt")
        assert_one_line(exc)


def test_corrupt_and_foreign_files_fail_clearly(t8, tmp_path):
    path = save_model(t8, tmp_path / "ok.pt")
    data = path.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all" * 10)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    for name in ("truncated.pt", "garbage.pt", "foreign.pt", "tensor.pt"):
        with pytest.raises(HandmeshError) as exc:
            load_model(tmp_path / name)
        assert_one_line(exc)
    with pytest.raises(MissingFileError):
        load_model(tmp_path / "absent.pt")


def test_standin_checkpoint_needs_no_mano_and_mano_checkpoint_needs_mano(t8, tmp_path):
    path = save_model(t8, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    # the kind is recorded once, beside the config, and the config is only what was asked for
    assert payload["hand_model_kind"] == t8.hand_model.kind
    assert "hand_model_kind" not in payload["model_config"]
    if payload["hand_model_kind"] == "standin":
        torch.save(dict(payload, hand_model_kind="mano"), tmp_path / "mano.pt")
        # files written before the kind left the config held it there only
        legacy_cfg = dict(payload["model_config"], hand_model_kind="mano")
        legacy = {k: v for k, v in payload.items() if k != "hand_model_kind"}
        torch.save(dict(legacy, model_config=legacy_cfg), tmp_path / "legacy_mano.pt")
        for name in ("mano.pt", "legacy_mano.pt"):
            with pytest.raises(MissingFileError) as exc:
                load_model(tmp_path / name)
            assert "MANO" in str(exc.value)
            assert_one_line(exc)
    # a legacy file recording its own kind in the config loads as before
    legacy_cfg = dict(payload["model_config"], hand_model_kind=payload["hand_model_kind"])
    legacy = {k: v for k, v in payload.items() if k != "hand_model_kind"}
    torch.save(dict(legacy, model_config=legacy_cfg), tmp_path / "legacy.pt")
    assert load_model(tmp_path / "legacy.pt").hand_model.kind == t8.hand_model.kind


def test_hand_model_state_is_never_stored_and_must_be_the_only_difference(t8):
    state = own_state(t8)
    assert state and not any(is_hand_model_key(k) for k in state)
    assert any(is_hand_model_key(k) for k in t8.state_dict())  # the layer does hold tensors
    twin = build_model("fastvit_t8")
    load_own_state(twin, state)
    assert all(torch.equal(v, twin.state_dict()[k]) for k, v in state.items())
    head_key = next(k for k in state if k.startswith("head."))
    for broken in (
        {k: v for k, v in state.items() if k != head_key},
        {**state, "head.extra": torch.zeros(1)},
        {**state, head_key: torch.zeros(7, 3)},
    ):
        with pytest.raises(HandmeshError) as exc:
            load_own_state(twin, broken, "the file")
        assert "the file" in str(exc.value)
        assert_one_line(exc)


# ----------------------------------------------------------------------------- training signals


def test_gradients_flow_to_every_parameter():
    torch.manual_seed(0)
    model = build_model("fastvit_t8").train()
    out = model(images(2, seed=5))
    loss = sum(out[name].float().square().mean() for name in OUTPUT_NAMES)
    loss.backward()
    params = dict(model.named_parameters())
    assert params and all(p.requires_grad for p in params.values())
    missing = [n for n, p in params.items() if p.grad is None]
    assert not missing, missing[:5]
    assert all(torch.isfinite(p.grad).all() for p in params.values())
    for name in ("head.dec_pose.weight", "head.dec_cam.weight", "head.dec_betas.weight", "head.mlp.0.weight"):
        assert params[name].grad.abs().sum() > 0, name
    enc = [p for n, p in params.items() if n.startswith("encoder.")]
    assert sum(int(p.grad.abs().sum() > 0) for p in enc) > 0.9 * len(enc)


# ----------------------------------------------------------------------------- backbone weights


def test_backbone_weights_from_local_file(tmp_path, monkeypatch):
    import timm

    def no_hub(*args, **kwargs):
        raise AssertionError("the model hub must never be contacted")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_hub)
    monkeypatch.setattr(timm.models._builder, "load_pretrained", no_hub)
    torch.manual_seed(1)
    ref = timm.create_model("fastvit_t8", pretrained=False)  # an "ImageNet" model with its classifier
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "fastvit_t8.pth")
    model = build_model("fastvit_t8", backbone_weights=str(tmp_path / "fastvit_t8.pth"))
    own = model.encoder.trunk.state_dict()
    for key, value in ref.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(own[key], value), key
    # a checkpoint of another variant is refused, a missing file says where weights go
    torch.save(timm.create_model("fastvit_s12").state_dict(), tmp_path / "s12.pth")
    with pytest.raises(HandmeshError) as exc:
        build_model("fastvit_t8", backbone_weights=str(tmp_path / "s12.pth"))
    assert_one_line(exc)
    with pytest.raises(MissingFileError) as exc:
        build_model("fastvit_t8", backbone_weights=str(tmp_path / "absent.pth"))
    assert "data/weights" in str(exc.value)
    assert_one_line(exc)
