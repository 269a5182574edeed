"""``lime-toolkit prepare-base`` and ``lime-toolkit data describe``: a dataset's base model and its rows."""
from __future__ import annotations

import json

import click

from lime_toolkit.cli.common import Group, console, resolve_config


@click.command("prepare-base")
@click.option("--dataset", help="Dataset whose base model to build (default: the configured dataset).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Directory the dataset reads.")
@click.option("--langs", "languages", help="Comma list of languages.")
@click.option("--out", type=click.Path(file_okay=False), help="Where to save the model (default: the cache).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def prepare_base(dataset, data_dir, languages, out, seed):
    """Build the base model a dataset's edits are made to (the demo's small masked LM, ...)."""
    from pathlib import Path

    from lime_toolkit.cache import check_cache_writable
    from lime_toolkit.runs.build import open_dataset
    from lime_toolkit.runs.rundir import check_out

    config = resolve_config(None, dataset=dataset, data_dir=data_dir, languages=languages, seed=seed)
    if out:
        check_out(Path(out))
    else:
        check_cache_writable()
    out_console = console()
    ds = open_dataset(config)
    path = ds.prepare_base_model(Path(out) if out else None, progress=out_console.print)
    click.echo(str(path))


@click.group(cls=Group)
def data():
    """Inspect datasets."""


@data.command("describe")
@click.option("--dataset", help="Dataset name (default: the configured dataset).")
@click.option("--data-dir", type=click.Path(file_okay=False))
@click.option("--langs", "languages", help="Comma list of languages.")
@click.option("--json", "as_json", is_flag=True, help="Print {language: {split: rows}} as JSON.")
def data_describe(dataset, data_dir, languages, as_json):
    """Row counts per language and split, as read."""
    from lime_toolkit.runs.build import open_dataset

    ds = open_dataset(resolve_config(None, dataset=dataset, data_dir=data_dir, languages=languages))
    counts = ds.describe()
    if as_json:
        click.echo(json.dumps(counts, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    seen = {s for per in counts.values() for s in per}
    splits = [s for s in ("train", "dev", "test") if s in seen] + sorted(seen - {"train", "dev", "test"})
    table = Table(title=f"{ds.description or type(ds).__name__}: rows per language and split")
    table.add_column("language")
    for s in splits:
        table.add_column(s, justify="right")
    for lang, per in counts.items():
        table.add_row(lang, *(str(per.get(s, 0)) for s in splits))
    Console().print(table)
