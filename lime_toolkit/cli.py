"""The ``lime-toolkit`` command line: a thin face over the core. Heavy imports stay inside commands."""
from __future__ import annotations

import json
import re
import sys

import click

from .errors import UserError


def one_line(text) -> str:
    return " ".join(str(text).split())


class OneLineError(click.ClickException):
    """Printed as a single ``Error: ...`` line on stderr; exit status 2 (bad input)."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"Error: {one_line(self.format_message())}", file=file, err=file is None)


def _usage_error(exc: click.UsageError) -> OneLineError:
    hint = f" (see '{exc.ctx.command_path} -h')" if exc.ctx is not None else ""
    return OneLineError(one_line(exc.format_message()) + hint)


def _os_error(exc: OSError) -> OneLineError:
    from pathlib import Path

    from .cache import cache_root

    what = exc.strerror or type(exc).__name__
    try:
        in_cache = Path(str(exc.filename)).resolve().is_relative_to(cache_root().resolve())
    except (OSError, ValueError):
        in_cache = False
    fix = ("set LIME_TOOLKIT_CACHE to a writable directory" if in_cache else
           "check the path and its permissions, or choose another location")
    return OneLineError(f"cannot use '{exc.filename}': {what}; {fix}")


class Group(click.Group):
    """Turns :class:`UserError`, click's usage errors and file-system errors into one clear line and
    exit status 2, never a traceback."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _usage_error(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise OneLineError(str(exc)) from None
        except click.UsageError as exc:
            raise _usage_error(exc) from None
        except OSError as exc:
            if exc.filename is None:
                raise
            raise _os_error(exc) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lime-toolkit")
def cli():
    """Cross-lingual model editing with language anisotropic (LiME) masks."""


def console(quiet: bool = False):
    from rich.console import Console

    return Console(stderr=True, quiet=quiet)


def warn_broken_plugins(out) -> None:
    from .plugin_manager import get_plugin_manager

    for info in get_plugin_manager().plugins():
        if info.status in ("error", "incompatible"):
            out.print(f"[yellow]warning:[/] plugin '{info.name}' not loaded: {info.error}")


@cli.command("list-plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--check", is_flag=True, help="Also import every component registered by import path "
              "(slower: loads torch) and mark a plugin whose component fails to import as an error.")
def list_plugins(as_json: bool, check: bool):
    """Every installed plugin, what it provides, and whether it loaded."""
    from .plugin_manager import get_plugin_manager

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


def run_options(fn):
    """Options shared by the commands that build a run from a configuration."""
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML file with any config keys."),
        click.option("--editor", help="Editor plugin name (default mend)."),
        click.option("--masks", help="Mask strategy name (default l0; 'none' for no masks)."),
        click.option("--dataset", help="Dataset plugin name (default demo)."),
        click.option("--data-dir", type=click.Path(file_okay=False), help="Directory the dataset reads."),
        click.option("--model", help="Base model: a directory or hub id (default: the dataset's)."),
        click.option("--langs", "languages", help="Comma list: restrict the dataset to these languages."),
        click.option("--limit", type=int, help="At most this many edit cases per split."),
        click.option("--seed", type=int, help="Random seed (default 0)."),
        click.option("--device", help="auto, cpu, cuda or cuda:N."),
        click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                     help="Set any config key, e.g. --set train.max_steps=500 (repeatable; YAML values)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def resolve_config(config_path, **flags) -> dict:
    from .config import load_config

    keys = {"editor": "editor", "masks": "masks", "dataset": "dataset", "data_dir": "data_dir", "model": "model",
            "languages": "languages", "limit": "limit", "seed": "seed", "device": "device", "out": "out",
            "max_steps": "train.max_steps", "train_langs": "train.langs"}
    overrides = {keys[k]: v for k, v in flags.items() if k in keys and v is not None}  # unset flags: no say
    if overrides.get("languages"):
        overrides["languages"] = [l.strip() for l in overrides["languages"].split(",") if l.strip()]
    return load_config(config_path, {**parse_settings(flags.get("settings") or ()), **overrides})


def parse_settings(items) -> dict:
    """``("train.max_steps=500", "edit.layers=[1, 2]")`` -> ``{"train.max_steps": 500, ...}``; values
    are read as YAML (numbers, lists, mappings); ``null`` becomes :data:`lime_toolkit.config.NULL`
    (the key is reset: null where allowed, the component's default inside option sections)."""
    import yaml

    from .config import NULL

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects KEY=VALUE (got '{item}'), e.g. --set train.max_steps=500")
        if not raw.strip():
            raise UserError(f"--set {key.strip()}= has no value; give one, or null to reset the key")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise UserError(f"--set {key.strip()}: '{raw}' is not a valid value (YAML syntax)") from None
        if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        out[key.strip()] = NULL if value is None else value
    return out


