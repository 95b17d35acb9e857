"""Small hostile files that asked for gigabytes, and sidecars that were trusted (issue 22, items 5 and 6).

Each case must be refused with one line that names the file and the problem, before the allocation: the
peak resident memory of the refusing process is measured where a case used to reach gigabytes.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_refused, run_cli

from handmesh.errors import HandmeshError

ROOT = Path(__file__).resolve().parents[1]


def run_with_headroom(setup: str, action: str, headroom_mb: int = 1024) -> tuple[int, str, float]:
    """(exit status, stderr, peak resident MB) of `setup` then `action` in a fresh interpreter whose
    address space may grow by only `headroom_mb` after `setup`: an allocation of gigabytes fails there
    (MemoryError) instead of succeeding lazily, so only a refusal before it gives the expected message."""
    code = (
        "import resource, sys\n"
        f"{setup}\n"
        "size = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmSize:')][0] * 1024\n"
        f"resource.setrlimit(resource.RLIMIT_AS, (size + {headroom_mb} * 2**20, resource.RLIM_INFINITY))\n"
        "try:\n"
        f"    {action}\n"
        "except Exception as e:\n"
        "    print('refused:', type(e).__name__, e, file=sys.stderr)\n"
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    peak = [line for line in proc.stderr.splitlines() if line.startswith("PEAK")]
    return proc.returncode, proc.stderr, int(peak[-1].split()[1]) / 1024 if peak else float("nan")


# ---------------------------------------------------------------------------------------- checkpoints
def tiny_checkpoint(path: Path, pickled: bytes) -> Path:
    """A torch zip checkpoint holding exactly this pickle (80-odd bytes of hostility)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickled)
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/byteorder", "little")
    path.write_bytes(buf.getvalue())
    return path


BYTEARRAY_3GB = b"\x80\x02cbuiltins\nbytearray\n\x8a\x05" + (3_000_000_000).to_bytes(5, "little") + b"\x85R."


def test_checkpoint_asking_bytearray_of_3gb_is_refused_before_loading(tmp_path):
    path = tiny_checkpoint(tmp_path / "bomb.pt", BYTEARRAY_3GB)
    rc, err, _ = run_with_headroom(
        "from handmesh.checkpoint import load_checkpoint", f"load_checkpoint({str(path)!r})"
    )
    assert "refused: HandmeshError" in err and "bomb.pt refused" in err and "bytearray" in err, err[-2000:]
    rc, err = run_cli("export", path, "--onnx", tmp_path / "x.onnx")
    assert_refused(rc, err, "bomb.pt", "allocate")


def test_legacy_format_pickle_is_scanned_too(tmp_path):
    path = tmp_path / "legacy.pt"
    path.write_bytes(BYTEARRAY_3GB)
    with pytest.raises(HandmeshError, match="legacy.pt refused"):
        from handmesh.checkpoint import load_checkpoint

        load_checkpoint(path)


def test_a_good_checkpoint_still_loads(tmp_path):
    from handmesh.checkpoint import load_checkpoint, save_checkpoint

    save_checkpoint(tmp_path / "ok.pt", {"w": torch.arange(5.0), "note": b"bytes are fine", "n": 2**40})
    back = load_checkpoint(tmp_path / "ok.pt")
    assert back["note"] == b"bytes are fine" and back["n"] == 2**40 and back["w"][4] == 4


