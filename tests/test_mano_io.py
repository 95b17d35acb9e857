"""Safe MANO loading: chumpy-style pickles load as numpy, code-running pickles are refused unrun."""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from handmesh.cli import main as cli_main
from handmesh.errors import HandmeshError, MissingFileError
from handmesh.hand_model import load_hand_model, mirror_arrays
from handmesh.hand_model.mano_io import read_mano_pickle
from handmesh.hand_model.standin import standin_arrays


def _fake_chumpy():
    """Register throwaway modules named like chumpy's, so pickles name `chumpy.ch.Ch` etc."""
    pkg = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()

    class Select:  # a chumpy expression: no stored value, just its operands
        def __init__(self, a, idxs, preferred_shape):
            self.a, self.idxs, self.preferred_shape = a, idxs, preferred_shape
            self._dirty_vars = {"a"}

    Ch.__module__, Select.__module__ = "chumpy.ch", "chumpy.reordering"
    Ch.__qualname__, Select.__qualname__ = "Ch", "Select"
    ch.Ch, reordering.Select, pkg.ch = Ch, Select, ch
    return {"chumpy": pkg, "chumpy.ch": ch, "chumpy.reordering": reordering}


def write_mano_style_pickle(path, arrays, protocol=2):
    """Write `arrays` the way official MANO files hold them: chumpy arrays and a sparse regressor."""
    fakes = _fake_chumpy()
    sys.modules.update(fakes)
    try:
        ch, sel = fakes["chumpy.ch"].Ch, fakes["chumpy.reordering"].Select
        data = {
            "v_template": ch(arrays["v_template"]),
            "shapedirs": ch(arrays["shapedirs"]),
            "posedirs": sel(
                ch(arrays["posedirs"]), np.arange(arrays["posedirs"].size), arrays["posedirs"].shape
            ),
            "J_regressor": scipy.sparse.csc_matrix(arrays["J_regressor"]),
            "weights": ch(arrays["weights"]),
            "kintree_table": arrays["kintree_table"],
            "f": arrays["f"].astype(np.uint32),
            "hands_components": arrays["hands_components"],
            "hands_mean": arrays["hands_mean"],
            "hands_coeffs": np.zeros((4, 45)),
            "J": ch(arrays["J_regressor"] @ arrays["v_template"]),
            "bs_style": "lbs",
            "bs_type": "lrotmin",
        }
        with open(path, "wb") as fh:
            pickle.dump(data, fh, protocol=protocol)
    finally:
        for name in fakes:
            del sys.modules[name]


@pytest.fixture(scope="module")
def arrays():
    return standin_arrays()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_chumpy_style_pickle_loads_as_numpy(tmp_path, arrays, protocol):
    path = tmp_path / "MANO_RIGHT.pkl"
    write_mano_style_pickle(path, arrays, protocol)
    assert "chumpy" not in sys.modules
    data = read_mano_pickle(path)
    assert "chumpy" not in sys.modules  # nothing of chumpy was imported to read it
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        assert isinstance(data[key], np.ndarray)
        np.testing.assert_allclose(data[key], arrays[key])
    assert data["bs_style"] == "lbs"


def test_standin_loads_through_the_same_smplx_path_as_a_mano_file(tmp_path, arrays):
    path = tmp_path / "MANO_RIGHT.pkl"
    write_mano_style_pickle(path, arrays)
    mano = load_hand_model(path)
    standin = load_hand_model()
    assert mano.kind == "mano" and standin.kind == "standin"
    assert type(mano.mano) is type(standin.mano)
    g = torch.Generator().manual_seed(0)
    kwargs = dict(
        global_orient=torch.rand(2, 3, generator=g),
        hand_pose=torch.rand(2, 45, generator=g) - 0.5,
        betas=torch.randn(2, 10, generator=g),
        transl=torch.rand(2, 3, generator=g),
    )
    a, b = mano(**kwargs), standin(**kwargs)
    assert torch.allclose(a.vertices, b.vertices, atol=1e-6)
    assert torch.allclose(a.joints, b.joints, atol=1e-6)
    assert np.array_equal(mano.faces, standin.faces)


