"""The hook specifications: the whole surface a plugin can implement.

Plugins implement hooks with ``@lime_toolkit.hookimpl``. Each ``register_*`` hook receives a
``register`` callback; calling it adds one named component. A plugin module may also set
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
    :class:`lime_toolkit.editor_api.FullEditor` (implements the whole edit stage). Returns nothing.
    """


@hookspec
def register_datasets(register):
    """Add datasets.

    ``register(name, dataset_class, description="")``: ``dataset_class`` subclasses
    :class:`lime_toolkit.dataset_api.Dataset` and is constructed with a
    :class:`lime_toolkit.dataset_api.DatasetOptions`. Returns nothing.
    """


@hookspec
def register_mask_strategies(register):
    """Add mask strategies applied to the gradient factors before a factor editor's transform.

    ``register(name, mask_class, description="")``: ``mask_class`` subclasses
    :class:`lime_toolkit.mask_api.MaskStrategy`. Returns nothing.
    """


@hookspec
def register_commands(cli):
    """Add subcommands to the ``lime-toolkit`` command line.

    ``cli`` is the top-level :class:`click.Group`; call ``cli.command()`` / ``cli.add_command()`` on
    it. Returns nothing.
    """
