"""The ``lime-toolkit`` command group: every command of :mod:`lime_toolkit.cli` plus those plugins add.
Heavy imports stay inside the commands, so ``--help`` answers without torch."""
from __future__ import annotations

import click

from lime_toolkit.cli import bench, data, diagnose, edit, evaluate, grid, plugins, report, train
from lime_toolkit.cli.common import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lime-toolkit")
def cli():
    """Cross-lingual model editing with language anisotropic (LiME) masks."""


COMMANDS = (train.train, evaluate.evaluate, edit.edit, report.report, report.compare, grid.grid, diagnose.diagnose,
            data.prepare_base, data.data, plugins.list_plugins, bench.bench)
for command in COMMANDS:
    cli.add_command(command)


def main(argv=None) -> None:
    from lime_toolkit.plugin_manager import get_plugin_manager

    get_plugin_manager().add_commands(cli)
    cli.main(args=argv, prog_name="lime-toolkit")


if __name__ == "__main__":  # pragma: no cover
    main()
