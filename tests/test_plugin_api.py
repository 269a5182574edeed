"""The plugin API as a plugin author meets it, in-process: every hook, the API version check, and
the example third-party plugin in ``examples/lime-toolkit-rescale`` (without installing it).

``PluginManager(load_entry_points=False)`` is a manager holding only what the test registers.
"""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from lime_toolkit import hookimpl
from lime_toolkit import plugin_manager as plugin_manager_module
from lime_toolkit.architectures import editable_parameters
from lime_toolkit.data import MASKED_LM
from lime_toolkit.dataset_api import DatasetOptions
from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import EditorSetup, FactorEditor
from lime_toolkit.encoding import encode_examples
from lime_toolkit.errors import PluginError
from lime_toolkit.factors import edit_loss
from lime_toolkit.mask_api import MaskSetup, MaskStrategy
from lime_toolkit.plugin_manager import API_VERSION, PluginManager, get_plugin_manager, plugin_registered, reset_plugin_manager
from lime_toolkit.testing import ToyDataset, tiny_masked_lm

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lime-toolkit-rescale"


# -- register_editors / register_datasets / register_mask_strategies ------------------------------

class HalfStep(FactorEditor):
    def transform(self, name, x, delta, ctx):
        return x, delta

    def step_size(self, name):
        return 0.5


class Doubling(MaskStrategy):
    def apply(self, name, lang, x, delta):
        return 2 * x, delta


def test_component_hooks_register_resolvable_components():
    class Plugin:
        @hookimpl
        def register_editors(self, register):
            register("half-step", HalfStep, description="a gradient step of 0.5")

        @hookimpl
        def register_datasets(self, register):
            register("toy", ToyDataset, description="toy facts")

        @hookimpl
        def register_mask_strategies(self, register):
            register("doubling", Doubling)

    pm = PluginManager(load_entry_points=False)
    info = pm.register(Plugin(), "components", distribution="my-dist", version="1.2")
    assert info.hooks == ["register_datasets", "register_editors", "register_mask_strategies"]
    editor, dataset, mask = pm.editors.get("half-step"), pm.datasets.get("toy"), pm.masks.get("doubling")
    assert (editor.obj, editor.plugin, editor.description) == (HalfStep, "components", "a gradient step of 0.5")
    assert dataset.obj is ToyDataset and mask.obj is Doubling and mask.description == ""
    row = pm.plugins()[0].as_json()
    assert (row["editors"], row["datasets"], row["masks"]) == (["half-step"], ["toy"], ["doubling"])
    assert (row["distribution"], row["version"], row["status"]) == ("my-dist", "1.2", "ok")
    pm.unregister("components")
    assert "half-step" not in pm.editors and "toy" not in pm.datasets and pm.plugins() == []


def test_plugin_registered_context_manager_in_the_process_wide_manager():
    class Plugin:
        @hookimpl
        def register_mask_strategies(self, register):
            register("doubling-ctx", Doubling)

    reset_plugin_manager()
    try:
        with plugin_registered(Plugin(), "ctx-plugin"):
            assert get_plugin_manager().masks.get("doubling-ctx").plugin == "ctx-plugin"
        assert "doubling-ctx" not in get_plugin_manager().masks
    finally:
        reset_plugin_manager()


# -- register_commands ------------------------------------------------------------------------------

def test_register_commands_adds_a_click_command_to_the_group():
    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            @cli.command("hello")
            @click.option("--name", default="world")
            def hello(name):
                """Say hello."""
                click.echo(f"hello {name}")

    pm = PluginManager(load_entry_points=False)
    info = pm.register(Plugin(), "greeter")
    assert info.hooks == ["register_commands"]
    group = click.Group("fresh")
    pm.add_commands(group)
    assert list(group.commands) == ["hello"]
    result = CliRunner().invoke(group, ["hello", "--name", "plugins"])
    assert result.exit_code == 0 and result.output == "hello plugins\n", result.output
    assert "Say hello." in CliRunner().invoke(group, ["--help"]).output


def test_register_commands_that_raises_is_isolated():
    class Broken:
        @hookimpl
        def register_commands(self, cli):
            raise RuntimeError("no commands today")

    class Working:
        @hookimpl
        def register_commands(self, cli):
            cli.add_command(click.Command("ping", callback=lambda: click.echo("pong")))

    pm = PluginManager(load_entry_points=False)
    pm.register(Broken(), "broken")
    pm.register(Working(), "working")
    group = click.Group("fresh")
    pm.add_commands(group)
    assert CliRunner().invoke(group, ["ping"]).output == "pong\n"
    info = pm.infos["broken"]
    assert info.status == "error" and "register_commands raised RuntimeError: no commands today" in info.error
    assert pm.infos["working"].status == "ok"