def test_model_config_fields_in_bounds_but_huge_together_are_refused(tmp_path):
    from handmesh.models import ModelConfig
    from handmesh.models.build import build_model_from_config

    config = ModelConfig(head="pooled", head_hidden=8192, head_layers=16, head_width=2048)
    config.validate()  # each field is within its own bound
    with pytest.raises(HandmeshError, match="million parameters"):
        build_model_from_config(config)
    model_file = tmp_path / "m.pt"
    from handmesh.models import build_model, save_model

    save_model(build_model("fastvit_t8", img_size=64), model_file)
    payload = torch.load(model_file, weights_only=True)
    payload["model_config"].update(head="pooled", head_hidden=8192, head_layers=16)
    torch.save(payload, tmp_path / "huge.pt")
    rc, err, _ = run_with_headroom(
        "from handmesh.models import load_model", f"load_model({str(tmp_path / 'huge.pt')!r})"
    )
    assert "refused: HandmeshError" in err and "million parameters" in err, err[-2000:]  # it asks for 4 GB


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda p: p.update(state_dict=[1, 2]), ["state_dict"]),
        (lambda p: p.update(model_config="fastvit"), ["model_config"]),
        (lambda p: p["state_dict"].update({next(iter(p["state_dict"])): "text"}), ["not a tensor"]),
        (lambda p: p.update(deploy="yes"), ["deploy"]),
    ],
)
def test_wrong_types_inside_a_checkpoint_are_one_line(tmp_path, edit, words):
    from handmesh.models import build_model, save_model

    save_model(build_model("fastvit_t8", img_size=64), tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    edit(payload)
    torch.save(payload, tmp_path / "typed.pt")
    rc, err = run_cli("export", tmp_path / "typed.pt", "--onnx", tmp_path / "x.onnx")
    assert_refused(rc, err, "typed.pt", *words)


# ---------------------------------------------------------------------------------------- MANO pickles
def _chumpy_pickle(path: Path, value) -> Path:
    """A pickle naming chumpy classes (registered for the dump only), as official MANO files do."""
    mod = types.ModuleType("chumpy.ch_ops")

    class add:  # noqa: N801 - chumpy's own class name
        def __init__(self, a, b):
            self.a, self.b = a, b

    add.__module__, add.__qualname__ = "chumpy.ch_ops", "add"
    mod.add = add
    pkg = types.ModuleType("chumpy")
    pkg.ch_ops = mod
    sys.modules.update({"chumpy": pkg, "chumpy.ch_ops": mod})
    try:
        path.write_bytes(pickle.dumps({"v_template": value(add)}, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch_ops"]
    return path


def test_mano_broadcast_add_is_checked_before_it_is_computed(tmp_path):
    path = _chumpy_pickle(tmp_path / "add.pkl", lambda add: add(np.zeros((30000, 1)), np.zeros((1, 30000))))
    assert path.stat().st_size < 1_000_000  # 480 kB asking for 7.2 GB
    rc, err, _ = run_with_headroom(
        "from handmesh.hand_model.mano_io import read_mano_pickle", f"read_mano_pickle({str(path)!r})"
    )
    assert "refused: HandmeshError" in err and "allocation" in err, err[-2000:]


def test_mano_object_arrays_are_refused(tmp_path):
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.array([1, "x", None], dtype=object)}, protocol=2))
    rc, err = run_cli("mano", "import", path, "--out", tmp_path / "mano")
    assert_refused(rc, err, "obj.pkl", "Python objects")


def test_mano_sparse_matrix_with_a_huge_shape_is_refused(tmp_path):
    import scipy.sparse

    small = scipy.sparse.csc_matrix(np.eye(3))
    small._shape = (200_000, 200_000)  # 320 GB when made dense
    path = tmp_path / "sparse.pkl"
    path.write_bytes(pickle.dumps({"J_regressor": small}, protocol=2))
    rc, err = run_cli("mano", "import", path, "--out", tmp_path / "mano")
    assert_refused(rc, err, "sparse.pkl", "allocation")


# ---------------------------------------------------------------------------------------- ONNX sidecars
@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from handmesh.export import export_onnx
    from handmesh.models import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    export_onnx(build_model("fastvit_t8", img_size=64), path, verify=False)
    return path


SIDECAR_CASES = {
    "input_size 30000": (lambda m: m.update(input_size=30000), ["input_size"]),
    "input_size text": (lambda m: m.update(input_size="64"), ["input_size"]),
    "input_size other": (lambda m: m.update(input_size=96), ["input_size 96", "takes"]),
    "faces out of range": (lambda m: m.update(faces=[[0, 1, 99999]]), ["faces"]),
    "faces not triangles": (lambda m: m.update(faces=[[0, 1]]), ["faces"]),
    "faces text": (lambda m: m.update(faces="all"), ["faces"]),
    "input_name wrong": (lambda m: m.update(input_name="pixels"), ["input", "pixels"]),
    "input_name number": (lambda m: m.update(input_name=7), ["input_name"]),
    "deep json": (None, ["not valid JSON"]),
}


@pytest.mark.parametrize("case", list(SIDECAR_CASES))
def test_every_sidecar_field_is_validated(exported, tmp_path, case):
    import shutil

    edit, words = SIDECAR_CASES[case]
    onnx = tmp_path / "m.onnx"
    shutil.copy(exported, onnx)
    side = Path(str(onnx) + ".json")
    if edit is None:
        side.write_text("[" * 100_000 + "]" * 100_000)
    else:
        meta = json.loads(Path(str(exported) + ".json").read_text())
        edit(meta)
        side.write_text(json.dumps(meta))
    image = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(image)
    rc, err = run_cli(
        "predict", image, "--onnx", onnx, "--out", tmp_path / "o", "--detector", "static:5,5,60,60"
    )
    assert_refused(rc, err, "m.onnx", *words)


def test_the_headroom_makes_a_real_allocation_fail():
    """The checks above can fail: a 2 GB allocation after the setup is a MemoryError under the headroom."""
    rc, err, _ = run_with_headroom("import numpy", "numpy.ones(2**28)")
    assert "refused: MemoryError" in err, err[-1000:]
