"""Intake's domain packages depend on each other in one direction only: no two import each other,
directly or through others (read from the source with `ast`, nothing is imported or run).

Each package under services/intake (screenings, safety_plans, fhir, audit, access, cases) is one
node, and so is each top-level module (db, app, consumer, permissions, settings, metrics), so a
cycle that runs through one of those is found too.
"""

from __future__ import annotations

import ast
from pathlib import Path

INTAKE = Path(__file__).resolve().parents[2] / "services" / "intake"
PREFIX = "services.intake"


def node_of(module: str) -> str | None:
    """The node a module of intake belongs to: its domain package, or the top-level module."""
    if module != PREFIX and not module.startswith(PREFIX + "."):
        return None
    parts = module.split(".")[2:]
    return parts[0] if parts else None


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module `module`'s source imports (at the top or inside a function)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            out.add(source)
            # `from services.intake.fhir import api` imports the module services.intake.fhir.api
            out.update(f"{source}.{alias.name}" for alias in node.names)
    return out


def import_graph(root: Path = INTAKE) -> dict[str, set[str]]:
    """Node -> the other nodes its modules import."""
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        here = node_of(module)
        if here is None:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = {node_of(m) for m in imported(tree, module, path.name == "__init__.py")}
        graph.setdefault(here, set()).update(t for t in targets if t is not None and t != here)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (its nodes, the first repeated at the end), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            cycle = visit(target, [*path, node])
            if cycle is not None:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle is not None:
            return cycle
    return None


def test_the_graph_sees_the_domain_packages() -> None:
    graph = import_graph()
    assert {"screenings", "safety_plans", "fhir", "audit", "access", "cases"} <= set(graph)
    # A sanity check that imports are read at all: applying an assessment reaches three domains.
    assert {"screenings", "safety_plans", "fhir"} <= graph["cases"]


def test_no_import_cycle_between_intake_domains() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_cycle_is_found(tmp_path: Path) -> None:
    """The check itself: two packages that import each other (one in a function, one relative)."""
    root = tmp_path / "services" / "intake"
    for package in ("a", "b", "c"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "a" / "service.py").write_text("from services.intake.b.models import Thing\n")
    (root / "b" / "models.py").write_text("def f() -> None:\n    from ..c import api\n")
    (root / "c" / "api.py").write_text("from services.intake.a import service\n")
    graph = import_graph(root)
    assert graph == {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
