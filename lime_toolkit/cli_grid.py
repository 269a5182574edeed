"""`lime-toolkit grid`: train and evaluate a grid of runs, skip finished ones, collect one table."""
from __future__ import annotations

from pathlib import Path

import click

from .cache import write_json_atomic, write_text_atomic
from .rundir import read_json


def run_grid(table, grid_file, config_path, seeds, out_dir, overrides, console, quiet) -> list[dict]:
    from .cli_train import run_train
    from .grid import base_config, check_runs, expand, grid_spec
    from .plugin_manager import get_plugin_manager
    from .tables import paper_table, to_markdown

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
