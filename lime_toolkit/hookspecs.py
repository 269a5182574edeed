"""The hook specifications: the whole surface a plugin can implement.

Plugins implement hooks with ``@lime_toolkit.hookimpl``. Each ``register_*`` hook receives a
``register`` callback; calling it adds one named component. The component is given either as the
object itself (a class) or, preferably, *lazily* as an import path ``"package.module:Class"``: the
toolkit then imports it only when the component is first used, so that ``--help``,
``list-plugins`` and configuration errors never import torch (see
:class:`lime_toolkit.registry.Component`). A lazily registered component whose import fails is one
error line naming the component and its plugin. A plugin module may also set
``LIME_TOOLKIT_API = "1"`` (the plugin API version it was written for); a plugin written for an
incompatible major version is reported by ``list-plugins`` and not loaded.
"""
from __future__ import annotations

import pluggy

PROJECT = "lime_toolkit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_editors(register):
    """Add editors.

    ``register(name, editor_class, description="")``: ``editor_class`` subclasses
    :class:`lime_toolkit.editor_api.FactorEditor` (transforms the gradient factors; gains the
    cross-lingual wrapper and any mask strategy from the core) or
    :class:`lime_toolkit.editor_api.FullEditor` (implements the whole edit stage). Instead of the
    class, pass its import path, e.g. ``register("mine", "my_plugin.editor:MyEditor",
    description=...)``, so that it (and torch) is imported only when the editor is used. Returns
    nothing.
    """


@hookspec
def register_datasets(register):
    """Add datasets.

    ``register(name, dataset_class, description="")``: ``dataset_class`` subclasses
    :class:`lime_toolkit.dataset_api.Dataset` and is constructed with a
    :class:`lime_toolkit.dataset_api.DatasetOptions`. ``dataset_class`` may be an import path
    ``"package.module:Class"``, imported when the dataset is first used. Returns nothing.
    """


@hookspec
def register_mask_strategies(register):
    """Add mask strategies applied to the gradient factors before a factor editor's transform.

    ``register(name, mask_class, description="")``: ``mask_class`` subclasses
    :class:`lime_toolkit.mask_api.MaskStrategy`; it may be an import path ``"package.module:Class"``,
    imported when the strategy is first used. Returns nothing.
    """


@hookspec
def register_commands(cli):
    """Add subcommands to the ``lime-toolkit`` command line.

    ``cli`` is the top-level :class:`click.Group`; call ``cli.command()`` / ``cli.add_command()`` on
    it. Returns nothing.
    """
