"""Loading MANO files safely: a restricted unpickler for official pickles, and clean .npz files.

Official MANO pickles are Python 2 pickles holding chumpy arrays and a scipy sparse matrix. chumpy
does not import on current numpy, and unpickling runs whatever callables a file names, so the
unpickler below resolves only the few names a MANO file needs, rebuilds chumpy and sparse objects as
plain numpy, and refuses everything else before it can run.
"""

from __future__ import annotations

import codecs
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np

from handmesh.errors import HandmeshError, MissingFileError
from handmesh.hand_model.arrays import SCHEMA, validate_arrays

MANO_FILES = {"right": "MANO_RIGHT", "left": "MANO_LEFT"}
DEFAULT_MANO_DIR = Path("data") / "mano"
# an official MANO pickle is about 4 MB and its largest array (posedirs) about 2.5 MB
MAX_PICKLE_BYTES = 64 * 1024 * 1024
MAX_ARRAY_BYTES = 256 * 1024 * 1024


class _Stub:
    """Stands in for a chumpy or scipy.sparse object: keeps its pickled state, runs nothing."""

    qualname = ""

    def __init__(self, *args, **kwargs) -> None:
        self.args = args
        self.state = None

    def __setstate__(self, state) -> None:
        self.state = state


def _stub_class(qualname: str) -> type:
    return type("Stub_" + qualname.replace(".", "_"), (_Stub,), {"qualname": qualname})


def _check_alloc(count, itemsize: int = 1) -> None:
    """Refuse an allocation a MANO file never needs, before it happens (a tiny pickle can ask for GBs)."""
    if not isinstance(count, int) or count < 0 or count * max(int(itemsize), 1) > MAX_ARRAY_BYTES:
        raise HandmeshError(f"pickle asks for an allocation over {MAX_ARRAY_BYTES >> 20} MB")


def _check_shape(shape, dtype) -> None:
    """Refuse an array of `shape` whose size MAX_ARRAY_BYTES does not allow, before it is built."""
    dims = tuple(np.atleast_1d(np.asarray(shape, dtype=object))) if shape is not None else ()
    if not all(isinstance(d, int | np.integer) and d >= 0 for d in dims):
        raise HandmeshError(f"pickle asks for an array of shape {shape!r}")
    _check_alloc(int(np.prod([int(d) for d in dims], dtype=object)), np.dtype(dtype).itemsize)


class _CheckedArray(np.ndarray):
    """What the unpickler builds for numpy's _reconstruct: its state (shape, dtype, data) is checked when
    pickle sets it, because that, not _reconstruct's placeholder, says what the array holds."""

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise HandmeshError("pickle gives an array an unexpected state")
        shape, dtype = state[-4], state[-3]
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            # an object array's items are whole Python objects: a MANO file holds numbers only
            raise HandmeshError("pickle asks for an array of Python objects")
        _check_shape(shape, dtype)
        super().__setstate__(state)


def _reconstruct_ndarray(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise HandmeshError(f"pickle asks to rebuild an array of type {subtype!r}")
    dims = tuple(shape) if isinstance(shape, tuple | list) else (shape,)
    if not all(isinstance(d, int) for d in dims):
        raise HandmeshError("pickle asks for an array with a non-integer shape")
    _check_alloc(int(np.prod(dims, dtype=object)), np.dtype(dtype).itemsize)
    return np.ndarray.__new__(_CheckedArray, shape, dtype)


def _bytearray(*args):
    if args and isinstance(args[0], int):
        _check_alloc(args[0])
    return bytearray(*args)


def _copyreg_reconstructor(cls, base, state):
    # Python 2 protocols rebuild plain objects this way; only stub classes may come through.
    if not (isinstance(cls, type) and issubclass(cls, _Stub)) or base is not object or state is not None:
        raise HandmeshError(f"pickle asks to rebuild {cls!r} from {base!r}")
    return cls()


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    # Python 3 pickles of bytes under protocol 2 use codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise HandmeshError("pickle calls codecs.encode with unexpected arguments")
    return codecs.encode(text, encoding, errors)


def _scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise HandmeshError("pickle asks for a non-numeric numpy scalar")
    if isinstance(data, str):  # Python 2 str read with encoding="latin1"
        data = data.encode("latin1")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


# Plain containers that chumpy objects keep in their state (and `object`, for copyreg); none runs code.
_SAFE_BUILTINS = {
    "object": object,
    "set": set,
    "frozenset": frozenset,
    "slice": slice,
    "bytearray": _bytearray,
}


def _frombuffer(buf, dtype, shape, order):
    # Protocol-5 pickles of numpy arrays (numpy >= 1.16 writing with protocol 5).
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise HandmeshError("pickle asks for a non-numeric numpy buffer")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order).copy()


