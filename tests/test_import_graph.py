"""The house as docs/architecture.md draws it: no import circles, and every import goes down a floor.

Every `import` in a module counts, at module level or inside a function (a function-level import that
dodges a circle is still a circle). A module's room is the longest prefix of its name in `FLOORS`; an
import may go to a lower floor or stay in its own room, never up or sideways to another room of the same
floor. A new module whose room is not listed fails here: decide its floor, then list it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: neuroflux_lib, lowest floor first (the floors of docs/architecture.md).
LIB_FLOORS: list[list[str]] = [
    # The root and the sub-packages' __init__ files hold docstrings (and the version) only.
    ["neuroflux_lib", "errors", "paths", "process_pool", "evaluation", "serving", "training"],
    ["config", "locks"],  # the schema; config.resolve sits above the registry
    ["data"],
    ["models", "monitoring", "tracking", "evaluation.metrics"],
    ["config.resolve", "plots"],
    ["evaluation.intervals", "evaluation.baselines", "evaluation.calibration"],
    ["evaluation.comparison", "evaluation.confound", "serving.gradcam"],
    ["evaluation.report", "evaluation.reference", "serving.artifacts"],
    ["serving.model_card", "serving.export", "training.loop", "training.learn_check", "evaluation.trust"],
    ["serving.predictor", "training.feature_cache", "evaluation.evaluate", "evaluation.promotion"],
    ["training.steps", "serving.explain", "serving.incoming", "evaluation.gradcam_gallery"],
    ["training.tuning", "evaluation.cross_validation"],
    ["demo"],
]
#: neuroflux_assets, lowest floor first.
ASSETS_FLOORS: list[list[str]] = [
    ["partitions", "settings", "metadata", "instance"],
    ["resources", "io_managers", "executors", "locking"],
    ["defs"],
    ["definitions"],
    ["api"],
    ["cli", "neuroflux_assets"],  # the package's own face: `from neuroflux_assets import load_predictor`
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(package: str) -> dict[str, set[str]]:
    """{module: the package's modules it imports} (both `import a.b` and `from a import b` forms)."""
    modules = {module_name(p): p for p in (REPO / package).rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                # `from a import b`: the module a.b when it exists, else the module a.
                submodules = [
                    f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules
                ]
                targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
        graph.setdefault(name, set())
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def room(module: str, package: str, floors: list[list[str]]) -> tuple[str, int] | None:
    """(room, floor) by the longest listed prefix of the module's name inside its package."""
    inner = module.removeprefix(package).lstrip(".") or package
    best = None
    for level, rooms in enumerate(floors):
        for name in rooms:
            if (inner == name or inner.startswith(f"{name}.")) and (best is None or len(name) > len(best[0])):
                best = (name, level)
    return best


PACKAGES = [("neuroflux_lib", LIB_FLOORS), ("neuroflux_assets", ASSETS_FLOORS)]


@pytest.mark.parametrize(("package", "floors"), PACKAGES, ids=[p for p, _ in PACKAGES])
def test_no_import_circles(package: str, floors: list[list[str]]) -> None:
    assert cycles(imports(package)) == []


@pytest.mark.parametrize(("package", "floors"), PACKAGES, ids=[p for p, _ in PACKAGES])
def test_every_import_goes_down_a_floor(package: str, floors: list[list[str]]) -> None:
    graph = imports(package)
    unplaced = sorted(m for m in graph if room(m, package, floors) is None)
    assert not unplaced, f"modules in no room of the floors above: {unplaced}"
    upward = []
    for module, targets in sorted(graph.items()):
        here = room(module, package, floors)
        for target in sorted(targets):
            there = room(target, package, floors)
            if there[1] > here[1] or (there[1] == here[1] and there[0] != here[0]):
                upward.append(f"{module} (floor {here[1]}) -> {target} (floor {there[1]})")
    assert not upward, "\n".join(upward)


def test_the_library_never_imports_dagster_or_the_dagster_layer() -> None:
    offenders = []
    for path in (REPO / "neuroflux_lib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            offenders += [
                f"{path.relative_to(REPO)}: {n}"
                for n in names
                if n.split(".")[0] in ("dagster", "dagster_k8s", "dagster_postgres", "neuroflux_assets")
            ]
    assert not offenders, offenders


def test_the_checker_sees_a_circle_and_an_upward_import(tmp_path: Path, monkeypatch) -> None:
    """The graph above is the real one: an added circle or upward arrow would be found."""
    graph = {"p.a": {"p.b"}, "p.b": {"p.a"}, "p.c": set()}
    assert cycles(graph) == [["p.a", "p.b"]]
    assert (
        room("neuroflux_lib.serving.predictor", "neuroflux_lib", LIB_FLOORS)[1]
        > room("neuroflux_lib.training.loop", "neuroflux_lib", LIB_FLOORS)[1]
    )
    assert "neuroflux_lib.models.registry" in imports("neuroflux_lib")["neuroflux_lib.config.resolve"]
