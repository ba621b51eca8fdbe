"""The package's shape: the product never imports the harness or the tests, and no module of
``rag`` imports, directly or through others, a module that imports it back.

Imports are read from the source (top-level and inside functions), so a lazy import that
closes a circle counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAG = ROOT / "rag"
OUTSIDE = ("eval", "ui", "bench", "tests", "conftest")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)  # "from pkg import module"
    return found


def rag_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in RAG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        if path.name == "__init__.py":
            continue  # a package's __init__ re-exports; importing a submodule runs it but is no dependency
        graph[name] = {m for m in imports_of(path) if m in modules and m != name
                       and modules[m].name != "__init__.py"}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_rag_imports_nothing_outside_the_product():
    wrong = {module_name(p): sorted(m for m in imports_of(p) if m.split(".")[0] in OUTSIDE)
             for p in RAG.rglob("*.py")}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_no_import_cycle_inside_rag():
    assert find_cycle(rag_graph()) is None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_wings_follow_the_data():
    """index <- judge <- answer <- serve, and llm beside them: a wing imports only wings before it."""
    order = {"index": 0, "llm": 0, "judge": 1, "answer": 2, "serve": 3}
    allowed = {"index": {"index"}, "llm": {"llm"}, "judge": {"judge", "index", "llm"},
               "answer": {"answer", "judge", "index", "llm"}, "serve": set(order)}
    bad = []
    for name, deps in rag_graph().items():
        parts = name.split(".")
        if len(parts) < 3 or parts[1] not in order:
            continue
        for dep in deps:
            dparts = dep.split(".")
            if len(dparts) >= 3 and dparts[1] in order and dparts[1] not in allowed[parts[1]]:
                bad.append(f"{name} -> {dep}")
    assert bad == []
