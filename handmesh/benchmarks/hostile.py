"""Hostile-input corpus (issue 22): run every case through the command line and count what went wrong.

Each case is a `handmesh` command run as its own process on files made for it. Counted: cases, crashes
(killed by a signal: a segmentation fault is -11 or 139), tracebacks, silent-wrong (a case that must be
refused but exits 0), batch aborts (a folder run that did not finish its good file), and files read
outside the inputs (a canary file that hostile inputs point at, whose access time is set two days back
before each case: any read moves it). Full-disk cases run under a file-size limit (RLIMIT_FSIZE).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

# each case runs in its own process, as a user's shell runs `handmesh ARGS` (a process boundary, not an
# import of the command modules: the benchmark stays below the command layer)
USER_SHELL = "import sys; from handmesh import cli; sys.exit(cli.main(sys.argv[1:]))"

RESULT = Path("bench/results/hostile_cpu.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `handmesh bench hostile`."""
    parser.add_argument("--json", default=str(RESULT), help=f"where to write the counts (default {RESULT})")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one case may take")


# ---------------------------------------------------------------------------------------- the files
def _jpeg(path: Path, value: int = 120, size=(64, 64)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path, quality=90)
    return path


def _video(path: Path, frames: int = 8, size=(320, 240), noise: bool = False) -> Path:
    from handmesh.pipeline.media import VideoWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with VideoWriter(path, 10, size) as w:
        for i in range(frames):
            shape = (size[1], size[0], 3)
            w.write(rng.integers(0, 255, shape, np.uint8) if noise else np.full(shape, 20 * i, np.uint8))
    return path


def _torch_zip(path: Path, pickled: bytes) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickled)
        zf.writestr("archive/version", "3\n")
    path.write_bytes(buf.getvalue())
    return path


