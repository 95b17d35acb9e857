"""Lazy package exports (PEP 562): a name is imported from its module on first use.

A package lists what it re-exports and from which module; importing the package then stays light
(no torch, no GL driver), which synth's render workers and `import handmesh` rely on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def exports_of(package: str, modules: Mapping[str, str]) -> dict[str, str]:
    """Name -> full module name, from `{submodule: "Name Name ..."}` (a package's own submodules)."""
    return {name: f"{package}.{module}" for module, names in modules.items() for name in names.split()}


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package`: `exports` maps each name to its full module name."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