@cli.command()
@run_options
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (resumed if it holds this run).")
@click.option("--max-steps", type=int, help="Optimiser steps (default from config).")
@click.option("--train-langs", help="'en' (English only), 'all', or a comma list of languages.")
@click.option("--quiet", is_flag=True, help="Only print the final results.")
@click.option("--log-with", metavar="TRACKERS",
              help="Also log to Accelerate's trackers: tensorboard, wandb, mlflow, ... (comma list, or all); "
                   "files under <out>/tracking/.")
def train(config_path, quiet, log_with, **flags):
    """Meta-train an editor cross-lingually, then evaluate it on held-out edits.

    With no flags: MEND with LiME L0 masks on the offline demo world.
    """
    from .cli_train import run_train

    trackers = None
    if log_with is not None:
        from .tracking import parse_log_with

        trackers = parse_log_with(log_with)  # not installed: one line, before anything is loaded
    run_train(resolve_config(config_path, **flags), console(quiet), quiet, trackers)


@cli.command()
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
    from .cli_diagnose import run_diagnose

    run_diagnose(resolve_config(config_path, **flags), split, n_edits, lr, json_path, console())


@cli.command("prepare-base")
@click.option("--dataset", help="Dataset whose raw model to build (default: the configured dataset).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Directory the dataset reads.")
@click.option("--langs", "languages", help="Comma list of languages.")
@click.option("--out", type=click.Path(file_okay=False), help="Where to save the model (default: the cache).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def prepare_base(dataset, data_dir, languages, out, seed):
    """Build the raw model a dataset's edits are made to (the demo's tiny masked LM, ...)."""
    from pathlib import Path

    from .cache import check_cache_writable
    from .run import open_dataset
    from .rundir import check_out

    config = resolve_config(None, dataset=dataset, data_dir=data_dir, languages=languages, seed=seed)
    if out:
        check_out(Path(out))
    else:
        check_cache_writable()
    out_console = console()
    ds = open_dataset(config)
    path = ds.prepare_base_model(Path(out) if out else None, progress=out_console.print)
    click.echo(str(path))


@cli.group(cls=Group)
def data():
    """Inspect datasets."""


@data.command("describe")
@click.option("--dataset", help="Dataset name (default: the configured dataset).")
@click.option("--data-dir", type=click.Path(file_okay=False))
@click.option("--langs", "languages", help="Comma list of languages.")
@click.option("--json", "as_json", is_flag=True, help="Print {language: {split: rows}} as JSON.")
def data_describe(dataset, data_dir, languages, as_json):
    """Row counts per language and split, as read."""
    from .run import open_dataset

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


# -- evaluation, single edits, reports and comparisons (faces in cli_eval.py) ----------------------

def _run_dir_arg(fn):
    return click.argument("run_dir", required=False, type=click.Path(exists=True, file_okay=False))(fn)


@cli.command()
@_run_dir_arg
@run_options
@click.option("--out", type=click.Path(file_okay=False), help="Without RUN_DIR: where to write (default runs/...).")
@click.option("--checkpoint", type=click.Choice(["best", "last", "init"]), default="best", show_default=True,
              help="Which checkpoint of RUN_DIR ('init': the untrained editor).")
@click.option("--edit-langs", help="Edit languages: 'en', 'all' or a comma list (default: the run's config).")
@click.option("--eval-langs", help="Update/retain languages: 'en', 'all' or a comma list (default: the run's config).")
@click.option("--split", type=click.Choice(["train", "dev", "test"]), help="Split of the edits (default test).")
@click.option("--n-update", type=click.IntRange(min=0),
              help="Parallel inputs checked per edit; 0 = every eval language (default: the config's eval.n_update, 0).")
@click.option("--n-retain", type=click.IntRange(min=0), help="Unrelated inputs checked per edit (default 4).")
@click.option("--max-edits", help="At most this many edits per edit language; 'all' for every one.")
@click.option("--seeds", help="Comma list of evaluation seeds (default: the run's seed); mean ± std reported.")
@click.option("--sequential", type=int, metavar="N",
              help="Sequential editing: N held-out edits one after another on the same model; acc of every "
                   "edit so far and con after 1, 2, 5, 10, 20, 50, 100, ... edits (docs/sequential.md).")
@click.option("--batch-edits", type=int, metavar="K",
              help="Batch editing: K edits in one step (with --sequential: N edits in steps of K).")
@click.option("--name", help="File stem under RUN_DIR/eval/ (default from the setting, e.g. test_en-to-all).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the JSON document here.")
@click.option("--records", type=click.Path(dir_okay=False), help="Also write every edit's outcome here (JSON lines: "
              "case, edit language, target, the case's metadata, took per parallel input, kept per unrelated one).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Edits made and checked together (default 32; 1: one "
              "at a time). Only editors whose edits are low-rank (mend, et) batch; the records do not depend on it.")
@click.option("--quiet", is_flag=True, help="Only print the results (no progress).")
def evaluate(run_dir, config_path, quiet, **flags):
    """Evaluate a trained run (RUN_DIR), or an untrained editor such as ft (no RUN_DIR), on
    held-out edits; writes RUN_DIR/eval/<setting>.json|csv|md.

    `--edit-langs en --eval-langs all` is the paper's Table 1 setting, `all`/`all` Table 2.
    """
    from .cli_eval import run_evaluate

    run_evaluate(run_dir, config_path, flags, console(quiet))


@cli.command()
@_run_dir_arg
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
    from .cli_eval import run_edit

    flags.pop("out", None)
    run_edit(run_dir, config_path, flags, console())


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="HTML file (default RUN_DIR/report.html for one run).")
@click.option("--no-masks", is_flag=True, help="Skip the mask analysis (it loads each run's model).")
def report(run_dirs, out, no_masks):
    """One self-contained HTML report (tables and figures) of one or several runs."""
    from pathlib import Path

    from .html_report import build_report

    if out is None:
        if len(run_dirs) > 1:
            raise UserError("several runs: pass --out PATH for the report")
        out = Path(run_dirs[0]) / "report.html"
    from .rundir import check_output_file

    check_output_file(out, "--out")
    err = console()
    with err.status("building report"):
        path = build_report(list(run_dirs), out, masks=not no_masks, log=err.print)
    click.echo(str(path))


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--eval", "eval_name", help="Compare RUN_DIR/eval/<NAME>.json instead of metrics.json.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), help="Write the table as markdown.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the rows as JSON.")
@click.option("--per-edit", is_flag=True, help="Add the succ_per_edit column.")
def compare(run_dirs, eval_name, md_path, json_path, per_edit):
    """A table like the paper's Tables 1 and 2 (mean ± std over seeds) of finished runs."""
    from .cli_eval import run_compare

    run_compare(run_dirs, eval_name, md_path, json_path, per_edit)