def _edited(model: Path, path: Path, edit) -> Path:
    import torch

    payload = torch.load(model, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


def _chumpy_add(path: Path) -> Path:
    import types

    class add:  # noqa: N801 - chumpy's class name
        def __init__(self, a, b):
            self.a, self.b = a, b

    add.__module__, add.__qualname__ = "chumpy.ch_ops", "add"
    pkg, mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch_ops")
    mod.add, pkg.ch_ops = add, mod
    sys.modules.update({"chumpy": pkg, "chumpy.ch_ops": mod})
    try:
        path.write_bytes(
            pickle.dumps({"v_template": add(np.zeros((30000, 1)), np.zeros((1, 30000)))}, protocol=2)
        )
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch_ops"]
    return path


def _freihand(root: Path, edit=None) -> Path:
    """A 4-sample FreiHAND-layout folder with consistent labels, then `edit(root)`."""
    from handmesh.data.freihand import data_hand_model, mano_to_mesh, uv_scale_from_root

    hand = data_hand_model()
    rng = np.random.default_rng(0)
    n = 4
    K = np.tile(np.array([[200.0, 0, 32], [0, 200.0, 32], [0, 0, 1]]), (n, 1, 1))
    uv, scale = uv_scale_from_root(np.tile([0.0, 0.0, 0.5], (n, 1)), K)
    mano = np.concatenate([rng.normal(0, 0.1, (n, 48)), np.zeros((n, 10)), uv, scale[:, None]], axis=1)
    mesh = mano_to_mesh(mano, K, hand)
    root.mkdir(parents=True)
    for name, arr in {"K": K, "xyz": mesh["joints"], "verts": mesh["vertices"], "mano": mano}.items():
        (root / f"training_{name}.json").write_text(json.dumps(arr.tolist()))
    for i in range(n):
        _jpeg(root / "training/rgb" / f"{i:08d}.jpg", 40 + 20 * i)
    (root / "handmesh_synth.json").write_text(json.dumps({"hand_model": hand.kind, "training_versions": 1}))
    if edit is not None:
        edit(root)
    return root


def _custom(root: Path, line, link_to: Path | None = None) -> Path:
    root.mkdir(parents=True)
    _jpeg(root / "a.jpg")
    if link_to is not None:
        os.symlink(link_to, root / "b.jpg")
    (root / "annotations.jsonl").write_text((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return root


def _json_edit(path: Path, fn) -> None:
    path.write_text(json.dumps(fn(json.loads(path.read_text()))))


def build_cases(root: Path, canary: Path, canary_video: Path) -> list[dict]:
    """The corpus: one dict per case (name, item, args, expect, optional fsize and batch output)."""
    import torch

    from handmesh.export import export_onnx
    from handmesh.models import build_model, save_model

    torch.manual_seed(0)
    model = root / "model.pt"
    save_model(build_model("fastvit_t8", img_size=64), model)
    onnx = root / "onnx" / "m.onnx"
    onnx.parent.mkdir()
    export_onnx(build_model("fastvit_t8", img_size=64), onnx, verify=False)
    good = _jpeg(root / "good.jpg")
    det = ["--detector", "static:5,5,60,60"]
    cases: list[dict] = []

    def case(name, item, args, expect="refused", fsize=None, batch_output=None):
        cases.append(dict(name=name, item=item, args=[str(a) for a in args], expect=expect, fsize=fsize,
                          batch_output=str(batch_output) if batch_output else None))  # fmt: skip

    # 1. playlists and concat lists named like videos, pointing at the canary video
    hls = root / "hls" / "clip.mp4"
    hls.parent.mkdir()
    hls.write_text(f"#EXTM3U\n#EXTINF:1,\n{canary_video}\n#EXT-X-ENDLIST\n")
    case("hls playlist", 1, ["predict", hls, "--out", root / "o1", *det])
    concat = root / "concat" / "clip.mkv"
    concat.parent.mkdir()
    concat.write_text(f"ffconcat version 1.0\nfile '{canary_video}'\n")
    case("concat list", 1, ["predict", concat, "--out", root / "o2", *det])
    folder = root / "mixed"
    folder.mkdir()
    (folder / "clip.mp4").write_text(hls.read_text())
    _jpeg(folder / "good.jpg")
    case(
        "playlist in a folder",
        1,
        ["predict", folder, "--out", root / "o3", *det],
        batch_output=root / "o3/good.jpg.json",
    )
    # 2. full disks
    videos = root / "videos"
    for name in ("a.mp4", "b.webm", "c.avi"):
        _video(videos / name, frames=30, noise=True)  # far bigger than the file-size limit
    _jpeg(videos / "good.jpg")
    case("full disk: predict folder", 2,
         ["predict", videos, "--out", root / "o4", "--checkpoint", model, "--runtime", "torch", *det],
         fsize=150_000, batch_output=root / "o4/good.jpg.json")  # fmt: skip
    fh = _freihand(root / "fh")
    case("full disk: train", 2,
         ["train", "--data", fh, "--out", root / "run", "--img-size", 64, "--epochs", 1, "--batch-size", 2,
          "--workers", 0], fsize=1_000_000)  # fmt: skip
    # 5. small files asking for gigabytes
    bomb = _torch_zip(
        root / "bomb.pt",
        b"\x80\x02cbuiltins\nbytearray\n\x8a\x05" + (3 * 10**9).to_bytes(5, "little") + b"\x85R.",
    )
    case("checkpoint bytearray(3e9)", 5, ["export", bomb, "--onnx", root / "x.onnx"])
    huge = _edited(
        model,
        root / "huge.pt",
        lambda p: p["model_config"].update(head="pooled", head_hidden=8192, head_layers=16),
    )
    case("config 1e9 parameters", 5, ["export", huge, "--onnx", root / "x.onnx"])
    typed = _edited(model, root / "typed.pt", lambda p: p.update(state_dict=[1, 2]))
    case("checkpoint wrong types", "low", ["export", typed, "--onnx", root / "x.onnx"])
    case("MANO broadcast add", 5, ["mano", "import", _chumpy_add(root / "add.pkl"), "--out", root / "mano1"])
    objects = root / "objects.pkl"
    objects.write_bytes(pickle.dumps({"v_template": np.array([1, "x", None], dtype=object)}, protocol=2))
    case("MANO object array", 5, ["mano", "import", objects, "--out", root / "mano2"])
    # 6. sidecars
    for name, edit in {
        "input_size 30000": lambda m: m.update(input_size=30000),
        "faces out of range": lambda m: m.update(faces=[[0, 1, 99999]]),
        "input_name wrong": lambda m: m.update(input_name="pixels"),
    }.items():
        copy = root / name.replace(" ", "_") / "m.onnx"
        copy.parent.mkdir()
        copy.write_bytes(onnx.read_bytes())
        meta = json.loads(Path(str(onnx) + ".json").read_text())
        edit(meta)
        Path(str(copy) + ".json").write_text(json.dumps(meta))
        case(f"sidecar {name}", 6, ["predict", good, "--onnx", copy, "--out", root / "o6", *det])
    # 7. datasets
    kp = [[10 + i, 12 + i] for i in range(21)]
    case(
        "custom symlink escape",
        7,
        ["check-dataset", _custom(root / "c1", {"image": "b.jpg", "keypoints2d": kp}, canary)],
    )
    case("custom fx 1e-300", 7, ["check-dataset", _custom(root / "c2", {"image": "a.jpg", "keypoints2d": kp,
                                                                       "K": [[1e-300, 0, 32], [0, 1e-300, 32], [0, 0, 1]]})])  # fmt: skip
    case(
        "custom keypoints 1e300",
        7,
        ["check-dataset", _custom(root / "c3", {"image": "a.jpg", "keypoints2d": [[1e300, 1]] * 21})],
    )
    case(
        "custom 5000-digit integer",
        "low",
        ["check-dataset", _custom(root / "c4", '{"image": "a.jpg", "confidence": ' + "9" * 5000 + "}")],
    )

    def skew(d):
        return _json_edit(
            d / "training_K.json", lambda K: [K[0], [[200, 1e12, 32], [0, 200, 32], [0, 0, 1]], *K[2:]]
        )

    case("FreiHAND K skew 1e12", 7, ["check-dataset", _freihand(root / "f1", skew)])
    case("FreiHAND PNG named .jpg", 7, ["check-dataset", _freihand(root / "f2", _png_named_jpg)])
    case(
        "FreiHAND xyz is a folder",
        7,
        [
            "check-dataset",
            _freihand(
                root / "f3", lambda d: ((d / "training_xyz.json").unlink(), (d / "training_xyz.json").mkdir())
            ),
        ],
    )
    case(
        "FreiHAND training_versions 'x'",
        7,
        [
            "check-dataset",
            _freihand(
                root / "f4",
                lambda d: _json_edit(d / "handmesh_synth.json", lambda i: {**i, "training_versions": "x"}),
            ),
        ],
    )
    case(
        "train on FreiHAND K skew",
        7,
        ["train", "--data", root / "f1", "--out", root / "r7", "--img-size", 64, "--epochs", 1],
    )
    # low: options, score, evaluate, PostScript
    for command, option, value in [
        ("predict", "--right-color", "nan"), ("predict", "--min-score", "nan"), ("predict", "--opacity", "nan"),
        ("train", "--batch-size", "0"), ("train", "--lr", "nan"), ("train", "--workers", "-1"), ("train", "--epochs", "-1"),
    ]:  # fmt: skip
        where = [good, "--out", root / "o8"] if command == "predict" else ["--data", fh, "--out", root / "r8"]
        case(
            f"{command} {option} {value}",
            "low",
            [command, *where, option, value, *(det if command == "predict" else [])],
        )
    xyz = np.random.default_rng(0).normal(0, 0.03, (2, 21, 3)) + [0, 0, 0.6]
    verts = np.random.default_rng(1).normal(0, 0.03, (2, 778, 3)) + [0, 0, 0.6]
    gt = root / "gt"
    gt.mkdir()
    (gt / "evaluation_xyz.json").write_text(json.dumps(xyz.tolist()))
    (gt / "evaluation_verts.json").write_text(json.dumps(verts.tolist()))
    (gt / "pred.json").write_text(json.dumps([xyz.tolist(), verts.tolist()]))
    case(
        "score --json over the submission",
        "low",
        ["score", gt / "pred.json", "--gt", gt, "--json", gt / "pred.json"],
    )
    nan = _edited(
        model,
        root / "nan.pt",
        lambda p: next(v for v in p["state_dict"].values() if v.is_floating_point()).fill_(float("nan")),
    )
    case(
        "evaluate NaN weights",
        "low",
        ["evaluate", nan, "--data", _freihand_eval(root / "fe"), "--out", root / "ev", "--quiet"],
    )
    ps = root / "ps" / "photo.jpg"
    ps.parent.mkdir()
    ps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n")
    case("PostScript named .jpg", "low", ["predict", ps, "--out", root / "o9", *det])
    case("good image", "control", ["predict", good, "--out", root / "o10", *det], expect="ok")
    return cases


def _png_named_jpg(d: Path) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    at = data.find(b"IDAT")
    data[at + 8 : at + 40] = bytes(range(32))
    (d / "training/rgb/00000001.jpg").write_bytes(bytes(data))


def _freihand_eval(root: Path) -> Path:
    """A FreiHAND folder with an evaluation split (2 samples) for `evaluate`."""
    folder = _freihand(root)
    for name in ("K", "xyz", "verts"):
        arr = json.loads((folder / f"training_{name}.json").read_text())[:2]
        (folder / f"evaluation_{name}.json").write_text(json.dumps(arr))
    (folder / "evaluation_scale.json").write_text(json.dumps([0.03, 0.03]))
    for i in range(2):
        _jpeg(folder / "evaluation/rgb" / f"{i:08d}.jpg")
    return folder


# ---------------------------------------------------------------------------------------- running
def _age(path: Path) -> float:
    old = time.time() - 2 * 86400
    os.utime(path, (old, path.stat().st_mtime))
    return path.stat().st_atime


def run_case(case: dict, canaries: list[Path], timeout: float) -> dict:
    """Run one case as its own process; the outcome and what counts against it."""
    atimes = [_age(c) for c in canaries]
    limit = case["fsize"]

    def preexec():
        if limit:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", USER_SHELL, *case["args"]],
        capture_output=True, text=True, timeout=timeout, preexec_fn=preexec,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    rc, err = proc.returncode, proc.stdout + proc.stderr  # check-dataset prints its problems on stdout
    lines = [line for line in err.splitlines() if "error:" in line or line.startswith("problem:")]
    crashed = rc < 0 or rc >= 128
    return {
        "name": case["name"],
        "item": case["item"],
        "rc": rc,
        "seconds": round(time.perf_counter() - start, 1),
        "crash": crashed,
        "traceback": "Traceback" in err,
        "silent_wrong": case["expect"] == "refused" and rc == 0,
        "refused_in_one_line": case["expect"] == "refused" and rc in (1, 2) and bool(lines),
        "batch_abort": bool(case["batch_output"]) and not Path(case["batch_output"]).is_file(),
        "read_outside": any(c.stat().st_atime != t for c, t in zip(canaries, atimes, strict=True)),
        "line": (lines or err.strip().splitlines() or [""])[-1][:300],
    }


def run(args: argparse.Namespace) -> int:
    """Build the corpus, run it, write the counts to --json and print them."""
    with tempfile.TemporaryDirectory(prefix="handmesh-hostile-") as tmp:
        root = Path(tmp)
        private = root / "private"
        canary = _jpeg(private / "secret.jpg")
        canary_video = _video(private / "secret.mp4", frames=4)
        cases = build_cases(root / "corpus", canary, canary_video)
        probe = _age(canary)
        canary.read_bytes()
        if canary.stat().st_atime == probe:
            print("handmesh bench hostile: this filesystem does not update access times; reads outside the "
                  "inputs are not measured", file=sys.stderr)  # fmt: skip
        results = []
        for case in cases:
            result = run_case(case, [canary, canary_video], args.timeout)
            results.append(result)
            flags = [
                k for k in ("crash", "traceback", "silent_wrong", "batch_abort", "read_outside") if result[k]
            ]
            print(
                f"{result['name']:<38} rc {result['rc']:>4}  {', '.join(flags) or 'ok'}  {result['line'][:90]}"
            )
    counts = {
        "cases": len(results),
        "crashes": sum(r["crash"] for r in results),
        "tracebacks": sum(r["traceback"] for r in results),
        "silent_wrong": sum(r["silent_wrong"] for r in results),
        "batch_aborts": sum(r["batch_abort"] for r in results),
        "files_read_outside_inputs": sum(r["read_outside"] for r in results),
        "refused_in_one_line": sum(r["refused_in_one_line"] for r in results),
    }
    record = {
        "benchmark": "hostile",
        "counts": counts,
        "cases": results,
        "machine": {"cpu": platform.processor() or platform.machine(), "load_average": os.getloadavg()},
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(counts))
    print(f"wrote {out}", file=sys.stderr)
    return 0
