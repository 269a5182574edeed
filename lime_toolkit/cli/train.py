"""``lime-toolkit train``: build a run, meta-train its editor with rich progress, print the held-out results."""
from __future__ import annotations

import json

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from lime_toolkit.cli.common import configured, console, resolve_config, run_options, warn_broken_plugins


@click.command()
@run_options
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (resumed if it holds this run).")
@click.option("--max-steps", type=int, help=f"Optimiser steps (default {configured('train.max_steps')}).")
@click.option("--train-langs", help=f"'en' (English only), 'all', or a comma list of languages (default "
              f"{configured('train.langs')}).")
@click.option("--quiet", is_flag=True, help="Only print the final results.")
@click.option("--log-with", metavar="TRACKERS",
              help="Also log to Accelerate's trackers: tensorboard, wandb, mlflow, ... (comma list, or all); "
                   "files under <out>/tracking/.")
def train(config_path, quiet, log_with, **flags):
    """Meta-train an editor cross-lingually, then evaluate it on held-out edits.

    With no flags: MEND with LiME L0 masks on the offline demo world.
    """

    trackers = None
    if log_with is not None:
        from lime_toolkit.runs.tracking import parse_log_with

        trackers = parse_log_with(log_with)  # not installed: one line, before anything is loaded
    run_train(resolve_config(config_path, **flags), console(quiet), quiet, trackers)


class RichMonitor:
    """Shows step, each loss term, the last validation succ, steps per second and the ETA."""

    def __init__(self, progress: Progress, total: int, log):
        self.progress, self.log = progress, log
        self.task = progress.add_task("train", total=total, terms="", succ="-")
        self.val_task = None

    def on_step(self, step, terms, steps_per_s):
        text = " ".join(f"{k} {v:.4f}" for k, v in terms.items()) + f"  {steps_per_s:.2f} step/s"
        self.progress.update(self.task, completed=step, terms=text)

    def on_validation(self, step, metrics, improved):
        mark = " (best)" if improved else ""
        self.progress.update(self.task, succ=f"{metrics['succ']:.3f}")
        self.log(f"step {step}: validation acc {metrics['acc']:.3f} con {metrics['con']:.3f} "
                 f"succ {metrics['succ']:.3f}{mark}")

    def on_edit(self):
        pass


class QuietMonitor:
    def on_step(self, step, terms, steps_per_s): pass
    def on_validation(self, step, metrics, improved): pass
    def on_edit(self): pass


def _with_interval(value: float, interval: dict | None, key: str) -> str:
    bounds = (interval or {}).get(key)
    if not bounds:
        return f"{value:.3f}"
    lo, hi = (f"{b:.2f}".removeprefix("0") if b < 1 else "1.0" for b in bounds)
    return f"{value:.3f} [{lo},{hi}]"


def results_table(metrics: dict) -> Table:
    """acc / con / succ per edit language and macro-averaged, with 95% bootstrap intervals."""
    s = metrics["setting"]
    table = Table(title=f"{s['editor']} + {s['masks']} masks on {s['dataset']} ({s['split']} edits, "
                        f"trained on {s['train_langs']}; [95% interval])")
    for col in ("edit lang", "edits", "acc", "con", "succ"):
        table.add_column(col, justify="right" if col != "edit lang" else "left", no_wrap=True)
    for lang, v in metrics["per_language"].items():
        ci = v.get("interval")
        table.add_row(lang, str(v["edits"]), *(_with_interval(v[k], ci, k) for k in ("acc", "con", "succ")))
    table.add_section()
    ci = metrics.get("interval")
    table.add_row("[bold]macro avg", str(metrics["edits"]),
                  *(f"[bold]{_with_interval(metrics[k], ci, k)}" for k in ("acc", "con", "succ")))
    b = metrics["baselines"]
    table.add_row("untrained", "", *(_with_interval(b[k], b.get("interval"), k) for k in ("acc", "con", "succ")))
    return table


def run_train(config: dict, console: Console, quiet: bool, trackers: list[str] | None = None) -> dict:
    from pathlib import Path

    from lime_toolkit.runs.build import build_run, default_out
    from lime_toolkit.runs.rundir import check_out

    check_out(Path(config.get("out") or default_out(config)))  # before anything is loaded
    warn_broken_plugins(console)
    with console.status("loading dataset and model (the demo builds its base model on first use)"):
        run = build_run(config, log=console.print)
    from lime_toolkit.devices import lone_launch_note, process_state

    if not process_state().is_main_process:
        console, quiet = Console(quiet=True), True  # under accelerate launch the main process alone speaks
    note = lone_launch_note()
    if note:
        console.print(f"[yellow]note:[/] {note}")
    from lime_toolkit.runs.train import check_run_dir, train_and_evaluate

    check_run_dir(run)  # a different run in that directory: refused before anything is printed
    console.print(f"[bold]lime-toolkit train[/]: editor {config['editor']}, masks {config['masks']}, "
                  f"dataset {config['dataset']}, train langs {config['train']['langs']}")
    console.print(f"model {run.config['model']} on {run.device}; editing {len(run.system.param_names)} "
                  f"weights; run directory {run.out}")
    columns = [TextColumn("[bold]step"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[terms]}"),
               TextColumn("val succ {task.fields[succ]}"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=quiet) as progress:
        monitor = QuietMonitor() if quiet else RichMonitor(progress, int(config["train"]["max_steps"]), console.print)
        tracking = None
        if trackers:
            from lime_toolkit.runs.tracking import AccelerateTracking
            from lime_toolkit.runs.train_log import Tee

            tracking = AccelerateTracking(trackers, run.out, run.config)
            monitor = Tee(monitor, tracking)
        try:
            metrics = train_and_evaluate(run, monitor, log=console.print)
        finally:
            if tracking is not None:
                tracking.close()
    if metrics is None:  # another process than the main one
        return {}
    out = Console()
    out.print(results_table(metrics))
    out.print(f"metrics written to {run.out / 'metrics.json'}")
    if quiet:
        out.print(json.dumps({k: metrics[k] for k in ("acc", "con", "succ")}))
    return metrics
