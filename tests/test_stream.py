"""The endless synthetic stream, data specs and mixing: deterministic by index, exact resume, ratios kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handmesh.data.mix import EpochSampler, MixedDataset, parse_data_spec
from handmesh.data.stream import SynthStream, parse_stream_spec
from handmesh.errors import HandmeshError

S = 64


@pytest.fixture(scope="module")
def stream(egl) -> SynthStream:
    return SynthStream(parse_stream_spec("synth:", S))


def test_stream_spec_parses_settings_tuples_and_refuses_unknown_keys():
    cfg = parse_stream_spec("synth:named_pose_prob=1.0, pose_noise=0.05,focal_range=300,600,seed=4", 96)
    assert cfg.size == 96 and cfg.named_pose_prob == 1.0 and cfg.pose_noise == 0.05
    assert cfg.focal_range == (300.0, 600.0) and cfg.seed == 4
    assert parse_stream_spec("synth:size=128", 64).size == 128
    with pytest.raises(HandmeshError, match="no field 'colour'"):
        parse_stream_spec("synth:colour=red", S)
    with pytest.raises(HandmeshError, match="folder setting"):
        parse_stream_spec("synth:train=100", S)
    with pytest.raises(HandmeshError, match="pose_noise"):
        parse_stream_spec("synth:pose_noise=abc", S)


def test_data_specs_and_weights():
    assert [(s.weight, s.spec) for s in parse_data_spec("data/freihand")] == [(1.0, "data/freihand")]
    mix = parse_data_spec("0.3*data/mine + 0.7*synth:size=64,pose_noise=0.1")
    assert [(s.weight, s.spec, s.is_stream) for s in mix] == [
        (0.3, "data/mine", False),
        (0.7, "synth:size=64,pose_noise=0.1", True),
    ]
    for bad in ("0*synth:", "-1*a", "x*a", "a + ", "nan*a"):
        with pytest.raises(HandmeshError):
            parse_data_spec(bad)


def test_a_sample_depends_on_its_index_and_seed_only(stream):
    a, b = stream[7], SynthStream(parse_stream_spec("synth:", S))[7]
    assert a.keys() == b.keys()
    for key in ("joints3d", "vertices", "joints2d", "mano_pose", "betas", "K"):
        assert torch.equal(a[key], b[key]), key
    # llvmpipe may shade a boundary pixel one grey level differently between renderer instances
    assert (a["image"] - b["image"]).abs().max() <= 1.5 / 255
    other = stream[8]
    assert not torch.equal(a["joints3d"], other["joints3d"])
    reseeded = SynthStream(parse_stream_spec("synth:", S), seed_offset=1)[7]
    assert not torch.equal(a["joints3d"], reseeded["joints3d"])
    assert a["image"].shape == (3, S, S) and float(a["has_mano"]) == 1.0


def test_labels_project_onto_the_rendered_hand(stream):
    """The 2D labels are the projection of the 3D labels with the sample's K, inside the image."""
    from handmesh.geometry import project_points

    sample = stream[3]
    uv = project_points(sample["joints3d"][None].double(), sample["K"][None].double())[0]
    assert torch.allclose(uv.float(), sample["joints2d"], atol=1e-3)
    assert (sample["joints2d"] > -S * 0.1).all() and (sample["joints2d"] < S * 1.1).all()


def test_left_record_is_the_mirrored_scene_under_the_same_lights(stream):
    """record(i, "left") renders the mirror image of the scene: its labels land on its own hand, turn back
    into the right hand's labels under `mirror_record`, and the image is not the right one flipped (the
    light rig stays where it is)."""
    from handmesh.data.transforms import mirror_record
    from handmesh.geometry_np import project_points_np

    right, left = stream.record(5), stream.record(5, "left")
    assert left.side == "left"
    uv = np.round(project_points_np(left.joints3d, left.K)).astype(int)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < S) & (uv[:, 1] >= 0) & (uv[:, 1] < S)
    assert inside.sum() >= 15 and left.mask[uv[inside, 1], uv[inside, 0]].mean() > 0.8
    back = mirror_record(left)
    np.testing.assert_allclose(back.joints3d, right.joints3d, atol=1e-9)
    np.testing.assert_allclose(back.mano_pose, right.mano_pose, atol=1e-9)
    np.testing.assert_allclose(back.K, right.K, atol=1e-9)
    # the silhouettes are mirror images (to a boundary pixel at 64 px), the shading is not
    iou = (back.mask & right.mask).sum() / (back.mask | right.mask).sum()
    assert iou > 0.9
    hand = right.mask & back.mask
    diff = np.abs(back.image.astype(int) - right.image.astype(int))[hand].mean()
    assert diff > 2.0
    with pytest.raises(HandmeshError, match="side"):
        stream.record(5, "both")


