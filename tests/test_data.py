"""Readers and augmentation: FreiHAND layout on synthetic output, custom annotations.jsonl, geometry-exact
crops (K, rotation, mirroring), clear errors for bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from handmesh.data import open_dataset
from handmesh.data.custom import CustomDataset, read_annotations
from handmesh.data.freihand import FreiHANDAnnotations, FreiHANDDataset, HoldOut, mano_to_mesh
from handmesh.data.io import load_json_array, read_image, write_jpeg
from handmesh.data.record import HandRecord
from handmesh.data.transforms import AugmentConfig, HandTransform, crop_transform, mirror_record
from handmesh.errors import HandmeshError, MissingFileError
from handmesh.geometry import crop_intrinsics_np, project_points_np

CONTRACT = {
    "image": (3, 96, 96),
    "K": (3, 3),
    "joints3d": (21, 3),
    "vertices": (778, 3),
    "joints2d": (21, 2),
    "mano_pose": (48,),
    "betas": (10,),
    "has_joints3d": (),
    "has_vertices": (),
    "has_joints2d": (),
    "has_mano": (),
    "index": (),
}
N_TRAIN, N_EVAL, VERSIONS = 6, 3, 2
CFG = AugmentConfig(img_size=96)


@pytest.fixture(scope="module")
def synth_dir(make_synth_dir) -> Path:
    return make_synth_dir(train=N_TRAIN, eval=N_EVAL, versions=VERSIONS, seed=11, size=128)


def _assert_projection_consistent(sample: dict, tol: float = 1e-3) -> None:
    K = sample["K"].double().numpy()
    uv = project_points_np(sample["joints3d"].double().numpy(), K)
    assert np.abs(uv - sample["joints2d"].double().numpy()).max() < tol


# ---- FreiHAND reader ------------------------------------------------------------------------------


def test_freihand_splits_by_sample_and_contract(synth_dir):
    train = FreiHANDDataset(synth_dir, "train", CFG, held_out=HoldOut(0.34))
    val = FreiHANDDataset(synth_dir, "val", CFG, held_out=HoldOut(0.34))
    assert len(train) + len(val) == N_TRAIN * VERSIONS
    train_ids = {s for s, _ in train.items}
    val_ids = {s for s, _ in val.items}
    assert val_ids and not (train_ids & val_ids) and train_ids | val_ids == set(range(N_TRAIN))
    for ds in (train, val):  # every version of a sample is on the same side
        assert sorted(v for s, v in ds.items if s == next(iter({s for s, _ in ds.items}))) == [0, 1]
    sample = train[0]
    for key, shape in CONTRACT.items():
        assert tuple(sample[key].shape) == shape, key
        assert sample[key].dtype in (torch.float32, torch.int64), key
    assert float(sample["image"].min()) >= 0 and float(sample["image"].max()) <= 1
    assert all(float(sample[k]) == 1.0 for k in ("has_joints3d", "has_vertices", "has_joints2d", "has_mano"))
    for i in range(len(train)):
        _assert_projection_consistent(train[i])
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=4)))
    assert batch["image"].shape == (4, 3, 96, 96)
    # the image id of a version: sample + N * version
    assert train.ann.image_path(2, 1).name == f"{2 + N_TRAIN:08d}.jpg"


def test_freihand_evaluation_split_in_order_unaugmented(synth_dir):
    ev = open_dataset(synth_dir, "evaluation", CFG)
    assert isinstance(ev, FreiHANDDataset) and len(ev) == N_EVAL
    xyz = np.asarray(json.loads((synth_dir / "evaluation_xyz.json").read_text()))
    K = np.asarray(json.loads((synth_dir / "evaluation_K.json").read_text()))
    for i in range(N_EVAL):
        a, b = ev[i], ev[i]
        assert torch.equal(a["image"], b["image"])  # no augmentation
        assert np.allclose(a["joints3d"].numpy(), xyz[i], atol=1e-6)  # full image: no rotation
        assert np.allclose(
            a["K"].numpy(), crop_intrinsics_np(K[i], np.array([0, 0, 128, 128]), 96), atol=1e-4
        )
    assert len(ev.ann.scale) == N_EVAL


def test_missing_verts_are_rebuilt_from_mano(synth_dir, tmp_path):
    copy = tmp_path / "fh"
    shutil.copytree(synth_dir, copy, ignore=shutil.ignore_patterns("*.jpg"))
    (copy / "training/rgb").rmdir()
    (copy / "training/rgb").symlink_to(synth_dir / "training/rgb")
    (copy / "training_verts.json").unlink()
    ann = FreiHANDAnnotations(copy, "training")
    want = load_json_array(synth_dir / "training_verts.json", (778, 3))
    assert np.abs(ann.verts - want).max() < 1e-6
    assert ann.versions == VERSIONS


def test_freihand_missing_and_malformed_files(synth_dir, tmp_path):
    with pytest.raises(MissingFileError, match="data/freihand"):
        FreiHANDDataset(tmp_path / "nowhere", "train")
    bad = tmp_path / "bad"
    shutil.copytree(synth_dir, bad, ignore=shutil.ignore_patterns("*.jpg"))
    xyz = json.loads((bad / "training_xyz.json").read_text())
    xyz[2] = xyz[2][:20]
    (bad / "training_xyz.json").write_text(json.dumps(xyz))
    with pytest.raises(HandmeshError) as err:
        FreiHANDAnnotations(bad, "training")
    msg = str(err.value)
    assert "training_xyz.json" in msg and "entry 2" in msg and "\n" not in msg
    (bad / "training_xyz.json").write_text(
        json.dumps(json.loads((synth_dir / "training_xyz.json").read_text()))
    )
    with pytest.raises(MissingFileError, match="00000000.jpg"):
        FreiHANDAnnotations(bad, "training")


def test_round_trip_through_reader(synth_dir):
    ann = FreiHANDAnnotations(synth_dir, "training")
    mesh = mano_to_mesh(ann.mano, ann.K)
    assert np.abs(mesh["joints"] - ann.xyz).max() < 1e-6
    assert np.abs(mesh["vertices"] - ann.verts).max() < 1e-6


# ---- augmentation ---------------------------------------------------------------------------------


def _dot_record(side: str = "right", rng_seed: int = 0) -> HandRecord:
    """A record whose image has a bright dot exactly where joint 9 projects, on random labels."""
    from handmesh.data.freihand import data_hand_model

    rng = np.random.default_rng(rng_seed)
    hand = data_hand_model()
    pose = np.concatenate([rng.normal(0, 0.8, 3), rng.normal(0, 0.2, 45)])
    betas = rng.normal(0, 1, 10)
    with torch.no_grad():
        out = hand(global_orient=torch.as_tensor(pose[None, :3]), hand_pose=torch.as_tensor(pose[None, 3:]),
                   betas=torch.as_tensor(betas[None]))  # fmt: skip
    shift = np.array([0.03, -0.02, 0.6]) - out.joints[0, 9].numpy()
    joints, verts = out.joints[0].numpy() + shift, out.vertices[0].numpy() + shift
    K = np.array([[520.0, 0.0, 161.0], [0.0, 515.0, 118.0], [0.0, 0.0, 1.0]])
    image = np.zeros((240, 320, 3), np.uint8)
    u, v = project_points_np(joints[9:10], K)[0]
    yy, xx = np.mgrid[0:240, 0:320]
    image[(xx - u) ** 2 + (yy - v) ** 2 <= 3.0**2] = 255
    rec = HandRecord(image=image, K=K, joints3d=joints, vertices=verts, mano_pose=pose, betas=betas)
    # a "left" record is this right hand seen in a mirror; the transform must mirror it back
    return rec if side == "right" else mirror_record(rec)


def _dot_centre(image: torch.Tensor) -> np.ndarray:
    w = image[0].double().numpy()
    w = np.where(w > 0.5, w, 0.0)
    ys, xs = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
    return np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()


@pytest.mark.parametrize("side", ["right", "left"])
def test_augmentation_keeps_2d_and_3d_consistent(side):
    from handmesh.data.freihand import data_hand_model

    cfg = AugmentConfig(
        img_size=128, rotation_prob=1.0, rotation_deg=60, colour=0.0, hue=0.0, blur_prob=0.0,
        noise_prob=0.0, occluder_prob=0.0,
    )  # fmt: skip
    transform = HandTransform(cfg, train=True, crop="hand")
    rec = _dot_record(side)
    hand = data_hand_model()
    for seed in range(4):
        s = transform(rec, np.random.default_rng(seed))
        assert float(s["mirrored"]) == (side == "left")
        _assert_projection_consistent(s)
        K = s["K"].double().numpy()
        assert np.abs(project_points_np(s["vertices"].double().numpy(), K)).max() < 400
        # the image content moved exactly like the labels: the dot sits on joint 9
        assert np.linalg.norm(_dot_centre(s["image"]) - s["joints2d"][9].double().numpy()) < 0.6
        # the rotated global orientation reproduces the rotated 3D joints through the hand model
        pose = s["mano_pose"].double()
        with torch.no_grad():
            out = hand(
                global_orient=pose[None, :3], hand_pose=pose[None, 3:], betas=s["betas"].double()[None]
            )
        got = out.joints[0].numpy() - out.joints[0, 9].numpy()
        want = s["joints3d"].double().numpy() - s["joints3d"][9].double().numpy()
        assert np.abs(got - want).max() < 1e-5


def test_crop_transform_matches_crop_intrinsics():
    K = np.array([[500.0, 0.0, 300.0], [0.0, 480.0, 200.0], [0.0, 0.0, 1.0]])
    M, K_crop, R = crop_transform(K, (250.0, 180.0), 100.0, 64, 0.0)
    assert np.allclose(K_crop, crop_intrinsics_np(K, np.array([200.0, 130.0, 300.0, 230.0]), 64))
    assert np.allclose(R, np.eye(3))


def test_appearance_augmentation_runs_and_keeps_labels():
    transform = HandTransform(
        AugmentConfig(img_size=64, occluder_prob=1.0, blur_prob=1.0, noise_prob=1.0), train=True
    )
    s = transform(_dot_record("right"), np.random.default_rng(0))
    assert s["image"].shape == (3, 64, 64)
    _assert_projection_consistent(s)


# ---- custom datasets ------------------------------------------------------------------------------


def _custom_dir(tmp_path: Path, lines: list) -> Path:
    root = tmp_path / "custom"
    (root / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        write_jpeg(root / f"img/{i}.jpg", rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    (root / "annotations.jsonl").write_text(text)
    return root


def _labels():
    rec = _dot_record("right", 3)
    K = rec.K.copy()
    K[0, 2], K[1, 2] = 80.0, 60.0
    rec.K = K
    return rec


def test_custom_reader_partial_labels(tmp_path):
    rec = _labels()
    kp = project_points_np(rec.joints3d, rec.K)
    kp3 = np.concatenate([kp, np.ones((21, 1))], 1)
    kp3[4, 2] = 0.0  # one unlabelled point
    transl = rec.joints3d[9] - _labels_rest_joint9(rec)
    lines = [
        {"image": "img/0.jpg", "keypoints2d": kp3.tolist(), "box": [40, 20, 120, 100]},  # 2D only, no K
        {"image": "img/1.jpg", "K": rec.K.tolist(), "joints3d": rec.joints3d.tolist(), "confidence": 0.5},
        {"image": "img/2.jpg", "K": rec.K.tolist(), "handedness": "left",
         "mano": {"pose": rec.mano_pose.tolist(), "betas": rec.betas.tolist(), "transl": transl.tolist()}},
        {"image": "img/0.jpg", "K": rec.K.tolist(), "mano": {"pose": rec.mano_pose.tolist(), "betas": rec.betas.tolist()}},
    ]  # fmt: skip
    root = _custom_dir(tmp_path, lines)
    anns, problems, warnings = read_annotations(root)
    assert problems == [] and len(anns) == 4
    ds = CustomDataset(root, "all", AugmentConfig(img_size=64), augment=False)
    has = [
        {k: float(ds[i][k]) for k in ("has_joints3d", "has_vertices", "has_joints2d", "has_mano")}
        for i in range(4)
    ]
    assert has[0] == {"has_joints3d": 0, "has_vertices": 0, "has_joints2d": 1, "has_mano": 0}
    assert has[1] == {"has_joints3d": 1, "has_vertices": 0, "has_joints2d": 1, "has_mano": 0}
    assert has[2] == {"has_joints3d": 1, "has_vertices": 1, "has_joints2d": 1, "has_mano": 1}
    assert has[3] == {"has_joints3d": 0, "has_vertices": 0, "has_joints2d": 0, "has_mano": 1}
    s0 = ds[0]
    assert float(s0["joints2d_conf"][4]) == 0.0 and float(s0["joints2d_conf"][5]) == 1.0
    assert float(ds[1]["weight"]) == 0.5
    _assert_projection_consistent(ds[1])
    s2 = ds[2]
    assert float(s2["mirrored"]) == 1.0
    _assert_projection_consistent(s2)
    assert isinstance(
        open_dataset(root, "train", AugmentConfig(img_size=64), held_out=HoldOut(0.25)), CustomDataset
    )


def _labels_rest_joint9(rec: HandRecord) -> np.ndarray:
    from handmesh.data.freihand import data_hand_model

    hand = data_hand_model("left")
    p = torch.as_tensor(rec.mano_pose)
    with torch.no_grad():
        out = hand(global_orient=p[None, :3], hand_pose=p[None, 3:], betas=torch.as_tensor(rec.betas)[None])
    return out.joints[0, 9].numpy()


def test_custom_bad_lines_are_all_reported_with_line_numbers(tmp_path, capsys):
    lines = [
        {"image": "img/0.jpg", "keypoints2d": [[1, 2]] * 21},
        "{not json",
        {"image": "img/missing.jpg", "joints3d": [[0, 0, 1]] * 20},
        {"image": "img/1.jpg", "handedness": "both", "K": [[1, 0, 0], [0, 1, 0], [0, 0, 0]]},
        {"image": "img/2.jpg", "mano": {"pose": [0] * 48}, "box": [10, 10, 5, 50], "joint3d": []},
        "",
        {"image": "img/2.jpg", "joints3d": [[0, 0, 500]] * 21, "confidence": 2},
    ]
    root = _custom_dir(tmp_path, lines)
    _, problems, warnings = read_annotations(root)
    joined = "\n".join(problems)
    for needle in (
        "line 2: not valid JSON",
        "line 3: image file not found",
        "line 3: joints3d: expected 21x3, got shape 20x3",
        "line 4: handedness",
        "line 4: K is no camera matrix",
        "line 5: mano.betas is required",
        "line 5: box must be",
        "line 7: joints3d: values up to 500",
        "line 7: confidence",
    ):
        assert needle in joined, needle
    assert not any(p.startswith("line 1:") for p in problems)
    assert any("line 5: unknown key" in w for w in warnings)
    with pytest.raises(HandmeshError, match=r"line 2: not valid JSON .*and \d+ more"):
        CustomDataset(root)
    from handmesh.cli import main

    assert main(["check-dataset", str(root)]) == 1
    out = capsys.readouterr().out
    assert out.count("problem: line") == len(problems)
    good = _custom_dir(tmp_path / "good", [lines[0]])
    assert main(["check-dataset", str(good)]) == 0


def test_corrupt_jpeg_names_the_file(tmp_path):
    root = _custom_dir(tmp_path, [{"image": "img/0.jpg", "keypoints2d": [[50, 50]] * 21}])
    data = (root / "img/0.jpg").read_bytes()
    (root / "img/0.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(HandmeshError, match=r"img/0\.jpg"):
        read_image(root / "img/0.jpg")
    with pytest.raises(HandmeshError, match=r"img/0\.jpg"):
        CustomDataset(root, "all")[0]
    from handmesh.cli import main

    assert main(["check-dataset", str(root)]) == 1
    (root / "img/0.jpg").write_bytes(b"not an image at all")
    with pytest.raises(HandmeshError, match=r"cannot decode image .*img/0\.jpg"):
        read_image(root / "img/0.jpg")


def test_json_cache_is_keyed_on_content_not_mtime(tmp_path, monkeypatch):
    import os

    from handmesh.data import io

    monkeypatch.setattr(io, "CACHE_MIN_ENTRIES", 1)
    path = tmp_path / "training_xyz.json"
    path.write_text(json.dumps(np.zeros((3, 21, 3)).tolist()))
    assert load_json_array(path, (21, 3)).shape == (3, 21, 3)
    (cached,) = (tmp_path / ".handmesh_cache").glob("training_xyz.json.*.npy")
    np.save(cached, np.ones((3, 21, 3)))  # the cache of this very content is what gets read
    assert load_json_array(path, (21, 3)).max() == 1.0
    # replaced by a file with an OLDER modification time (as tar and cp -p leave): still re-parsed
    path.write_text(json.dumps(np.full((2, 21, 3), 2.0).tolist()))
    old = cached.stat().st_mtime - 1000
    os.utime(path, (old, old))
    fresh = load_json_array(path, (21, 3))
    assert fresh.shape == (2, 21, 3) and fresh.max() == 2.0
    # one cache entry per JSON file: the entry of the earlier content is gone
    assert [p.name for p in (tmp_path / ".handmesh_cache").glob("training_xyz.json.*.npy")] != [cached.name]
    assert len(list((tmp_path / ".handmesh_cache").glob("training_xyz.json.*.npy"))) == 1
    cached_now = next((tmp_path / ".handmesh_cache").glob("training_xyz.json.*.npy"))
    cached_now.write_bytes(b"damaged")  # a damaged cache is rebuilt, not trusted or fatal
    assert load_json_array(path, (21, 3)).max() == 2.0


def test_loader_benchmark_measures(synth_dir):
    from handmesh.benchmarks.data import loader_rate, sample_cpu_ms

    ds = FreiHANDDataset(synth_dir, "training", CFG)
    assert loader_rate(ds, 0, 2, 3) > 0
    assert sample_cpu_ms(ds, 2) > 0


def test_custom_validation_split_by_image(tmp_path):
    kp = [[60 + i, 50 + i] for i in range(21)]
    lines = [{"image": f"img/{i % 3}.jpg", "keypoints2d": kp} for i in range(9)]  # 3 hands per image
    root = _custom_dir(tmp_path, lines)
    train = CustomDataset(root, "train", AugmentConfig(img_size=32), held_out=HoldOut(0.34))
    val = CustomDataset(root, "val", AugmentConfig(img_size=32), held_out=HoldOut(0.34))
    assert len(train) + len(val) == 9 and len(val) == 3
    assert not {a.image for a in train.anns} & {a.image for a in val.anns}


def test_custom_lines_can_pin_their_split_and_test_lines_never_train(tmp_path):
    kp = (np.random.default_rng(1).uniform(20, 100, (21, 2))).tolist()
    lines = [
        {"image": "img/0.jpg", "keypoints2d": kp, "split": "test"},
        {"image": "img/1.jpg", "keypoints2d": kp, "split": "val"},
        {"image": "img/2.jpg", "keypoints2d": kp},
        {"image": "img/2.jpg", "keypoints2d": kp, "split": "train"},
    ]
    root = _custom_dir(tmp_path, lines)

    def lines_of(split):
        ds = open_dataset(root, split, AugmentConfig(img_size=64), held_out=HoldOut(0.5))
        return sorted(a.line for a in ds.anns), ds.split

    assert lines_of("evaluation") == ([1], "test")
    assert lines_of("val") == ([2], "val")  # the line marked val, not a seeded draw
    assert lines_of("train") == ([3, 4], "train")
    assert lines_of("training")[0] == [2, 3, 4] and lines_of("all")[0] == [2, 3, 4]
    # without test lines, evaluation is every line; a bad split value is one problem naming its line
    (root / "annotations.jsonl").write_text(json.dumps({"image": "img/0.jpg", "keypoints2d": kp}) + "\n")
    assert lines_of("evaluation") == ([1], "all")
    (root / "annotations.jsonl").write_text(
        json.dumps({"image": "img/0.jpg", "keypoints2d": kp, "split": "dev"})
    )
    _, problems, _ = read_annotations(root)
    assert len(problems) == 1 and problems[0].startswith("line 1: split must be one of")
