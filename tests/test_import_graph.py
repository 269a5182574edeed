"""The import graph of the toolkit: no cycles, and no import that runs back up the layers.

Every ``import`` and ``from ... import`` counts, also those inside functions: a cycle hidden in a
function body is still a cycle a reader has to untangle. Imports under ``if TYPE_CHECKING:`` name
a type and never run; they count for the layers, not for cycles (a dataset's base-model builder
may name the dataset class it is given).
The layers, from the bottom (docs/architecture.md): the method and the plugin API flat in
``lime_toolkit/``, then ``lime_toolkit.runs`` (the jobs), ``lime_toolkit.report`` (tables, figures,
HTML), ``lime_toolkit.cli`` (the commands). The built-in plugins import only the core.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"lime_toolkit": ROOT / "lime_toolkit", "lime_toolkit_plugins": ROOT / "plugins"}
LAYERS = ("lime_toolkit", "lime_toolkit.runs", "lime_toolkit.report", "lime_toolkit.cli")
ENTRY_POINTS = {"lime_toolkit.__main__"}  # ``python -m lime_toolkit`` starts the command line


def modules() -> dict[str, Path]:
    out = {}
    for name, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([name, *parts])] = path
    return out


def type_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def imports_of(module: str, path: Path, known: dict, types: bool = True) -> set[str]:
    """The project modules ``module`` imports (a name imported from a package counts as its
    submodule when there is one); ``types=False`` leaves out the imports under TYPE_CHECKING."""
    is_package = path.name == "__init__.py"
    found = set()
    tree = ast.parse(path.read_text())
    skip = set() if types else type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != module}


def graph(types: bool = True) -> dict[str, set[str]]:
    known = modules()
    return {m: imports_of(m, p, known, types) for m, p in known.items()}


def test_the_graph_is_read():
    g = graph()
    assert "lime_toolkit.training" in g["lime_toolkit.runs.train"]
    assert "lime_toolkit.cli.common" in g["lime_toolkit.cli.train"]
    assert len(g) > 60
    assert "lime_toolkit_plugins.mlama.dataset" in g["lime_toolkit_plugins.mlama.base_model"]  # TYPE_CHECKING
    assert "lime_toolkit_plugins.mlama.dataset" not in graph(types=False)["lime_toolkit_plugins.mlama.base_model"]


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        state[m] = "done"
        stack.pop()
        return None

    for m in sorted(g):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(graph(types=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def layer(module: str) -> int:
    if module.startswith("lime_toolkit_plugins"):
        return 0
    return max(i for i, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + "."))


def test_no_import_runs_back_up():
    upward = [f"{m} -> {n}" for m, targets in graph().items() for n in sorted(targets)
              if layer(n) > layer(m) and m not in ENTRY_POINTS]
    assert not upward, "imports from a lower layer into a higher one: " + "; ".join(upward)
