"""The import graph of the handmesh package: cycles, imports from a library into a command, layers, sizes.

    python bench/import_graph.py [--json bench/results/import_graph.json]

Read from the source text (nothing is imported). A module is a file (``handmesh.pipeline.runtime``);
an import is any ``import``/``from ... import`` anywhere in a file (inside functions too: a lazy import
is still a dependency) or a module named by a string in a registry (``cli.SUBCOMMANDS``, the packages'
lazy exports). Two graphs are checked: modules, and top-level units (``handmesh.pipeline`` for every
file below it, ``handmesh.export`` for a file at the top).

- cycle: a strongly connected group of more than one node (modules, or units);
- upward import: a library module importing a command module. A command module is a file that defines
  a top-level ``add_arguments`` or ``main`` (a `handmesh` subcommand, a benchmark, the
  demo app) or lives in ``handmesh.benchmarks``; libraries sit below every command, so a library that
  imports one reaches up (and drags the command's dependencies along);
- layer: 0 for a module that imports no other, else one more than the highest layer it imports (only
  defined without cycles).

`tests/test_import_graph.py` keeps both counts at zero. Exit status 1 when either is not.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "handmesh"
COMMAND_FUNCTIONS = ("add_arguments", "main")
COMMAND_PACKAGES = ("handmesh.benchmarks",)


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (a package is its __init__.py)."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module a dotted name refers to (a name inside a module counts as that module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `module` imports or names by string."""
    tree = ast.parse(path.read_text(), str(path))
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here[: len(here) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names += [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value:
            names += [node.value] if node.value in modules else []  # a registry entry: "handmesh.export_cli"
        elif isinstance(node, ast.Dict) and module in modules and path.name == "__init__.py":
            # a package's lazy exports name its own modules relative to it ({"TrainConfig": "config"})
            names += [
                f"{module}.{v.value}"
                for v in node.values
                if isinstance(v, ast.Constant)
                and isinstance(v.value, str)
                and f"{module}.{v.value}" in modules
            ]
    found = {_resolve(n, modules) for n in names if n.split(".")[0] == PACKAGE}
    return {m for m in found if m is not None and m != module}


def is_command(module: str, path: Path) -> bool:
    """Whether a module is a command (see the module docstring)."""
    if any(module == p or module.startswith(p + ".") for p in COMMAND_PACKAGES):
        return True
    tree = ast.parse(path.read_text(), str(path))
    return any(isinstance(n, ast.FunctionDef) and n.name in COMMAND_FUNCTIONS for n in tree.body)


def unit_of(module: str) -> str:
    """The top-level unit of a module: handmesh.pipeline.runtime -> handmesh.pipeline."""
    return ".".join(module.split(".")[:2])


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of a graph (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                out.append(sorted(group))
    return out


def layers(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each node's layer (0: imports nothing); the graph must have no cycle."""
    memo: dict[str, int] = {}

    def layer(node: str, seen: tuple[str, ...] = ()) -> int:
        if node not in memo:
            if node in seen:
                raise ValueError(f"cycle through {node}")
            memo[node] = 1 + max((layer(d, (*seen, node)) for d in graph.get(node, ())), default=-1)
        return memo[node]

    for node in graph:
        layer(node)
    return memo


def analyse(root: Path = ROOT) -> dict:
    """Counts and lists of the package's import graph (see the module docstring)."""
    modules = module_files(root)
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    units: dict[str, set[str]] = defaultdict(set)
    for m, deps in graph.items():
        units[unit_of(m)] |= {unit_of(d) for d in deps if unit_of(d) != unit_of(m)}
    cycles = [g for g in strongly_connected(graph) if len(g) > 1]
    unit_cycles = [g for g in strongly_connected(dict(units)) if len(g) > 1]
    commands = {m for m, p in modules.items() if is_command(m, p)}
    upward = sorted(
        f"{m} -> {d}" for m, deps in graph.items() if m not in commands for d in deps if d in commands
    )
    unit_layers = layers(units) if not unit_cycles else {}
    lines = {m: len(p.read_text().splitlines()) for m, p in modules.items()}
    largest = max(lines, key=lines.__getitem__)
    return {
        "modules": len(modules),
        "imports": sum(len(d) for d in graph.values()),
        "units": len(units),
        "unit_imports": sum(len(d) for d in units.values()),
        "unit_layers": 1 + max(unit_layers.values(), default=-1),
        "cycles": cycles,
        "unit_cycles": unit_cycles,
        "upward_imports": upward,
        "commands": sorted(commands),
        "largest_module": {"module": largest, "lines": lines[largest]},
    }


def main(argv: list[str] | None = None) -> int:
    """Print the summary (and write it as JSON with --json); exit 1 when a cycle or upward import exists."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    report = analyse()
    print(
        f"{report['modules']} modules, {report['imports']} imports; {report['units']} top-level units, "
        f"{report['unit_imports']} imports, {report['unit_layers']} layers"
    )
    print(f"cycles between modules: {len(report['cycles'])}", *report["cycles"], sep="\n  ")
    print(f"cycles between units: {len(report['unit_cycles'])}", *report["unit_cycles"], sep="\n  ")
    print(f"upward imports: {len(report['upward_imports'])}", *report["upward_imports"], sep="\n  ")
    print(f"largest module: {report['largest_module']['module']} ({report['largest_module']['lines']} lines)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["cycles"] or report["unit_cycles"] or report["upward_imports"] else 0


if __name__ == "__main__":
    sys.exit(main())
