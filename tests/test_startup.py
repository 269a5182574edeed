"""Start-up: the light commands never import torch or transformers; lazily registered components
(``register(name, "package.module:Class")``) resolve on first use and run; a lazy component that
cannot be imported is one clear error naming its plugin.

Each light command runs in a fresh interpreter (``sys.modules`` of this test process already holds
torch), through the real entry point's command group with the installed plugins' commands added,
and reports whether torch or transformers were imported by the time it finished.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import lime_toolkit_plugins.masks
from lime_toolkit import hookimpl
from lime_toolkit.cli.app import cli
from lime_toolkit.errors import PluginError
from lime_toolkit.plugin_manager import PluginManager, plugin_registered
from lime_toolkit.registry import Component

HEAVY = ("torch", "transformers")

PROBE = """
import json, sys
from click.testing import CliRunner
from lime_toolkit.cli.app import cli
from lime_toolkit.plugin_manager import get_plugin_manager

get_plugin_manager().add_commands(cli)  # as lime_toolkit.cli.app.main does
result = CliRunner().invoke(cli, sys.argv[1:], prog_name="lime-toolkit")
print(json.dumps({"exit_code": result.exit_code, "output": result.output,
                  "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def probe(args, tmp_path) -> dict:
    """Run ``lime-toolkit ARGS`` in a fresh interpreter: its exit code, output and the heavy modules
    it imported."""
    env = {**os.environ, "LIME_TOOLKIT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_probe_sees_torch_when_a_command_does_import_it(tmp_path):
    """The probe itself works: a module that imports torch is reported."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = PROBE.replace("get_plugin_manager().add_commands(cli)", "import torch")
    done = subprocess.run([sys.executable, "-c", code, "--help"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert json.loads(done.stdout.strip().splitlines()[-1])["heavy"] == ["torch"]


def test_help_imports_neither_torch_nor_transformers(tmp_path):
    got = probe(["--help"], tmp_path)
    assert got["exit_code"] == 0 and "list-plugins" in got["output"]
    assert got["heavy"] == []


MANY = """
import json, sys
from click.testing import CliRunner
from lime_toolkit.cli.app import cli
from lime_toolkit.plugin_manager import get_plugin_manager

get_plugin_manager().add_commands(cli)
for args in json.loads(sys.argv[1]):
    result = CliRunner().invoke(cli, args, prog_name="lime-toolkit")
    print(json.dumps({"exit_code": result.exit_code, "output": result.output,
                      "heavy": sorted(m for m in HEAVY_NAMES if m in sys.modules)}))
""".replace("HEAVY_NAMES", repr(HEAVY))


def probe_many(commands, tmp_path) -> list[dict]:
    """Like :func:`probe`, several commands in one fresh interpreter, one after the other: each
    result says which heavy modules had been imported by the time that command finished (so a
    command that imports none, after others that imported none, is seen as such)."""
    env = {**os.environ, "LIME_TOOLKIT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", MANY, json.dumps(commands)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.strip().splitlines()[-len(commands):]]


def test_command_help_imports_neither_torch_nor_transformers(tmp_path):
    for got in probe_many([[command, "--help"] for command in ("bench", "evaluate", "train", "edit")], tmp_path):
        assert got["exit_code"] == 0 and "--help" in got["output"] and got["heavy"] == []


CHECKED_BEFORE_THE_MODEL = [
    (["train", "--langs", "en,xx"], "the demo dataset has no language xx"),
    (["train", "--train-langs", "xx"], "train.langs: unknown language(s) xx"),
    (["diagnose", "--langs", "xx"], "the demo dataset has no language xx"),
    (["evaluate", "--edit-langs", "xx"], "unknown language(s) xx; this dataset has: en, de"),
    (["evaluate", "--eval-langs", "en,xx"], "unknown language(s) xx; this dataset has: en, de"),
    (["evaluate", "."], "is not a run directory (no config.yaml)"),
    (["evaluate", ".", "--editor", "ft"], "a run directory brings its own configuration; drop --editor"),
    (["evaluate", "--batch-size", "0"], "Invalid value for '--batch-size'"),
    (["edit", "--input", "x [MASK]", "--target", "y", "--lang", "xx"], "unknown language 'xx'; this dataset has"),
    (["edit", ".", "--input", "x [MASK]", "--target", "y", "--lang", "en"], "is not a run directory"),
    (["train", "--dataset", "mlama", "--data-dir", "nowhere"], "mLAMA data directory 'nowhere' does not exist"),
    (["bench", "--json", "."], "Invalid value for '--json'"),
    (["bench", "--batch-size", "0"], "Invalid value for '--batch-size'"),
]


def test_language_option_and_run_directory_errors_import_neither_torch_nor_transformers(tmp_path):
    """Errors a command can find without its model come before the model, in one line."""
    results = probe_many([args for args, _ in CHECKED_BEFORE_THE_MODEL], tmp_path)
    for (args, message), got in zip(CHECKED_BEFORE_THE_MODEL, results):
        assert got["exit_code"] == 2 and message in got["output"], (args, got["output"])
        assert len(got["output"].strip().splitlines()) == 1, (args, got["output"])
        assert got["heavy"] == [], args


def test_list_plugins_imports_neither_torch_nor_transformers(tmp_path):
    got = probe(["list-plugins", "--json"], tmp_path)
    assert got["exit_code"] == 0 and got["heavy"] == []
    plugins = {p["name"]: p for p in json.loads(got["output"])}
    assert plugins["mend"]["editors"] == ["mend"] and plugins["mend"]["status"] == "ok"
    assert plugins["masks"]["masks"] == ["l0", "none"] and plugins["demo"]["datasets"] == ["demo"]
    table = probe(["list-plugins"], tmp_path)
    assert table["exit_code"] == 0 and "mend" in table["output"] and table["heavy"] == []


def test_data_describe_imports_neither_torch_nor_transformers(tmp_path):
    got = probe(["data", "describe", "--json", "--langs", "en,de"], tmp_path)
    assert got["exit_code"] == 0, got["output"]
    counts = json.loads(got["output"])
    assert list(counts) == ["en", "de"] and counts["en"]["train"] > 0
    assert got["heavy"] == []


@pytest.mark.parametrize("args, message", [
    (["train", "--config", "bad.yaml"], "train.max_steps: -3 is not allowed"),
    (["train", "--set", "train.max_stepz=5"], "unknown config key 'train.max_stepz'"),
    (["train", "--set", "seed=-1"], "seed: -1 is not allowed"),
    (["train", "--editor", "mendd"], "unknown editor 'mendd'"),
    (["train", "--masks", "l1"], "unknown mask strategy 'l1'"),
    (["evaluate", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["diagnose", "--editor", "nope"], "unknown editor 'nope'"),
    (["edit", "--editor", "nope", "--input", "x [MASK]", "--target", "y", "--lang", "en"], "unknown editor 'nope'"),
    (["evaluate", "--seeds", "x"], "--seeds must be a comma list"),
    (["grid", "--table", "3"], "unknown table 3"),
])
def test_config_errors_import_neither_torch_nor_transformers(tmp_path, args, message):
    (tmp_path / "bad.yaml").write_text("train: {max_steps: -3}\n", encoding="utf-8")
    got = probe(args, tmp_path)
    assert got["exit_code"] == 2 and message in got["output"], got["output"]
    assert got["heavy"] == []


# -- lazily registered components -------------------------------------------------------------------

class LazyComponents:
    """A plugin registering one component of each kind by import path."""

    @hookimpl
    def register_editors(self, register):
        register("lazy-ft", "lime_toolkit_plugins.ft.editor:FinetuneEditor", description="ft, lazily")

    @hookimpl
    def register_datasets(self, register):
        register("lazy-toy", "lime_toolkit.testing:ToyDataset")

    @hookimpl
    def register_mask_strategies(self, register):
        register("lazy-none", "lime_toolkit_plugins.masks.strategies:NoMask")


class BrokenPaths:
    @hookimpl
    def register_editors(self, register):
        register("ghost", "lime_toolkit_no_such_module.editor:Ghost", description="cannot be imported")
        register("typo", "lime_toolkit_plugins.ft.editor:FinetuneEditr")


def test_lazy_components_resolve_on_first_use_and_run():
    from lime_toolkit.architectures import editable_parameters
    from lime_toolkit.editing import EditingSystem
    from lime_toolkit.editor_api import EditorSetup
    from lime_toolkit.encoding import encode_examples
    from lime_toolkit.factors import edit_loss
    from lime_toolkit.mask_api import MaskSetup
    from lime_toolkit.testing import ToyDataset, tiny_masked_lm
    from lime_toolkit_plugins.ft.editor import FinetuneEditor
    from lime_toolkit_plugins.masks.strategies import L0Masks, NoMask

    pm = PluginManager(load_entry_points=False)
    info = pm.register(LazyComponents(), "lazy")
    pm.register(lime_toolkit_plugins.masks, "masks")  # the built-in module registers by path too
    assert info.status == "ok" and (info.editors, info.datasets, info.masks) == (["lazy-ft"], ["lazy-toy"], ["lazy-none"])
    editor, dataset, l0 = pm.editors.get("lazy-ft"), pm.datasets.get("lazy-toy"), pm.masks.get("l0")
    assert not editor.loaded and editor.target == "lime_toolkit_plugins.ft.editor:FinetuneEditor"
    assert editor.description == "ft, lazily" and editor.plugin == "lazy"
    assert editor.obj is FinetuneEditor and editor.loaded and editor.obj is FinetuneEditor
    assert dataset.obj is ToyDataset and pm.masks.get("lazy-none").obj is NoMask and l0.obj is L0Masks

    data = dataset.obj()
    model, tokenizer = tiny_masked_lm()
    names = editable_parameters(model, last_n_layers=1)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in names}
    ft = editor.obj(EditorSetup(model, shapes, data.languages, {"lr": 1e-2, "max_steps": 20}))
    system = EditingSystem(model, names, ft, None)
    batch = encode_examples(tokenizer, [data.edit_cases("train")[0].inputs["de"]], "masked-lm")
    assert edit_loss(model, batch, system.edit(batch, "de")) < edit_loss(model, batch)
    masks = l0.obj(MaskSetup(shapes, data.languages))
    assert set(masks.language_vectors("de")) == set(names)


def test_a_class_still_registers_directly():
    from lime_toolkit_plugins.ft.editor import FinetuneEditor

    class Direct:
        @hookimpl
        def register_editors(self, register):
            register("direct-ft", FinetuneEditor)

    pm = PluginManager(load_entry_points=False)
    pm.register(Direct(), "direct")
    component = pm.editors.get("direct-ft")
    assert component.loaded and component.target is None and component.obj is FinetuneEditor
    assert component == Component("direct-ft", FinetuneEditor, "direct")


def test_a_lazy_component_that_cannot_be_imported_is_one_line_naming_its_plugin():
    pm = PluginManager(load_entry_points=False)
    assert pm.register(BrokenPaths(), "broken").status == "ok"  # nothing is imported yet
    with pytest.raises(PluginError) as ghost:
        pm.editors.get("ghost").obj
    message = str(ghost.value)
    assert "\n" not in message and "editor 'ghost' of plugin 'broken'" in message
    assert "ModuleNotFoundError" in message and "lime_toolkit_no_such_module" in message
    assert "LIME_TOOLKIT_BLOCK_PLUGINS=broken" in message
    with pytest.raises(PluginError, match=r"editor 'typo' of plugin 'broken' cannot be loaded: "
                                          r"lime_toolkit_plugins.ft.editor has no attribute 'FinetuneEditr'"):
        pm.editors.get("typo").obj
    info = pm.plugins(check=True)[0]  # list-plugins --check
    assert info.status == "error" and "editor 'ghost' of plugin 'broken' cannot be loaded" in info.error


def test_the_cli_reports_a_broken_lazy_component_in_one_line(tmp_path):
    with plugin_registered(BrokenPaths(), "broken-plugin"):
        result = CliRunner().invoke(cli, ["train", "--editor", "ghost", "--masks", "none", "--out",
                                          str(tmp_path / "run")])
        checked = CliRunner().invoke(cli, ["list-plugins", "--json", "--check"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: editor 'ghost' of plugin 'broken-plugin' cannot be loaded")
    assert checked.exit_code == 0
    status = {p["name"]: p["status"] for p in json.loads(checked.output)}
    assert status["broken-plugin"] == "error" and status["mend"] == "ok"


def test_a_malformed_import_path_marks_the_plugin_broken():
    class Malformed:
        @hookimpl
        def register_editors(self, register):
            register("bad", "lime_toolkit_plugins/ft/editor.py")

    pm = PluginManager(load_entry_points=False)
    with pytest.raises(PluginError, match=r"register_editors raised ValueError: 'lime_toolkit_plugins/ft/editor.py' "
                                          r"is not an import path"):
        pm.register(Malformed(), "malformed")
