"""Hostile-input corpus (issue 22): run every case through the command line and count what went wrong.

Each case is a `handmesh` command run as its own process on files made for it. Counted: cases, crashes
(killed by a signal: a segmentation fault is -11 or 139), tracebacks, silent-wrong (a case that must be
refused but exits 0), batch aborts (a folder run that did not finish its good file), and files read
outside the inputs (a canary file that hostile inputs point at, whose access time is set two days back
before each case: any read moves it). Full-disk cases run under a file-size limit (RLIMIT_FSIZE).

The demo's cases run against one demo server (its own process, a fixed test detector): each hostile
upload must come back as handmesh's own one-line message (not Gradio's generic error), the next ordinary
request must still succeed (else it counts as a batch abort), and a flood of uploads must leave Gradio's
cache within `--max-cache-mb`. The cost of the reader's check for JPEGs cut short is measured on 224 px
images against their decode.
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

# the demo server, as `python demo_app.py ARGS` runs it
DEMO_SHELL = "import sys; from handmesh import app; sys.exit(app.main(sys.argv[1:]))"
DEMO_CACHE_MB = 8  # the demo's --max-cache-mb in the flood case
GENERIC_ERROR = "has not enabled verbose error reporting"  # Gradio's message for an error not ours

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
    # 7. a JPEG cut short with an end marker appended (Pillow decodes it silently, the rest grey)
    cut = root / "cut"
    _cut_short_jpeg(cut / "photo.jpg")
    _jpeg(cut / "good.jpg")
    case(
        "JPEG cut short in a folder",
        7,
        ["predict", cut, "--out", root / "o11", *det],
        batch_output=root / "o11/good.jpg.json",
    )
    case(
        "train on a JPEG cut short",
        7,
        ["train", "--data", _freihand(root / "f5", lambda d: _cut_short_jpeg(d / "training/rgb/00000001.jpg")),
         "--out", root / "r11", "--img-size", 64, "--epochs", 1, "--workers", 1],
    )  # fmt: skip
    case("good image", "control", ["predict", good, "--out", root / "o10", *det], expect="ok")
    return cases


def _cut_short_jpeg(path: Path, size: int = 224, keep: float = 1 / 3) -> Path:
    """A noisy JPEG cut to `keep` of its bytes with an end marker appended (header and end intact)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(0).integers(0, 255, (size, size, 3), np.uint8)
    Image.fromarray(noise).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] + b"\xff\xd9")
    return path


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


# ---------------------------------------------------------------------------------------- the demo
def demo_uploads(root: Path, canary_video: Path) -> dict[str, tuple[Path, str, int | str, str]]:
    """The demo's hostile uploads: name -> (file, endpoint, issue item, words handmesh's message holds)."""
    from PIL import Image

    root.mkdir(parents=True)
    text, pdf, ps = root / "notes.jpg", root / "doc.png", root / "photo.jpg"
    text.write_text("this is not an image\n" * 20)
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    ps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n")
    good = root / "good.png"
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(good)
    cut_png = root / "cut.png"
    cut_png.write_bytes(good.read_bytes()[:300])
    bomb = root / "bomb.png"
    Image.new("L", (13000, 13000)).save(bomb, optimize=True)  # half a megabyte, 169 megapixels
    playlist = root / "clip.mp4"
    playlist.write_text(f"#EXTM3U\n#EXTINF:1,\n{canary_video}\n#EXT-X-ENDLIST\n")
    return {
        "text named .jpg": (text, "/predict_image", 4, "notes.jpg"),
        "PDF named .png": (pdf, "/predict_image", 4, "doc.png"),
        "PostScript named .jpg": (ps, "/predict_image", 4, "photo.jpg"),
        "truncated PNG": (cut_png, "/predict_image", 4, "cut.png"),
        "JPEG cut short": (_cut_short_jpeg(root / "cut.jpg"), "/predict_image", 7, "ends early"),
        "13000 x 13000 PNG": (bomb, "/predict_image", 4, "13000x13000"),
        "HLS playlist named .mp4": (playlist, "/process_video", 1, "playlist"),
    }


