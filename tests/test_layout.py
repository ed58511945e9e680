"""The package's layout rules: imports flow one way (no cycle between modules, function-level imports
included) and no module grows past 400 lines."""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hwnas"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth, except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    name, is_package = module_name(path), path.name == "__init__.py"
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    # a package's __init__ importing its own submodules is its face, not a cycle
    return {name: {d for d in imported(path) if d in files and d != name and not d.startswith(name + ".")}
            for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), but a package with its own submodules."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            root = min(component, key=len)
            if len(component) > 1 and not all(c == root or c.startswith(root + ".") for c in component):
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_modules():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a.x": {"a.y"}, "a.y": {"a.x"}, "a": {"a.x"}}) == [["a.x", "a.y"]]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_the_library_never_imports_click():
    graph = {module_name(p): imported(p) for p in PACKAGE.rglob("*.py")}
    users = sorted(name for name, deps in graph.items() if not name.startswith("hwnas.cli") and "click" in deps)
    assert users == []


def test_the_timing_package_imports_no_torch():
    """`hwnas.timing` ships to target devices that have only numpy and their runtime: nothing of it imports
    torch, or anything of hwnas outside it but `hwnas.errors`."""
    allowed = set(sys.stdlib_module_names) | {"numpy", "onnxruntime", "ai_edge_litert", "hwnas"}
    for path in (PACKAGE / "timing").glob("*.py"):
        deps = imported(path)
        assert {d.split(".")[0] for d in deps} <= allowed, path.name
        assert {d for d in deps if d.startswith("hwnas")} <= {d for d in deps if d.startswith(("hwnas.errors",
                                                                                             "hwnas.timing"))}

    deps = imported(PACKAGE / "timing" / "protocol.py")
    assert {d.split(".")[0] for d in deps} <= {"__future__", "abc", "collections", "dataclasses", "math", "random",
                                                "time", "typing", "numpy", "hwnas"}
    assert {d for d in deps if d.startswith("hwnas")} <= {"hwnas.errors", "hwnas.errors.require",
                                                           "hwnas.errors.require_finite"}


#: the packages (and top-level modules) of hwnas, each importing only those after it in this list
PACKAGE_ORDER = ["cli", "demo", "testing", "export", "judge", "search", "training", "supernet", "data", "profiler",
                 "devices", "tables", "space", "threads", "outputs", "progress", "readers", "files", "registry",
                 "timing", "errors", "hwnas"]
#: known imports against the order, each with the issue that removes it
TOLERATED: dict[tuple[str, str], str] = {}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "hwnas"


def test_packages_import_only_packages_below_them():
    """A package imports only those below it in PACKAGE_ORDER, type-only imports included (so that no cycle
    hides behind TYPE_CHECKING)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    assert sorted({package_of(m) for m in files}) == sorted(PACKAGE_ORDER)
    upward = set()
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hwnas"):
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("hwnas")]
            else:
                continue
            for target in targets:
                if target not in files and target.rsplit(".", 1)[0] in files:
                    target = target.rsplit(".", 1)[0]
                mine, theirs = package_of(name), package_of(target)
                if mine != theirs and PACKAGE_ORDER.index(theirs) < PACKAGE_ORDER.index(mine):
                    upward.add((mine, theirs, name, target))
    assert {(m, t) for m, t, _, _ in upward} - set(TOLERATED) == set(), sorted(upward)
