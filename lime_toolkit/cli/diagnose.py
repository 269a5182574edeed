"""``lime-toolkit diagnose``: check a base model before trusting an editing result."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lime_toolkit.cli.common import console, resolve_config, run_options


@click.command()
@run_options
@click.option("--split", type=click.Choice(["train", "dev", "test"]), default="test", show_default=True)
@click.option("--edits", "n_edits", type=click.IntRange(min=1), default=30, show_default=True,
              help="Edits per finetuning check.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-2, show_default=True,
              help="Adam learning rate of the finetuning checks.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the numbers as JSON here.")
def diagnose(config_path, split, n_edits, lr, json_path, **flags):
    """Check a base model before trusting an editing result: are parallel inputs alike at each
    layer, and how far does a finetuning edit of the edited weights carry across languages?"""

    run_diagnose(resolve_config(config_path, **flags), split, n_edits, lr, json_path, console())


def run_diagnose(config: dict, split: str, n_edits: int, lr: float, json_path, console: Console) -> dict:
    from lime_toolkit.files import write_json_atomic
    from lime_toolkit.runs.build import build_run
    from lime_toolkit.runs.rundir import check_output_file

    check_output_file(json_path, "--json")
    with console.status("loading dataset and model"):
        run = build_run(config, log=console.print)
    from lime_toolkit.runs.diagnose import finetune_reach, gradient_step_reach, layer_alignment
    langs = run.dataset.languages
    console.print(f"model {run.config['model']}; edited weights: {', '.join(run.system.param_names)}")
    with console.status("comparing parallel inputs layer by layer"):
        layers = layer_alignment(run, split)
    table = Table(title=f"MLP input at the prediction position: nearest {langs[0]} item is the parallel one")
    for col in ("layer", *langs[1:], "cos parallel", "cos unrelated"):
        table.add_column(col, justify="right")
    for row in layers:
        table.add_row(str(row["layer"]), *(f"{row['retrieval'][l]:.2f}" for l in langs[1:]),
                      f"{row['cos_parallel']:.3f}", f"{row['cos_unrelated']:.3f}")
    out = Console()
    out.print(table)
    reach = []
    for mode in ("edit", "joint"):
        with console.status(f"finetuning edits ({mode})"):
            reach.append(finetune_reach(run, mode, split, n_edits=n_edits, lr=lr, seed=int(run.config["seed"])))
    table = Table(title=f"finetuning the edited weights (Adam lr {lr}): acc per language, con")
    for col in ("trained on", *langs, "con", "steps"):
        table.add_column(col, justify="right")
    for r in reach:
        label = f"{r['edit_lang']} only" if r["mode"] == "edit" else "all languages"
        table.add_row(label, *(f"{r['acc'].get(l, 0):.2f}" for l in langs), f"{r['con']:.3f}", f"{r['steps']:.1f}")
    out.print(table)
    with console.status("plain gradient steps"):
        steps = gradient_step_reach(run, split=split, n_edits=n_edits, seed=int(run.config["seed"]))
    table = Table(title=f"one plain gradient step W - alpha * grad W on {langs[0]} edits: acc per language, con")
    for col in ("alpha", *langs, "con"):
        table.add_column(col, justify="right")
    for r in steps:
        table.add_row(f"{r['alpha']:g}", *(f"{r['acc'].get(l, 0):.2f}" for l in langs), f"{r['con']:.3f}")
    out.print(table)
    result = {"model": run.config["model"], "edited": run.system.param_names, "split": split,
              "layers": layers, "finetune": reach, "gradient_step": steps}
    if json_path:
        write_json_atomic(Path(json_path), result)
        console.print(f"wrote {json_path}")
    return result