def _start_demo(tmp: Path, timeout: float):
    """The demo server on a free loopback port with its temporary files under `tmp`: (url, process, log)."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, TMPDIR=str(tmp), GRADIO_TEMP_DIR=str(tmp / "gradio"), PYTHONUNBUFFERED="1",
               GRADIO_ANALYTICS_ENABLED="False")  # fmt: skip
    log = tmp / "demo.log"
    args = ["--port", str(port), "--detector", "static:20,20,120,110", "--max-cache-mb", str(DEMO_CACHE_MB)]
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-c", DEMO_SHELL, *args], env=env, stdout=fh, stderr=fh)
    url, deadline = f"http://127.0.0.1:{port}/", time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return url, proc, log
        except OSError:
            time.sleep(1)
    proc.kill()
    raise RuntimeError(f"the demo did not start: {log.read_text()[-2000:]}")


def _tree_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def run_demo_cases(root: Path, canaries: list[Path], canary_video: Path, timeout: float) -> list[dict]:
    """Every hostile upload against one demo server, then an upload flood against its cache cap."""
    import httpx
    from gradio_client import Client, handle_file

    tmp = root / "demo_tmp"
    tmp.mkdir(parents=True)
    uploads = demo_uploads(root / "demo_uploads", canary_video)
    good = uploads["text named .jpg"][0].with_name("good.png")
    url, proc, log = _start_demo(tmp, timeout)
    client = Client(
        url, verbose=False, download_files=str(root / "downloads"), httpx_kwargs={"timeout": timeout}
    )
    results, log_at = [], 0

    def record(name, item, start, atimes, message, refused, named=True, expect_refused=True, ok_next=True):
        """One case's outcome; tracebacks are looked for in the server's log since the last case."""
        nonlocal log_at
        log_text = log.read_text()
        results.append({
            "name": f"demo: {name}", "item": item, "rc": 1 if refused else 0,
            "seconds": round(time.perf_counter() - start, 1), "crash": proc.poll() is not None,
            "traceback": "Traceback" in log_text[log_at:],
            "silent_wrong": expect_refused and not refused,
            "refused_in_one_line": expect_refused and refused and named and "\n" not in message
            and GENERIC_ERROR not in message,
            "batch_abort": not ok_next,
            "read_outside": any(c.stat().st_atime != t for c, t in zip(canaries, atimes, strict=True)),
            "line": message[:300],
        })  # fmt: skip
        log_at = len(log_text)

    try:
        for name, (path, endpoint, item, words) in uploads.items():
            atimes, start = [_age(c) for c in canaries], time.perf_counter()
            try:
                client.predict(handle_file(str(path)), api_name=endpoint)
                message, refused = "accepted", False
            except Exception as exc:  # noqa: BLE001 - gradio_client raises AppError with the page's message
                message, refused = str(exc), True
            try:
                client.predict(handle_file(str(good)), api_name="/predict_image")
                ok_next = True
            except Exception:  # noqa: BLE001 - any failure of the ordinary request counts
                ok_next = False
            record(name, item, start, atimes, message, refused, named=words in message, ok_next=ok_next)
        # 3. an upload flood: three times the cap in 1 MB files, no request of ours in between
        atimes, start = [_age(c) for c in canaries], time.perf_counter()
        owned = next((tmp / "gradio").glob("handmesh-gradio-*"))
        for i in range(3 * DEMO_CACHE_MB):
            httpx.post(f"{url}gradio_api/upload", files=[("files", (f"f{i}.bin", os.urandom(2**20)))])
        deadline = time.time() + 30
        while _tree_bytes(owned) > DEMO_CACHE_MB * 2**20 and time.time() < deadline:
            time.sleep(0.5)
        held = _tree_bytes(owned)
        line = f"Gradio's cache holds {held / 2**20:.1f} MB after {3 * DEMO_CACHE_MB} MB of uploads (cap {DEMO_CACHE_MB} MB)"
        # the cap holding is this case's refusal (a cache over it: silent-wrong); no message to count
        record("upload flood", 3, start, atimes, line, held <= DEMO_CACHE_MB * 2**20)
        results[-1]["refused_in_one_line"] = False
        # the control: an ordinary upload succeeds
        atimes, start = [_age(c) for c in canaries], time.perf_counter()
        try:
            client.predict(handle_file(str(good)), api_name="/predict_image")
            message, refused = "ok", False
        except Exception as exc:  # noqa: BLE001
            message, refused = str(exc), True
        record("good image", "control", start, atimes, message, refused, expect_refused=False)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return results


def jpeg_check_cost(n: int = 200) -> dict:
    """The reader's check for JPEGs cut short, per 224 px image: the corner test every JPEG pays, the
    strict second decode only an image ending in libjpeg's fill grey pays, and the decode itself."""
    from PIL import Image

    from handmesh.data.io import jpeg_cut_short, strict_jpeg_refuses

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:224, 0:224]
    decode, corner, strict = [], [], []
    for i in range(n):
        ramp = np.stack([(xx + yy + i) % 256, (2 * xx) % 256, (3 * yy) % 256], -1)
        image = np.clip(ramp + rng.normal(0, 8, ramp.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        t0 = time.perf_counter()
        im = Image.open(io.BytesIO(data), formats=["JPEG"])
        np.asarray(im.convert("RGB"))
        t1 = time.perf_counter()
        if jpeg_cut_short(im, lambda data=data: data):
            raise RuntimeError("a complete JPEG was taken for one cut short")
        t2 = time.perf_counter()
        strict_jpeg_refuses(data)
        t3 = time.perf_counter()
        decode.append(t1 - t0)
        corner.append(t2 - t1)
        strict.append(t3 - t2)
    caught, cuts = _cut_points_caught(data)
    med = {
        k: float(np.median(v)) * 1000
        for k, v in {"decode": decode, "corner": corner, "strict": strict}.items()
    }
    return {
        "images": n,
        "size_px": 224,
        "decode_ms_median": round(med["decode"], 4),
        "corner_check_ms_median": round(med["corner"], 4),
        "corner_check_over_decode": round(med["corner"] / med["decode"], 4),
        "strict_decode_ms_median": round(med["strict"], 4),
        "cut_points": cuts,
        "cut_points_caught": caught,
        "note": "every JPEG pays the corner check; only one whose bottom-right 4x4 pixels are exactly grey "
        "128 (libjpeg's fill after the data ran out) also pays the strict decode",
    }


def _cut_points_caught(data: bytes, step: int = 37) -> tuple[int, int]:
    """Cut a complete JPEG's scan every `step` bytes (an end marker appended each time): how many of the
    cuts the reader refuses, and how many there were."""
    from handmesh.data.io import decode_image
    from handmesh.errors import HandmeshError

    start = data.find(b"\xff\xda") + 20  # just past the scan header
    caught = cuts = 0
    for end in range(start, len(data) - 2, step):
        cuts += 1
        try:
            decode_image(data[:end] + b"\xff\xd9")
        except HandmeshError:
            caught += 1
    return caught, cuts


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
        results = [run_case(case, [canary, canary_video], args.timeout) for case in cases]
        results += run_demo_cases(root / "demo", [canary, canary_video], canary_video, args.timeout)
        for result in results:
            flags = [
                k for k in ("crash", "traceback", "silent_wrong", "batch_abort", "read_outside") if result[k]
            ]
            print(
                f"{result['name']:<38} rc {result['rc']:>4}  {', '.join(flags) or 'ok'}  {result['line'][:90]}"
            )
    cost = jpeg_check_cost()
    print(f"JPEG cut-short check: {json.dumps(cost)}")
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
        "jpeg_cut_short_check": cost,
        "machine": {"cpu": platform.processor() or platform.machine(), "load_average": os.getloadavg()},
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(counts))
    print(f"wrote {out}", file=sys.stderr)
    return 0
