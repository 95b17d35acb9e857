"""The package's import graph has no cycle and no library that imports a command (bench/import_graph.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "bench" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_cycle_and_no_upward_import(graph):
    report = graph.analyse(ROOT)
    assert report["cycles"] == [] and report["unit_cycles"] == []
    assert report["upward_imports"] == []
    assert "handmesh.export_cli" in report["commands"] and "handmesh.export" not in report["commands"]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_finds_a_lazy_cycle_and_a_library_reaching_into_a_command(graph, tmp_path):
    _write(
        tmp_path,
        {
            "handmesh/__init__.py": "",
            "handmesh/a.py": "def f():\n    from handmesh.sub import b\n",
            "handmesh/sub/__init__.py": "",
            "handmesh/sub/b.py": "from .. import a\n",  # relative: handmesh.a
            "handmesh/tool.py": "def add_arguments(parser):\n    pass\n",
            "handmesh/lib.py": "REGISTRY = {'x': 'handmesh.tool'}\n",
        },
    )
    report = graph.analyse(tmp_path)
    assert report["cycles"] == [["handmesh.a", "handmesh.sub.b"]]
    assert report["unit_cycles"] == [["handmesh.a", "handmesh.sub"]]
    assert report["upward_imports"] == ["handmesh.lib -> handmesh.tool"]