def test_register_commands_through_main(capsys):
    """``lime-toolkit``'s entry point adds plugin commands to the global group before running."""
    from lime_toolkit.cli import app as cli_module

    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            cli.add_command(click.Command("plugin-echo", callback=lambda: click.echo("from a plugin")))

    reset_plugin_manager()
    try:
        with plugin_registered(Plugin(), "main-test"):
            with pytest.raises(SystemExit) as exit_info:
                cli_module.main(["plugin-echo"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out == "from a plugin\n"
    finally:
        cli_module.cli.commands.pop("plugin-echo", None)  # main() added it to the global group
        reset_plugin_manager()


# -- the API version --------------------------------------------------------------------------------

def plugin_declaring(api) -> types.ModuleType:
    """A plugin module (as an entry point would load it) declaring plugin API ``api``."""
    module = types.ModuleType(f"plugin_api_{api}")
    if api is not None:
        module.LIME_TOOLKIT_API = api

    @hookimpl
    def register_editors(register):
        register("versioned", HalfStep)

    module.register_editors = register_editors
    return module


@pytest.mark.parametrize("declared", [API_VERSION, f"{API_VERSION}.4", int(API_VERSION), None])
def test_compatible_api_versions_load(declared):
    pm = PluginManager(load_entry_points=False)
    info = pm.register(plugin_declaring(declared), "versioned-plugin")
    assert info.status == "ok" and "versioned" in pm.editors
    assert info.api_version == (None if declared is None else str(declared))


@pytest.mark.parametrize("declared", ["0", "2", "2.0", 99])
def test_incompatible_api_versions_are_refused_with_the_fix(declared):
    pm = PluginManager(load_entry_points=False)
    with pytest.raises(PluginError) as error:
        pm.register(plugin_declaring(declared), "versioned-plugin")
    message = str(error.value)
    assert f"plugin API {declared}" in message and f"provides API {API_VERSION}" in message and "upgrade" in message
    assert "versioned-plugin" not in pm.infos and "versioned" not in pm.editors


# -- the example third-party plugin, in-process -----------------------------------------------------

@pytest.fixture
def lime_rescale(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import lime_rescale

    yield lime_rescale
    for name in [m for m in sys.modules if m == "lime_rescale" or m.startswith("lime_rescale.")]:
        del sys.modules[name]


def test_example_plugin_provides_every_kind_of_component(lime_rescale):
    pm = PluginManager(load_entry_points=False)
    info = pm.register(lime_rescale, "rescale")
    assert info.api_version == API_VERSION and info.hooks == [
        "register_commands", "register_datasets", "register_editors", "register_mask_strategies"]
    assert pm.plugins() == [info]  # collects the components
    assert (info.editors, info.datasets, info.masks) == (["rescale"], ["tiny-facts"], ["shared"])
    dataset = pm.datasets.get("tiny-facts").obj(DatasetOptions(languages=["de", "fr"], limit=1))
    assert dataset.describe() == {"de": {"train": 1, "dev": 1, "test": 1}, "fr": {"train": 1, "dev": 1, "test": 1}}
    assert dataset.edit_cases("test")[0].inputs["de"].target == "München"


def test_example_command_runs(lime_rescale, monkeypatch):
    pm = PluginManager(load_entry_points=False)
    pm.register(lime_rescale, "rescale")
    monkeypatch.setattr(plugin_manager_module, "_manager", pm)  # the command asks the process-wide manager
    group = click.Group("fresh")
    pm.add_commands(group)
    result = CliRunner().invoke(group, ["rescale-info", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"editors": ["rescale"], "datasets": ["tiny-facts"], "masks": ["shared"]}


@pytest.mark.parametrize("mask_name", ["l0", "shared"])
def test_example_editor_gets_masks_from_the_core(lime_rescale, mask_name):
    """The rescale editor has no mask code, yet edits through the core's L0 masks (and the example's
    own strategy), and the meta-loss reaches its parameters and the edit language's masks."""
    import lime_toolkit_plugins.masks

    pm = PluginManager(load_entry_points=False)
    pm.register(lime_rescale, "rescale")
    pm.register(lime_toolkit_plugins.masks, "masks")  # the built-in strategies, as their entry point loads them
    model, tokenizer = tiny_masked_lm()
    names = editable_parameters(model, last_n_layers=2)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in names}
    data = ToyDataset()
    torch.manual_seed(0)
    editor = pm.editors.get("rescale").obj(EditorSetup(model, shapes, data.languages, {"step_size_init": 0.5}))
    masks = pm.masks.get(mask_name).obj(MaskSetup(shapes, data.languages))
    system = EditingSystem(model, names, editor, masks)
    case = data.edit_cases("train")[0]
    edit = encode_examples(tokenizer, [case.inputs["de"]], MASKED_LM)
    edited = system.edit(edit, "de")
    assert edit_loss(model, edit, edited) < edit_loss(model, edit)
    # The update loss alone, without the masks' penalty (which by itself gives l0's log α a
    # gradient): its gradient reaches the editor and, through the masked factors, the masks of the
    # edit language, and no other language's.
    edit_loss(model, encode_examples(tokenizer, [case.inputs["en"]], MASKED_LM), edited).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in editor.parameters())
    named = dict(masks.named_parameters())
    de_masks = [p for n, p in named.items() if mask_name == "shared" or n.startswith("gates.de.")]
    assert de_masks and all(p.grad is not None and p.grad.abs().sum() > 0 for p in de_masks)
    assert all(p.grad is None for n, p in named.items() if mask_name == "l0" and not n.startswith("gates.de."))
    # and the masks change the edit: scaled factors give another update than the editor's alone
    with torch.no_grad():
        for p in de_masks:
            p.add_(0.5)
        plain = EditingSystem(model, names, editor, None).edit(edit, "de")
        masked = system.eval().edit(edit, "de")
    assert all(not torch.allclose(masked[n], plain[n]) for n in names)
