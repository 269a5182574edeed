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
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Set a config key, e.g. --set dataset_options.preset=full (repeatable; YAML values).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help='Also write {"languages": {lang: recall or accuracy}, "build_s": seconds} to this file.')
def prepare_base(dataset, data_dir, languages, out, seed, settings, json_path):
    """Build the base model a dataset's edits are made to (the demo's small masked LM, ...)."""
    import time
    from pathlib import Path

    from lime_toolkit.cache import check_cache_writable
    from lime_toolkit.runs.build import open_dataset
    from lime_toolkit.runs.rundir import check_out

    config = resolve_config(None, dataset=dataset, data_dir=data_dir, languages=languages, seed=seed,
                            settings=settings)
    if out:
        check_out(Path(out))
    else:
        check_cache_writable()
    out_console = console()
    ds = open_dataset(config)
    started = time.monotonic()
    path = ds.prepare_base_model(Path(out) if out else None, progress=out_console.print)
    if json_path:
        _write_report(Path(path), Path(json_path), time.monotonic() - started)
    click.echo(str(path))


def _write_report(model_dir, json_path, elapsed: float) -> None:
    """``prepare-base --json``: the figure per language of the prepared model's info file and the
    seconds its build took (as recorded; else this command's)."""
    from lime_toolkit.errors import UserError
    from lime_toolkit.files import write_json_atomic
    from lime_toolkit.toolbox.prepared import REPORT_FILES, read_report

    report = read_report(model_dir)
    if report is None:
        raise UserError(f"the prepared model {model_dir} has no per-language report ({' or '.join(REPORT_FILES)} "
                        f"with recall or accuracy per language); drop --json or prepare it again")
    figure, seconds = report
    write_json_atomic(json_path, {"languages": figure, "build_s": round(elapsed if seconds is None else seconds, 1)})


@click.group(cls=Group)
def data():
    """Inspect datasets."""


@data.command("describe")
@click.option("--dataset", help="Dataset name (default: the configured dataset).")
@click.option("--data-dir", type=click.Path(file_okay=False))
@click.option("--langs", "languages", help="Comma list of languages.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Set a config key, e.g. --set dataset_options.preset=full (repeatable; YAML values).")
@click.option("--json", "as_json", is_flag=True, help="Print {language: {split: rows}} as JSON.")
def data_describe(dataset, data_dir, languages, settings, as_json):
    """Row counts per language and split, as read."""
    from lime_toolkit.runs.build import open_dataset

    ds = open_dataset(resolve_config(None, dataset=dataset, data_dir=data_dir, languages=languages,
                                     settings=settings))
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
