"""``lime-toolkit grid``: train and evaluate a grid of runs, skip finished ones, collect one table."""
from __future__ import annotations

from pathlib import Path

import click

from lime_toolkit.cli.common import console, parse_settings
from lime_toolkit.errors import UserError
from lime_toolkit.files import read_json, write_json_atomic, write_text_atomic


@click.command()
@click.option("--table", type=int, help="The paper's grid: 1 (en -> all; en-only vs all-language training) "
              "or 2 (all -> all; with and without masks).")
@click.option("--grid", "grid_file", type=click.Path(dir_okay=False), help="A YAML grid file instead (keys: "
              "editors, train_langs, masks, seeds, eval, base).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Base run configuration (YAML).")
@click.option("--seeds", default="0", show_default=True, help="Comma list of seeds.")
@click.option("--out", "out_dir", default="runs/grid", show_default=True, type=click.Path(file_okay=False))
@click.option("--dataset", help="Dataset for every run.")
@click.option("--data-dir", type=click.Path(file_okay=False))
@click.option("--model", help="Base model for every run.")
@click.option("--max-steps", type=int, help="Optimiser steps per run.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Set any config key of every run, e.g. --set train.val_every=50 (repeatable).")
@click.option("--quiet", is_flag=True)
def grid(table, grid_file, config_path, seeds, out_dir, quiet, settings, **flags):
    """Train and evaluate editors x training languages x masks x seeds; runs already finished are
    skipped; writes one table (mean ± std over seeds) as markdown and JSON."""
    from lime_toolkit.runs.evaluate import parse_seeds

    overrides = {**parse_settings(settings), **{k: v for k, v in {
        "dataset": flags["dataset"], "data_dir": flags["data_dir"], "model": flags["model"],
        "train.max_steps": flags["max_steps"]}.items() if v is not None}}
    seed_list = parse_seeds(seeds, "--seeds")
    if not seed_list:
        raise UserError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    run_grid(table, grid_file, config_path, seed_list, out_dir, overrides, console(quiet), quiet)


def run_grid(table, grid_file, config_path, seeds, out_dir, overrides, console, quiet) -> list[dict]:
    from lime_toolkit.cli.train import run_train
    from lime_toolkit.plugin_manager import get_plugin_manager
    from lime_toolkit.report.tables import paper_table, to_markdown
    from lime_toolkit.runs.grid import base_config, check_runs, expand, grid_spec

    spec = grid_spec(table, grid_file)
    config = base_config(config_path, spec, overrides)
    pm = get_plugin_manager()
    untrained = {n for n in pm.editors.names() if not getattr(pm.editors.get(n).obj, "trainable", True)}
    runs = expand(spec, config, seeds, Path(out_dir), untrained)
    check_runs(runs)
    finished = {r.out: read_json(r.out / "metrics.json", "metrics of a finished grid run",
                                 f"delete it to run {r.out.name} again")
                for r in runs if (r.out / "metrics.json").is_file()}  # all read before the first run starts
    console.print(f"[bold]grid[/]: {len(runs)} runs into {out_dir}")
    results = []
    for i, r in enumerate(runs, 1):
        if r.out in finished:
            console.print(f"[{i}/{len(runs)}] {r.out.name}: finished earlier, skipped")
            results.append(finished[r.out])
            continue
        console.print(f"[{i}/{len(runs)}] {r.out.name}")
        results.append(run_train(r.config, console, quiet=quiet))
    rows = paper_table(results)
    name = f"table{table}" if table else Path(grid_file).stem
    write_text_atomic(Path(out_dir) / f"{name}.md", to_markdown(rows) + "\n")
    write_json_atomic(Path(out_dir) / f"{name}.json", rows)
    click.echo(to_markdown(rows))
    console.print(f"table written to {Path(out_dir) / (name + '.md')} and .json")
    return rows
