"""``lime-toolkit report`` (one HTML page of runs) and ``lime-toolkit compare`` (the paper's table of runs)."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lime_toolkit.cli.common import console
from lime_toolkit.errors import UserError


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="HTML file (default RUN_DIR/report.html for one run).")
@click.option("--no-masks", is_flag=True, help="Skip the mask analysis (it loads each run's model).")
def report(run_dirs, out, no_masks):
    """One self-contained HTML report (tables and figures) of one or several runs."""
    from pathlib import Path

    from lime_toolkit.report.html import build_report

    if out is None:
        if len(run_dirs) > 1:
            raise UserError("several runs: pass --out PATH for the report")
        out = Path(run_dirs[0]) / "report.html"
    from lime_toolkit.runs.rundir import check_output_file

    check_output_file(out, "--out")
    err = console()
    with err.status("building report"):
        path = build_report(list(run_dirs), out, masks=not no_masks, log=err.print)
    click.echo(str(path))


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--eval", "eval_name", help="Compare RUN_DIR/eval/<NAME>.json instead of metrics.json.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), help="Write the table as markdown.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the rows as JSON.")
@click.option("--per-edit", is_flag=True, help="Add the succ_per_edit column.")
def compare(run_dirs, eval_name, md_path, json_path, per_edit):
    """A table like the paper's Tables 1 and 2 (mean ± std over seeds) of finished runs."""

    run_compare(run_dirs, eval_name, md_path, json_path, per_edit)


def read_runs(run_dirs, eval_name: str | None = None) -> list[dict]:
    """The metrics of each run directory: ``metrics.json``, or ``eval/<eval_name>.json``."""
    from lime_toolkit.report.documents import load_json

    found = []
    for d in map(Path, run_dirs):
        path = d / "eval" / f"{eval_name}.json" if eval_name else d / "metrics.json"
        if not path.is_file():
            hint = f"run `lime-toolkit evaluate {d}` with that setting" if eval_name else f"finish training {d}"
            raise UserError(f"'{path}' does not exist; {hint}")
        metrics = load_json(path)
        if "setting" not in metrics:
            raise UserError(f"'{path}' has no 'setting'; it was not written by lime-toolkit train or evaluate")
        found.append(metrics)
    return found


def run_compare(run_dirs, eval_name, md_path, json_path, per_edit: bool) -> list[dict]:
    """``lime-toolkit compare``: the paper-style table of finished runs."""
    from lime_toolkit.files import write_json_atomic
    from lime_toolkit.report.tables import cell, paper_table, to_markdown
    from lime_toolkit.runs.rundir import check_output_file

    check_output_file(md_path, "--markdown")
    check_output_file(json_path, "--json")
    rows = paper_table(read_runs(run_dirs, eval_name))
    table = Table(title="mean ± std over seeds [95% interval] (%)")
    metrics = ("acc", "con", "succ", "succ_per_edit") if per_edit else ("acc", "con", "succ")
    for col in ("dataset", "editor", "train langs", "masks", "evaluation", "seeds", *metrics):
        table.add_column(col, justify="right" if col in metrics or col == "seeds" else "left")
    for r in rows:
        cells = [cell(r[k], percent=True) for k in metrics]
        table.add_row(str(r["dataset"]), str(r["editor"]), "en only" if r["train_langs"] == "en" else r["train_langs"],
                      str(r["masks"]), r["evaluation"], ",".join(map(str, r["seeds"])), *cells)
    Console().print(table)
    if md_path:
        from lime_toolkit.files import write_text_atomic

        write_text_atomic(Path(md_path), to_markdown(rows, per_edit=per_edit))
    if json_path:
        write_json_atomic(Path(json_path), rows)
    return rows