def _evil_pickle(path, payload_cls):
    with open(path, "wb") as fh:
        pickle.dump({"v_template": payload_cls()}, fh, protocol=2)


def test_code_running_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "MANO_RIGHT.pkl"
    _evil_pickle(path, Evil)
    with pytest.raises(HandmeshError, match="refusing"):
        read_mano_pickle(path)
    with pytest.raises(HandmeshError, match="refusing"):
        load_hand_model(path)
    assert not marker.exists()
    # Sanity check of the test itself: the ordinary unpickler does run it.
    with open(path, "rb") as fh:
        pickle.load(fh)
    assert marker.exists()


def test_other_dangerous_globals_are_refused(tmp_path):
    class Eval:
        def __reduce__(self):
            return (eval, ("1+1",))

    class Import:
        def __reduce__(self):
            return (__import__, ("subprocess",))

    class NumpyLoad:
        def __reduce__(self):
            return (np.load, ("x.npy",))

    for cls in (Eval, Import, NumpyLoad):
        path = tmp_path / f"{cls.__name__}.pkl"
        _evil_pickle(path, cls)
        with pytest.raises(HandmeshError, match="refusing"):
            read_mano_pickle(path)


def test_not_a_pickle_and_missing_files(tmp_path):
    bad = tmp_path / "MANO_RIGHT.pkl"
    bad.write_bytes(b"not a pickle at all")
    with pytest.raises(HandmeshError):
        load_hand_model(bad)
    with pytest.raises(MissingFileError):
        load_hand_model(tmp_path / "nothing_here")
    with pytest.raises(MissingFileError):
        load_hand_model(tmp_path / "absent.pkl")


def test_mano_import_cli_writes_clean_npz(tmp_path, arrays, capsys):
    src = tmp_path / "official"
    src.mkdir()
    write_mano_style_pickle(src / "MANO_RIGHT.pkl", arrays)
    out = tmp_path / "clean"
    assert cli_main(["mano", "import", str(src), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "right hand" in printed and "v_template[778, 3]" in printed and "MANO_RIGHT.npz" in printed
    npz = out / "MANO_RIGHT.npz"
    with np.load(npz, allow_pickle=False) as data:  # loads with pickles disabled
        assert str(data["side"]) == "right"
    hand = load_hand_model(npz)
    assert hand.kind == "mano" and hand.side == "right"
    assert torch.allclose(hand().vertices, load_hand_model()().vertices, atol=1e-6)
    assert cli_main(["mano", "import", str(tmp_path / "nope")]) == 2


def test_configured_mano_dir_and_mirrored_left(tmp_path, arrays, monkeypatch):
    write_mano_style_pickle(tmp_path / "MANO_RIGHT.pkl", arrays)
    monkeypatch.setenv("HANDMESH_MANO_DIR", str(tmp_path))
    right = load_hand_model(flat_hand_mean=True)
    left = load_hand_model(side="left", flat_hand_mean=True)
    assert right.kind == left.kind == "mano" and "mirrored" in left.source
    assert np.array_equal(right.render_faces, right.faces)  # MANO has its webs: pictures draw its own faces
    flip = torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(left().vertices, right().vertices * flip, atol=1e-7)


def test_left_file_is_used_and_its_shapedirs_sign_is_fixed(tmp_path, arrays):
    left = mirror_arrays(arrays)
    buggy = dict(left)
    buggy["shapedirs"] = left["shapedirs"].copy()
    buggy["shapedirs"][:, 0] *= -1  # official MANO_LEFT ships x of shapedirs with the wrong sign
    write_mano_style_pickle(tmp_path / "MANO_RIGHT.pkl", arrays)
    write_mano_style_pickle(tmp_path / "MANO_LEFT.pkl", buggy)
    hand = load_hand_model(tmp_path, side="left")
    assert hand.source.endswith("MANO_LEFT.pkl")
    np.testing.assert_allclose(hand.mano.shapedirs.numpy(), left["shapedirs"], atol=1e-6)
