"""Real-time 3D hand meshes in the browser: `python demo_app.py [--checkpoint CKPT | --onnx FILE]`."""

import os
import sys

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from handmesh.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
