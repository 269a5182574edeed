"""Meta-tests: every hook is documented, has a docstring, and is exercised by a test.

*Documented*: ``docs/plugins.md`` contains the hook's exact signature, e.g.
``register_editors(register)``, and names no ``register_*`` hook that does not exist.

*Exercised*: some test function (``test_*`` at module level or in a ``Test*`` class) in a
``tests/test_*.py`` file other than this one both

1. contains an implementation of the hook, ``def <hook>(`` (a method of a plugin class defined in
   the test, or a plugin module's source written by the test), and
2. hands a plugin to a plugin manager: calls ``PluginManager(``, ``plugin_registered(``,
   ``get_plugin_manager(`` or ``.add_commands(``.
"""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from lime_toolkit import hookspecs
from lime_toolkit.plugin_manager import HOOK_NAMES

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
MANAGER_CALLS = ("PluginManager(", "plugin_registered(", "get_plugin_manager(", ".add_commands(")


def hookspec_functions() -> dict[str, object]:
    marker = f"{hookspecs.PROJECT}_spec"
    return {name: fn for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, marker)}


def signature(name: str) -> str:
    return f"{name}{inspect.signature(hookspec_functions()[name])}"


def test_hook_names_are_the_hookspecs():
    assert sorted(hookspec_functions()) == HOOK_NAMES and HOOK_NAMES


def test_every_hookspec_has_a_docstring():
    missing = [name for name, fn in hookspec_functions().items() if not (fn.__doc__ or "").strip()]
    assert not missing, f"hookspecs without a docstring: {missing}"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hook_is_documented_with_its_exact_signature(hook):
    assert DOC.is_file(), f"{DOC} is missing"
    assert signature(hook) in DOC.read_text(encoding="utf-8"), f"docs/plugins.md lacks `{signature(hook)}`"


def test_docs_name_no_hook_that_does_not_exist():
    named = set(re.findall(r"\bregister_[a-z_]+\b", DOC.read_text(encoding="utf-8")))
    assert named <= set(HOOK_NAMES), f"docs/plugins.md names unknown hooks: {sorted(named - set(HOOK_NAMES))}"


def collect_test_functions(path: Path):
    """(name, source) of every test function in ``path``."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    nodes = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.startswith("Test")):
        nodes += [n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return [(n.name, ast.get_source_segment(source, n)) for n in nodes if n.name.startswith("test")]



def exercising_tests(hook: str) -> list[str]:
    found = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        for name, source in collect_test_functions(path):
            if re.search(rf"\bdef {hook}\(", source) and any(call in source for call in MANAGER_CALLS):
                found.append(f"{path.name}::{name}")
    return found


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hook_is_exercised_through_a_plugin_manager(hook):
    assert exercising_tests(hook), (
        f"no test implements `{hook}` in a plugin and hands it to a plugin manager (see this module's docstring)")
