"""The plugin API is what docs/plugins.md lists: the built-in plugins and the example plugin import
nothing else from lime_toolkit, and every listed module exists."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = [ROOT / "plugins", ROOT / "examples" / "lime-toolkit-rescale"]


def plugin_api() -> set[str]:
    """The modules of the table under 'What a plugin may import' in docs/plugins.md."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    section = text.split("## What a plugin may import", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(lime_toolkit[\w.]*)` \|", section, flags=re.M))


def toolkit_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
    return {m for m in found if m == "lime_toolkit" or m.startswith("lime_toolkit.")}


def allowed(module: str, api: set[str]) -> bool:
    return any(module == m or module.startswith(m + ".") and m != "lime_toolkit" for m in api)


def test_the_table_is_read_and_its_modules_exist():
    api = plugin_api()
    assert {"lime_toolkit", "lime_toolkit.editor_api", "lime_toolkit.dataset_api", "lime_toolkit.mask_api"} <= api
    for module in sorted(api):
        importlib.import_module(module)


def test_allowed_is_by_module_not_by_prefix():
    api = {"lime_toolkit", "lime_toolkit.toolbox", "lime_toolkit.data"}
    assert allowed("lime_toolkit.toolbox.tokenizer", api)
    assert allowed("lime_toolkit.data", api)
    assert not allowed("lime_toolkit.dataset_api", api)
    assert not allowed("lime_toolkit.runs.build", api)  # 'lime_toolkit' itself lists only the package


def test_plugins_import_only_the_plugin_api():
    api = plugin_api()
    outside = sorted(f"{path.relative_to(ROOT)}: {module}"
                     for source in PLUGIN_SOURCES for path in source.rglob("*.py")
                     for module in toolkit_imports(path) if not allowed(module, api))
    assert not outside, "plugins import modules that docs/plugins.md does not list as plugin API: " + "; ".join(outside)
