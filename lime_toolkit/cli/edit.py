"""``lime-toolkit edit``: one edit, with predictions before and after in every language."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lime_toolkit.cli.common import console, load_run, refuse_run_flags, run_dir_arg, run_options
from lime_toolkit.errors import UserError


@click.command()
@run_dir_arg
@run_options
@click.option("--input", "input_text", required=True,
              help="Masked LM: a sentence with [MASK] where the answer goes; classification: a text or "
                   "'premise ||| hypothesis'.")
@click.option("--target", required=True, help="The desired prediction (classification: index or label name).")
@click.option("--lang", required=True, help="The edit language of the input.")
@click.option("--checkpoint", type=click.Choice(["best", "last", "init"]), default="best", show_default=True)
@click.option("--unrelated", type=click.IntRange(min=0), default=3, show_default=True, help="Unrelated inputs to show.")
@click.option("--save", type=click.Path(file_okay=False), help="Save the edited model (save_pretrained) here.")
def edit(run_dir, config_path, **flags):
    """Apply one edit and show predictions before and after in every language."""

    flags.pop("out", None)
    run_edit(run_dir, config_path, flags, console())


def run_edit(run_dir, config_path, flags: dict, err: Console):
    """``lime-toolkit edit``: one edit, a before/after table, optionally the edited model saved."""
    text, target, lang = flags.pop("input_text"), flags.pop("target"), flags.pop("lang")
    save, checkpoint, n_unrelated = flags.pop("save"), flags.pop("checkpoint"), flags.pop("unrelated")
    if save and Path(save).exists() and (not Path(save).is_dir() or any(Path(save).iterdir())):
        raise UserError(f"--save '{save}' already exists and is not empty; pass a new directory")
    from lime_toolkit.cli.preflight import check_edit_language, command_config

    if run_dir is not None:
        refuse_run_flags(config_path, flags)
    check_edit_language(command_config(run_dir, config_path, flags), lang)  # before the model loads
    with err.status("loading run"):
        run = load_run(run_dir, config_path, flags, checkpoint)
    from lime_toolkit.runs.edit import apply_edit, save_edited_model

    outcome = apply_edit(run, text, target, lang, n_unrelated=n_unrelated)
    table = Table(title=f"edit in {lang}: {text!r} -> {target!r} "
                        f"({run.config['editor']} + {run.config['masks']} masks)")
    for col in ("", "lang", "input", "target", "before", "after", ""):
        table.add_column(col)
    colour = {"took": "green", "missed": "red", "kept": "green", "changed": "red", "?": "yellow"}
    for r in outcome.rows:
        table.add_row(r.kind, r.lang, r.text, r.target or "?", r.before, r.after,
                      f"[{colour[r.status]}]{r.status}[/]")
    out = Console()
    out.print(table)
    if outcome.item is None:
        out.print(f"[yellow]no parallel item found[/]: the input matches no known {lang} item of the dataset, "
                  f"so only the input itself and unrelated inputs are shown")
    elif any(r.status == "?" for r in outcome.rows):
        out.print("[yellow]?[/]: the dataset does not say how the target reads in that language; the "
                  "prediction is shown without a verdict")
    if save:
        path = save_edited_model(run, outcome.params, save)
        out.print(f"edited model saved to {path} (load it with transformers' from_pretrained)")
    return outcome
