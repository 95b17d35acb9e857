"""handmesh: real-time 3D hand mesh recovery from a single RGB image."""

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


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'handmesh' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
