"""handmesh: real-time 3D hand mesh recovery from a single RGB image."""

from handmesh.lazy import lazy_exports

__version__ = "0.1.0"

# Public API re-exported lazily so `import handmesh` stays light (torch/timm load on first use).
_LAZY = {
    "build_model": "handmesh.models",
    "reparameterize": "handmesh.models",
    "save_model": "handmesh.models",
    "load_model": "handmesh.models",
    "ModelConfig": "handmesh.models",
    "export_onnx": "handmesh.export",
}

__getattr__ = lazy_exports(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
