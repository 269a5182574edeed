"""An example third-party lime-toolkit plugin (see README.md).

Loading this module must stay cheap: ``lime-toolkit`` imports every plugin to build its command
line. The torch-heavy editor and mask strategy are registered by import path, so they are imported
only when a run uses them; the dataset shows the other form, its class imported inside the hook.
"""
import click

from lime_toolkit import hookimpl

#: The lime-toolkit plugin API this plugin was written for.
LIME_TOOLKIT_API = "1"


@hookimpl
def register_editors(register):
    register("rescale", "lime_rescale.editor:RescaleEditor", description="learned per-dimension rescaling of x and δ "
             "with a learned step size per edited weight (example plugin)")


@hookimpl
def register_datasets(register):
    from .dataset import TinyFacts

    register("tiny-facts", TinyFacts, description="nine parallel birthplace facts in en/de/fr (example plugin)")


@hookimpl
def register_mask_strategies(register):
    register("shared", "lime_rescale.masks:SharedScale",
             description="one learned language-agnostic scale per weight (example plugin)")


@hookimpl
def register_commands(cli):
    @cli.command("rescale-info")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def rescale_info(as_json):
        """List what the lime-toolkit-rescale example plugin provides."""
        import json

        from lime_toolkit.plugin_manager import get_plugin_manager

        pm = get_plugin_manager()
        mine = {kind: [c.name for c in registry if c.obj.__module__.startswith(__name__ + ".")]
                for kind, registry in (("editors", pm.editors), ("datasets", pm.datasets), ("masks", pm.masks))}
        if as_json:
            click.echo(json.dumps(mine))
        else:
            for kind, names in mine.items():
                click.echo(f"{kind}: {', '.join(names)}")
