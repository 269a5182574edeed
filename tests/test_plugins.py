"""The plugin system: entry-point discovery, isolation, block list, API versions, registries, CLI."""
import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from lime_toolkit import hookimpl
from lime_toolkit.cli.app import cli
from lime_toolkit.errors import PluginError, UserError
from lime_toolkit.plugin_manager import PluginManager, get_plugin_manager, plugin_registered, reset_plugin_manager


def fake_distribution(tmp_path, monkeypatch, name, module_source):
    """Install a one-module distribution with a `lime_toolkit` entry point by putting its files on
    sys.path (what pip would write into site-packages)."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = tmp_path / f"{name}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[lime_toolkit]\n{name} = {name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_builtins_are_discovered_through_installed_entry_points():
    pm = PluginManager()
    infos = {i.name: i for i in pm.plugins()}
    assert infos["mend"].distribution == "lime-toolkit" and infos["mend"].editors == ["mend"]
    assert infos["masks"].masks == ["l0", "none"]
    assert infos["demo"].datasets == ["demo"]
    assert all(i.status == "ok" for i in infos.values()), [i.error for i in infos.values()]


def test_plugin_that_raises_on_import_is_isolated(tmp_path, monkeypatch):
    fake_distribution(tmp_path, monkeypatch, "broken_plug", "raise RuntimeError('boom at import')\n")
    pm = PluginManager()
    info = {i.name: i for i in pm.plugins()}["broken_plug"]
    assert info.status == "error" and "boom at import" in info.error and info.distribution == "broken_plug"
    assert "mend" in pm.editors  # the others keep working


def test_misspelt_hook_is_an_error_naming_the_plugin(tmp_path, monkeypatch):
    fake_distribution(tmp_path, monkeypatch, "typo_plug", """
        from lime_toolkit import hookimpl
        @hookimpl
        def register_editor(register):
            pass
    """)
    info = {i.name: i for i in PluginManager().plugins()}["typo_plug"]
    assert info.status == "error"
    assert "typo_plug" in info.error and "register_editor" in info.error and "register_editors" in info.error


def test_incompatible_api_version_is_reported_and_not_loaded(tmp_path, monkeypatch):
    fake_distribution(tmp_path, monkeypatch, "future_plug", """
        from lime_toolkit import hookimpl
        LIME_TOOLKIT_API = "2"
        @hookimpl
        def register_editors(register):
            register("future", object)
    """)
    pm = PluginManager()
    info = {i.name: i for i in pm.plugins()}["future_plug"]
    assert info.status == "incompatible" and "API 2" in info.error
    assert "future" not in pm.editors


def test_plugin_raising_while_registering_is_isolated(tmp_path, monkeypatch):
    fake_distribution(tmp_path, monkeypatch, "bad_register", """
        from lime_toolkit import hookimpl
        @hookimpl
        def register_editors(register):
            register("half", object)
            raise ValueError("nope")
    """)
    pm = PluginManager()
    assert "half" not in pm.editors and "mend" in pm.editors
    info = {i.name: i for i in pm.plugins()}["bad_register"]
    assert info.status == "error" and "nope" in info.error


def test_block_list_skips_plugins(monkeypatch):
    monkeypatch.setenv("LIME_TOOLKIT_BLOCK_PLUGINS", "mend, demo")
    pm = PluginManager()
    infos = {i.name: i for i in pm.plugins()}
    assert infos["mend"].status == "blocked" and infos["demo"].status == "blocked"
    assert "mend" not in pm.editors and "l0" in pm.masks


def test_in_process_plugin_registered_and_unregistered():
    class Plugin:
        @hookimpl
        def register_editors(self, register):
            register("in-process", object, description="test")

    reset_plugin_manager()
    try:
        with plugin_registered(Plugin(), "test-plugin") as info:
            assert get_plugin_manager().editors.get("in-process").plugin == "test-plugin"
            assert info.status == "ok" and info.editors == ["in-process"]
        assert "in-process" not in get_plugin_manager().editors
        assert "test-plugin" not in {i.name for i in get_plugin_manager().plugins()}
    finally:
        reset_plugin_manager()


def test_in_process_registration_of_a_broken_plugin_raises():
    class Typo:
        @hookimpl
        def register_maks(self, register):
            pass

    with pytest.raises(PluginError, match="register_maks"):
        PluginManager(load_entry_points=False).register(Typo(), "typo")


def test_unknown_component_error_lists_installed():
    with pytest.raises(UserError, match=r"unknown editor 'nope'; installed: .*mend"):
        PluginManager().editors.get("nope")


def test_list_plugins_json_schema(tmp_path, monkeypatch):
    fake_distribution(tmp_path, monkeypatch, "broken_json", "raise ImportError('missing dependency')\n")
    reset_plugin_manager()
    try:
        result = CliRunner().invoke(cli, ["list-plugins", "--json"])
    finally:
        reset_plugin_manager()
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert isinstance(rows, list)
    for row in rows:
        assert {"name", "distribution", "version", "editors", "datasets", "masks", "error"} <= set(row)
        assert all(isinstance(row[k], list) for k in ("editors", "datasets", "masks"))
    by_name = {r["name"]: r for r in rows}
    assert by_name["demo"]["datasets"] == ["demo"] and by_name["demo"]["error"] is None
    assert "missing dependency" in by_name["broken_json"]["error"]


def test_list_plugins_table_shows_every_plugin_and_what_it_provides():
    reset_plugin_manager()
    try:
        result = CliRunner().invoke(cli, ["list-plugins"], env={"COLUMNS": "200"})
    finally:
        reset_plugin_manager()
    assert result.exit_code == 0, result.output
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.split("│")[1:-1]]
                                          for line in result.output.splitlines() if line.startswith("│"))}
    assert rows["mend"][3] == "mend" and rows["masks"][5] == "l0, none" and rows["demo"][4] == "demo"
    assert {"demo", "et", "ft", "ke", "masks", "mend", "mlama", "xnli"} <= set(rows)
    assert all(cells[1] == "lime-toolkit" and cells[-1] == "ok" for name, cells in rows.items()
               if name in {"demo", "et", "ft", "ke", "masks", "mend", "mlama", "xnli"})


def test_the_suite_keeps_other_distributions_plugins_out(tmp_path, monkeypatch):
    """conftest.py blocks every plugin another distribution provides (so a user's broken plugin
    cannot fail this suite); the built-ins are never blocked."""
    import os

    from conftest import third_party_plugins

    if third_party_plugins():  # this environment has some: the session blocks them
        assert set(third_party_plugins()) <= {p.strip() for p in os.environ["LIME_TOOLKIT_BLOCK_PLUGINS"].split(",")}
    fake_distribution(tmp_path, monkeypatch, "someones_editor", "LIME_TOOLKIT_API = '1'\n")
    assert "someones_editor" in third_party_plugins()
    assert not {"mend", "masks", "demo"} & set(third_party_plugins())