_CHUMPY_MODULES = ("chumpy.ch", "chumpy.ch_ops", "chumpy.reordering", "chumpy.linalg", "chumpy.utils")
_SPARSE = {"csc_matrix": "csc", "csr_matrix": "csr"}


def _allowed(module: str, name: str):
    """The object a MANO pickle may reference as `module.name`, or None when it is not allowed."""
    numpy_core = module in ("numpy.core.multiarray", "numpy._core.multiarray")
    if numpy_core and name == "_reconstruct":
        return _reconstruct_ndarray
    if numpy_core and name == "scalar":
        return _scalar
    if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
        return _frombuffer
    if module == "numpy" and name == "ndarray":
        return np.ndarray
    if module == "numpy" and name == "dtype":
        return np.dtype
    if module in ("copy_reg", "copyreg") and name == "_reconstructor":
        return _copyreg_reconstructor
    if module in ("__builtin__", "builtins") and name in _SAFE_BUILTINS:
        return _SAFE_BUILTINS[name]
    if module == "_codecs" and name == "encode":
        return _codecs_encode
    if module in _CHUMPY_MODULES and name.isidentifier():
        return _stub_class(f"{module}.{name}")
    if module.startswith("scipy.sparse") and name in _SPARSE:
        return _stub_class(f"scipy.sparse.{name}")
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only what MANO pickles need and refuses every other global."""

    def find_class(self, module: str, name: str):
        found = _allowed(module, name)
        if found is None:
            raise HandmeshError(
                f"refusing to load this pickle: it references {module}.{name}, which a MANO file never needs"
            )
        return found


def _to_numpy(obj):
    """Turn stubs (chumpy arrays, sparse matrices) into numpy arrays; other values pass through."""
    if isinstance(obj, _Stub):
        state = obj.state if isinstance(obj.state, dict) else {}
        kind = type(obj).qualname
        if kind.startswith("scipy.sparse."):
            import scipy.sparse

            shape = state.get("_shape", state.get("shape"))
            _check_shape(shape, np.float64)
            maker = scipy.sparse.csc_matrix if kind.endswith("csc_matrix") else scipy.sparse.csr_matrix
            try:
                return maker((state["data"], state["indices"], state["indptr"]), shape=shape).toarray()
            except KeyError as exc:
                raise HandmeshError(f"sparse matrix in pickle lacks {exc}") from None
        return _chumpy_value(kind, state)
    if isinstance(obj, np.ndarray):
        return np.asarray(obj)  # a plain array again (not _CheckedArray)
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_numpy(v) for v in obj)
    return obj


def _chumpy_value(kind: str, state: dict) -> np.ndarray:
    """The value of a chumpy object from its pickled attributes (a stored array or a simple expression)."""
    if "x" in state:  # chumpy.ch.Ch keeps its value in `x`
        return np.asarray(_to_numpy(state["x"]))
    name = kind.rsplit(".", 1)[-1]

    def arg(key):
        if key not in state:
            raise HandmeshError(f"chumpy {name} in pickle lacks {key!r}")
        return np.asarray(_to_numpy(state[key]))

    if name == "Select":
        idxs = arg("idxs")
        _check_shape(idxs.shape, np.float64)
        out = arg("a").ravel()[idxs.astype(np.int64)]
        shape = state.get("preferred_shape")
        return out.reshape(shape) if shape is not None else out
    if name == "Reshape":
        return arg("a").reshape(tuple(np.atleast_1d(arg("newshape"))))
    if name == "transpose":
        return np.transpose(arg("a"), state.get("axes"))
    binary = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide}
    if name in binary:
        a, b = arg("a"), arg("b")
        try:  # a (N,1) and a (1,M) operand broadcast to N x M: check the result before it exists
            _check_shape(np.broadcast_shapes(a.shape, b.shape), np.result_type(a, b))
        except ValueError:
            raise HandmeshError(f"chumpy {name} in pickle combines shapes {a.shape} and {b.shape}") from None
        return binary[name](a, b)
    if name == "negative":
        return -arg("a")
    raise HandmeshError(f"unsupported chumpy object {kind} in pickle")


def _check_file(path: Path, limit: int) -> None:
    """A regular file of at most `limit` bytes (FIFOs and devices never end; huge files are no MANO file)."""
    if not path.exists():
        raise MissingFileError(f"no MANO file at {path}")
    if not path.is_file():
        raise HandmeshError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > limit:
        raise HandmeshError(
            f"{path}: {size >> 20} MB is far larger than a MANO file (limit {limit >> 20} MB)"
        )


def read_mano_pickle(path: str | Path) -> dict:
    """Read an official MANO pickle through the restricted unpickler; values come back as numpy."""
    path = Path(path)
    _check_file(path, MAX_PICKLE_BYTES)
    with open(path, "rb") as fh:
        try:
            raw = RestrictedUnpickler(fh, encoding="latin1").load()
            if not isinstance(raw, dict):
                raise HandmeshError(f"expected a dict of arrays, got {type(raw).__name__}")
            return _to_numpy(raw)
        except HandmeshError as exc:
            raise HandmeshError(f"{path}: {exc}") from None
        except RecursionError:
            raise HandmeshError(f"{path}: not a MANO pickle (nested too deeply)") from None
        except MemoryError:
            raise HandmeshError(f"{path}: not a MANO pickle (asks for more memory than there is)") from None
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError, IndexError) as exc:
            raise HandmeshError(f"{path}: not a readable MANO pickle ({exc})") from None


def side_from_name(path: str | Path) -> str | None:
    """'left' / 'right' when the file name says so (MANO_LEFT / MANO_RIGHT), else None."""
    name = Path(path).name.upper()
    if "LEFT" in name:
        return "left"
    if "RIGHT" in name:
        return "right"
    return None


def load_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], str | None]:
    """Validated MANO-schema arrays from a .pkl or .npz file, and the side it says it is (or None)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no MANO file at {path}")
    side = side_from_name(path)
    if path.suffix == ".npz":
        _check_file(path, MAX_PICKLE_BYTES)
        try:
            with zipfile.ZipFile(path) as zf:  # the uncompressed sizes, before numpy inflates anything
                _check_alloc(sum(info.file_size for info in zf.infolist()))
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except (ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise HandmeshError(f"{path}: not a clean .npz ({exc})") from None
        except HandmeshError as exc:
            raise HandmeshError(f"{path}: {exc}") from None
        if "side" in data:
            side = str(data.pop("side"))
    elif path.suffix == ".pkl":
        data = read_mano_pickle(path)
    else:
        raise HandmeshError(f"{path}: expected a .pkl or .npz MANO file")
    return validate_arrays(data, source=str(path)), side


def save_npz(arrays: dict[str, np.ndarray], path: str | Path, side: str) -> Path:
    """Write MANO-schema arrays (and the side) as an uncompressed-pickle-free .npz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: np.asarray(arrays[k]) for k in SCHEMA}
    np.savez_compressed(path, side=np.array(side), **clean)
    return path


def mano_dir() -> Path:
    """Where MANO files are looked for: $HANDMESH_MANO_DIR, else ./data/mano."""
    return Path(os.environ.get("HANDMESH_MANO_DIR") or DEFAULT_MANO_DIR)


def find_mano_file(folder: str | Path, side: str) -> Path | None:
    """MANO_{SIDE}.npz or .pkl inside `folder` (the clean .npz preferred), or None."""
    folder = Path(folder)
    for ext in (".npz", ".pkl"):
        candidate = folder / (MANO_FILES[side] + ext)
        if candidate.is_file():
            return candidate
    return None
