"""``lime-toolkit list-plugins``: every installed plugin, what it provides, whether it loaded."""
from __future__ import annotations

import json

import click


@click.command("list-plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--check", is_flag=True, help="Also import every component registered by import path "
              "(slower: loads torch) and mark a plugin whose component fails to import as an error.")
def list_plugins(as_json: bool, check: bool):
    """Every installed plugin, what it provides, and whether it loaded."""
    from lime_toolkit.plugin_manager import get_plugin_manager

    infos = get_plugin_manager().plugins(check=check)
    if as_json:
        click.echo(json.dumps([i.as_json() for i in infos], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lime-toolkit plugins")
    for col in ("plugin", "distribution", "version", "editors", "datasets", "masks", "status"):
        table.add_column(col)
    for i in infos:
        status = "[green]ok[/]" if i.status == "ok" else f"[red]{i.status}[/]: {i.error}"
        table.add_row(i.name, i.distribution or "-", i.version or "-", ", ".join(i.editors),
                      ", ".join(i.datasets), ", ".join(i.masks), status)
    Console().print(table)
