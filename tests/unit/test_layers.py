"""The five layers of design.md as the tree shows them: imports only run down, and never in a cycle.

Every ``import`` in ``simulator/`` and ``calibration/`` counts, including those inside functions
(a lazy import is still a dependency). A module may import its own package, or a package of a
strictly lower rank; ``calibration`` is imported only by the CLI (and itself).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Import rank of each package: a package may import only packages of lower rank. This is the
#: import order, not design.md's flow numbering (the scenario validates memory fit, so it sits
#: above the cost model it calls).
RANKS: dict[str, int] = {
    "simulator.common": 0,
    "simulator.catalog": 1,
    "simulator.perf": 2,
    "simulator.scenario": 3,
    "simulator.economics": 4,
    "simulator.inference": 5,
    "simulator.training": 5,
    "simulator.fleet": 6,
    "calibration": 6,  # replays published benchmarks in the serving engine (calibration.serving)
    "simulator.results": 7,
    "simulator.report": 8,
    "simulator.sweep": 9,
    "simulator": 10,  # the Python API facade (simulator/__init__.py)
    "simulator.cli": 11,
    "simulator.__main__": 12,
}
#: Packages that only these may import.
IMPORTED_ONLY_BY = {"calibration": {"calibration", "simulator.cli"}}


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of simulator/ and calibration/."""
    found = {}
    for package in ("simulator", "calibration"):
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from a import b`` counts ``a.b`` if a module)."""

    def known(name: str) -> str | None:
        while name and name not in sources:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, text in sources.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            targets.update(t for t in map(known, names) if t is not None)
        targets.discard(module)
        graph[module] = targets
    return graph


def package_of(module: str) -> str:
    """The ranked package a module belongs to (the longest prefix in RANKS)."""
    parts = module.split(".")
    for size in range(len(parts), 0, -1):
        prefix = ".".join(parts[:size])
        if prefix in RANKS:
            return prefix
    raise KeyError(f"{module} belongs to no layer: add its package to RANKS")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` lines for every import that runs up (or sideways) the layers."""
    bad = []
    for module, targets in sorted(graph.items()):
        mine = package_of(module)
        for target in sorted(targets):
            theirs = package_of(target)
            allowed_importers = IMPORTED_ONLY_BY.get(theirs)
            if allowed_importers is not None and mine not in allowed_importers:
                bad.append(f"{module} -> {target} (only {sorted(allowed_importers)} may import {theirs})")
            elif theirs != mine and RANKS[theirs] >= RANKS[mine]:
                bad.append(f"{module} -> {target} ({mine} may not import {theirs})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
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
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def project_graph() -> dict[str, set[str]]:
    return import_graph({m: p.read_text(encoding="utf-8") for m, p in module_files().items()})


def test_no_import_runs_up_the_layers():
    assert layer_violations(project_graph()) == []


def test_the_import_graph_has_no_cycle():
    assert cycles(project_graph()) == []


def test_simulator_top_level_holds_only_packages():
    loose = sorted(p.name for p in (ROOT / "simulator").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]
    for folder in (ROOT / "simulator").iterdir():
        if folder.is_dir() and folder.name != "__pycache__":
            assert (folder / "__init__.py").is_file(), f"{folder.name}/ has no __init__.py"
            assert f"simulator.{folder.name}" in RANKS, f"simulator/{folder.name} has no layer rank"


def test_every_package_says_what_it_may_import():
    for name, path in module_files().items():
        if path.name == "__init__.py" and name.startswith("simulator."):
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            assert "import" in doc.lower(), f"{path}: the docstring says not which layers it may import"


def test_the_checks_catch_a_cycle_and_an_upward_import():
    sources = {
        "simulator.perf.a": "from simulator.fleet.b import x",  # perf may not import fleet
        "simulator.fleet.b": "import simulator.perf.a",
        "simulator.sweep.c": "def f():\n    from calibration.d import y",  # only the CLI may
        "calibration.d": "",
    }
    graph = import_graph(sources)
    assert cycles(graph) == [["simulator.fleet.b", "simulator.perf.a"]]
    violations = layer_violations(graph)
    assert len(violations) == 2
    assert violations[0].startswith("simulator.perf.a -> simulator.fleet.b")
    assert violations[1].startswith("simulator.sweep.c -> calibration.d")