def test_epoch_sampler_windows_are_new_every_epoch_and_split_across_ranks():
    sampler = EpochSampler(10)
    first = list(sampler)
    sampler.set_epoch(1)
    assert first == list(range(10)) and list(sampler) == list(range(10, 20))
    ranks = [EpochSampler(10, rank=r, world=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(3)
    got = [list(r) for r in ranks]
    assert sorted(got[0] + got[1]) == list(range(30, 40)) and not set(got[0]) & set(got[1])
    assert len(ranks[0]) == 5


class _Constant(torch.utils.data.Dataset):
    """A finite dataset whose samples say which item they are."""

    def __init__(self, n: int, tag: float) -> None:
        self.n, self.tag = n, tag

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"value": torch.tensor(self.tag), "item": torch.tensor(i), "line": torch.tensor(0)}


def test_mix_respects_its_ratios_and_is_deterministic():
    mix = MixedDataset([_Constant(5, 0.0), _Constant(50, 1.0)], [0.25, 0.75], seed=3)
    draws = [mix.locate(i) for i in range(4000)]
    share = np.mean([src for src, _ in draws])
    assert abs(share - 0.75) < 0.03
    assert all(0 <= inner < (5, 50)[src] for src, inner in draws)
    assert draws == [
        MixedDataset([_Constant(5, 0.0), _Constant(50, 1.0)], [1, 3], seed=3).locate(i) for i in range(4000)
    ]
    assert draws != [
        MixedDataset([_Constant(5, 0.0), _Constant(50, 1.0)], [1, 3], seed=4).locate(i) for i in range(4000)
    ]
    sample = mix[0]
    assert "line" not in sample and int(sample["source"]) == draws[0][0]


def test_mix_with_the_stream_takes_new_stream_images(stream):
    from handmesh.data.stream import is_endless

    mix = MixedDataset([_Constant(3, 0.0), stream], [0.5, 0.5], seed=0)
    assert is_endless(stream) and is_endless(mix) and not is_endless(_Constant(3, 0.0))
    stream_items = [inner for src, inner in (mix.locate(i) for i in range(200)) if src == 1]
    assert len(set(stream_items)) == len(stream_items)  # every stream draw is a new image


@pytest.mark.slow
def test_gpu_learning_script_runs_on_the_cpu_with_tiny_settings(tmp_path):
    """bench/train_gpu.sh end to end (device cpu, 64 px, a 20-second budget): a curve point and a model file."""
    import json
    import os
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DEVICE": "cpu", "MINUTES": "0.3", "IMG": "64", "WORKERS": "1", "BATCH": "8"}
    env.update(OUT=str(tmp_path), PY=sys_executable())
    subprocess.run(
        ["bash", str(repo / "bench/train_gpu.sh"), "--eval-images", "16"], env=env, check=True, cwd=repo
    )
    run = next(iter(json.loads((tmp_path / "learning_curve_gpu.json").read_text())["runs"].values()))
    assert run["curve"] and run["curve"][-1]["images_seen"] > 0 and run["settings"]["minutes"] == 0.3
    assert (tmp_path / "learn_realistic_gpu.pt").is_file() and (tmp_path / "learning_curve_gpu.png").is_file()


def sys_executable() -> str:
    """This interpreter (the project's venv in `make test`)."""
    import sys

    return sys.executable


def test_learning_curve_benchmark_writes_its_points(tmp_path, stream):
    """`handmesh bench learn` at toy size: a point per milestone, the baseline on the same set, a model file."""
    import json

    from handmesh.cli import main as cli_main

    out = tmp_path / "curve.json"
    args = ["bench", "learn", "--run", "toy", "--step", "easy", "--images", "32", "--milestones", "16,32"]
    args += ["--batch-size", "8", "--eval-images", "8", "--workers", "0", "--json", str(out)]
    args += ["--png", str(tmp_path / "curve.png"), "--checkpoint", str(tmp_path / "m.pt")]
    assert cli_main(args) == 0
    run = json.loads(out.read_text())["runs"]["toy"]
    assert [p["images_seen"] for p in run["curve"]] == [16, 32]
    base = run["baseline_mean_pose"]["pa_mpjpe_mm"]
    assert 5 < base < 50 and run["target_ratio"] == 0.3
    for point in run["curve"]:
        assert point["ratio_to_baseline"] == pytest.approx(point["pa_mpjpe_mm"] / base, abs=1e-3)
    assert run["best"]["pa_mpjpe_mm"] == min(p["pa_mpjpe_mm"] for p in run["curve"])
    assert (tmp_path / "m.pt").is_file() and (tmp_path / "curve.png").is_file()
