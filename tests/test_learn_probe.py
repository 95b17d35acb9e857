"""bench/learn_probe.py: variants parse into training overrides and probe knobs, and the knobs apply."""

from __future__ import annotations

import pytest
import torch
from conftest import bench_script


@pytest.fixture(scope="module")
def probe():
    return bench_script("learn_probe")


def test_a_variant_splits_into_config_overrides_and_probe_knobs(probe):
    name, overrides, knobs = probe.parse_variant("low:loss_camera=0.1,bn=frozen,lr=0.003,optimizer=sgd")
    assert name == "low"
    assert overrides == ["loss_camera=0.1", "lr=0.003"]
    assert knobs == {"bn": "frozen", "optimizer": "sgd"}
    assert probe.parse_variant("today") == ("today", [], {})
    with pytest.raises(SystemExit, match="bn must be one of"):
        probe.parse_variant("x:bn=off")
    with pytest.raises(SystemExit, match="not KEY=VALUE"):
        probe.parse_variant("x:lr")


def test_frozen_batch_norm_and_dropout_knobs_apply(probe):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.1))
    probe.set_modes(model, {"bn": "frozen", "dropout": "0"})
    assert model.training and model[0].training and not model[1].training
    assert model[2].p == 0.0
    probe.set_modes(model, {})
    assert model[1].training and model[2].p == 0.0  # dropout stays as set; batch norm trains again
