"""The `diagnose` command's face: layer alignment and finetuning reach as rich tables."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def run_diagnose(config: dict, split: str, n_edits: int, lr: float, json_path, console: Console) -> dict:
    from .cache import write_json_atomic
    from .run import build_run
    from .rundir import check_output_file

    check_output_file(json_path, "--json")
    with console.status("loading dataset and model"):
        run = build_run(config, log=console.print)
    from .diagnostics import finetune_reach, gradient_step_reach, layer_alignment  # torch: after the checks
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