@cli.command()
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
    from .cli_grid import run_grid
    from .eval_job import parse_seeds

    overrides = {**parse_settings(settings), **{k: v for k, v in {
        "dataset": flags["dataset"], "data_dir": flags["data_dir"], "model": flags["model"],
        "train.max_steps": flags["max_steps"]}.items() if v is not None}}
    seed_list = parse_seeds(seeds, "--seeds")
    if not seed_list:
        raise UserError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    run_grid(table, grid_file, config_path, seed_list, out_dir, overrides, console(quiet), quiet)


@cli.command()
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the measurements as JSON here.")
@click.option("--quick", is_flag=True, help="Check the command in seconds: the tiny test model instead of the "
              "demo model, no mBERT-size model, no dataset preparation (the numbers mean nothing).")
@click.option("--no-mbert", "no_mbert", is_flag=True, help="Skip the mBERT-size model.")
@click.option("--no-prep", "no_prep", is_flag=True, help="Skip the dataset preparation timing.")
@click.option("--prep-dataset", help="The dataset whose preparation is timed (default: bench.yaml's).")
@click.option("--prep-data-dir", type=click.Path(file_okay=False), help="Its data (default: bench.yaml's); "
              "the part is skipped, saying why, when there is none.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Edits per batch in the batched evaluation (default: "
              "evaluate's).")
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
def bench(json_path, quick, no_mbert, no_prep, prep_dataset, prep_data_dir, batch_size, device):
    """Measure speed as ratios in one process: forward, forward+backward, test-time edit,
    meta-training step, evaluation one edit at a time and batched, peak memory (demo and
    mBERT-size models), and a dataset's preparation (docs/performance.md)."""
    from .cli_bench import run_bench_command

    run_bench_command(json_path, quick, not no_mbert, not no_prep, prep_dataset, prep_data_dir, batch_size, device,
                      console())


def main(argv=None) -> None:
    from .plugin_manager import get_plugin_manager

    get_plugin_manager().add_commands(cli)
    cli.main(args=argv, prog_name="lime-toolkit")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
