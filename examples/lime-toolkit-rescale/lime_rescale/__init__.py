"""An example third-party lime-toolkit plugin (see README.md).

Loading this module must stay cheap: ``lime-toolkit`` imports every plugin to build its command
line, so the torch-heavy components are imported inside the hooks, when they are asked for.
"""
import click

from lime_toolkit import hookimpl

#: The lime-toolkit plugin API this plugin was written for.
LIME_TOOLKIT_API = "1"


@hookimpl
def register_editors(register):
    from .editor import RescaleEditor

    register("rescale", RescaleEditor, description="learned per-dimension rescaling of x and δ "
             "with a learned step size per edited weight (example plugin)")


@hookimpl
def register_datasets(register):
    from .dataset import TinyFacts

    register("tiny-facts", TinyFacts, description="nine parallel birthplace facts in en/de/fr (example plugin)")


@hookimpl
def register_mask_strategies(register):
    from .masks import SharedScale

    register("shared", SharedScale, description="one learned language-agnostic scale per weight (example plugin)")


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
