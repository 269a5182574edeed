"""``lime-toolkit evaluate``: a run's editor on held-out edits (single, sequential or batch editing),
printed as rich tables and written under ``RUN_DIR/eval/``."""
from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lime_toolkit.cli.common import configured, console, load_run, percent, refuse_run_flags, run_dir_arg, run_options
from lime_toolkit.errors import UserError


@click.command()
@run_dir_arg
@run_options
@click.option("--out", type=click.Path(file_okay=False), help="Without RUN_DIR: where to write (default runs/...).")
@click.option("--checkpoint", type=click.Choice(["best", "last", "init"]), default="best", show_default=True,
              help="Which checkpoint of RUN_DIR ('init': the untrained editor).")
@click.option("--edit-langs", help="Edit languages: 'en', 'all' or a comma list (default: the run's config).")
@click.option("--eval-langs", help="Update/retain languages: 'en', 'all' or a comma list (default: the run's config).")
@click.option("--split", type=click.Choice(["train", "dev", "test"]),
              help=f"Split of the edits (default {configured('eval.split')}).")
@click.option("--n-update", type=click.IntRange(min=0),
              help="Parallel inputs checked per edit; 0 = every eval language (default: the config's eval.n_update, "
                   f"{configured('eval.n_update')}).")
@click.option("--n-retain", type=click.IntRange(min=0),
              help=f"Unrelated inputs checked per edit (default {configured('eval.n_retain')}).")
@click.option("--max-edits", help="At most this many edits per edit language; 'all' for every one.")
@click.option("--edit-scale", type=click.FloatRange(min=0, min_open=True),
              help="Multiply every edit's update by this (default: the config's eval.edit_scale, "
                   f"{configured('eval.edit_scale')}): a probe of whether edits are too weak or too strong.")
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
@click.option("--batch-size", type=click.IntRange(min=1), help="Edits made and checked together (default 64; 1: one "
              "at a time). Only editors whose edits are low-rank batch; the records do not depend on it.")
@click.option("--quiet", is_flag=True, help="Only print the results (no progress).")
def evaluate(run_dir, config_path, quiet, **flags):
    """Evaluate a trained run (RUN_DIR), or an untrained editor such as ft (no RUN_DIR), on
    held-out edits; writes RUN_DIR/eval/<setting>.json|csv|md.

    `--edit-langs en --eval-langs all` is the paper's Table 1 setting, `all`/`all` Table 2.
    """

    run_evaluate(run_dir, config_path, flags, console(quiet))


def language_table(doc: dict) -> Table:
    """Per edit language: edits, acc, con, succ, and the min/spread of its acc over eval languages."""
    s = doc["setting"]
    table = Table(title=f"{s['editor']} + {s['masks']} masks on {s['dataset']}: {s['split']} edits, "
                        f"{','.join(s['edit_langs'])} -> {','.join(s['eval_langs'])} (%, seeds {s['seeds']})")
    for col in ("edit language", "edits", "acc", "con", "succ", "acc min", "acc spread"):
        table.add_column(col, justify="left" if col == "edit language" else "right")
    for l, v in doc["per_edit_language"].items():
        a = v.get("acc_over_eval") or {}
        table.add_row(l, str(v["edits"]), percent(v["acc"]), percent(v["con"]), percent(v["succ"]), percent(a.get("min")),
                      percent(a.get("spread")))
    table.add_section()
    multi = len(s["seeds"]) > 1
    cell = lambda k: percent(doc[k]) + (f" ± {100 * doc['std'][k]:.2f}" if multi else "")  # noqa: E731
    table.add_row("[bold]macro average", str(doc["edits"]), f"[bold]{cell('acc')}", f"[bold]{cell('con')}",
                  f"[bold]{cell('succ')}", "", "")
    table.add_row("succ_per_edit", "", "", "", cell("succ_per_edit"), "", "")
    spread = doc["across_edit_languages"]
    table.add_row("spread (max-min)", "", *(percent((spread.get(k) or {}).get("spread")) for k in ("acc", "con", "succ")),
                  "", "")
    return table


def matrix_table(matrix: dict, title: str) -> Table:
    """A rich table of a ``{l_e: {l: value}}`` matrix in %."""
    cols = list(dict.fromkeys(c for r in matrix.values() for c in r))
    table = Table(title=title)
    table.add_column("edit \\ eval")
    for c in cols:
        table.add_column(c, justify="right")
    for le, row in matrix.items():
        table.add_row(le, *(percent(row.get(c)) for c in cols))
    return table


def eval_language_table(doc: dict) -> Table:
    table = Table(title="per eval language (over edit languages, %)")
    for col in ("eval language", "acc mean", "acc min", "acc spread", "con mean", "con min", "con spread"):
        table.add_column(col, justify="left" if col == "eval language" else "right")
    for l, v in doc["per_eval_language"].items():
        a, c = v["acc"] or {}, v["con"] or {}
        table.add_row(l, *(percent(x.get(k)) for x in (a, c) for k in ("mean", "min", "spread")))
    return table


def run_evaluate(run_dir, config_path, flags: dict, err: Console) -> dict:
    """``lime-toolkit evaluate``: evaluate, print the tables, write ``<run>/eval/<setting>.*``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lime_toolkit.report.documents import write_eval_outputs
    from lime_toolkit.runs.evaluate import evaluate_run, parse_max_edits, parse_seeds, resolve_settings, setting_name

    seeds = parse_seeds(flags.pop("seeds"))
    checkpoint = flags.pop("checkpoint")
    overrides = {k: flags.pop(k) for k in ("split", "edit_langs", "eval_langs", "n_update", "n_retain", "max_edits",
                                                "edit_scale")}
    json_path, name, batch_size = flags.pop("json_path"), flags.pop("name"), flags.pop("batch_size")
    n_seq, k_batch = flags.pop("sequential", None), flags.pop("batch_edits", None)
    records_path = flags.pop("records", None)
    parse_max_edits(overrides["max_edits"])  # fail before loading anything
    many = n_seq is not None or k_batch is not None
    if many and records_path:
        raise UserError("--records writes single-edit outcomes; drop it or drop --sequential/--batch-edits")
    if many:
        from lime_toolkit.runs.sequential import check_counts

        n_seq, k_batch = check_counts(n_seq, k_batch)
    from lime_toolkit.runs.rundir import check_output_file

    check_output_file(json_path, "--json")
    check_output_file(records_path, "--records")
    if name is not None and (not name.strip() or "/" in name or "\\" in name or name.startswith(".")):
        raise UserError(f"--name '{name}' must be a plain file stem (no '/', not starting with '.')")
    from lime_toolkit.cli.preflight import check_language_specs, command_config

    if run_dir is not None:
        refuse_run_flags(config_path, flags)
    check_language_specs(command_config(run_dir, config_path, flags),
                         {k: overrides[k] for k in ("edit_langs", "eval_langs")})  # before the model loads
    with err.status("loading run"):
        run = load_run(run_dir, config_path, flags, checkpoint, seeds[0] if seeds and run_dir is None else None)
    if run_dir is None:
        from lime_toolkit.runs.train import check_run_dir

        check_run_dir(run)  # never overwrite another run's configuration
    by_seed = None
    if run_dir is None:
        cache = {int(run.config["seed"]): run}

        def by_seed(seed: int):
            if seed not in cache:
                cache[seed] = load_run(None, config_path, flags, checkpoint, seed)
            return cache[seed]
    split, settings = resolve_settings(run, overrides)
    columns = [TextColumn("[bold]evaluate"), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("edits", total=None)
        common = dict(on_edit=lambda: progress.advance(task), runs_by_seed=by_seed,
                      on_total=lambda n: progress.update(task, total=n))
        if many:
            from lime_toolkit.runs.sequential import evaluate_sequential_run

            doc = evaluate_sequential_run(run, overrides, n_seq, k_batch, seeds, checkpoint if run_dir else None,
                                          **common)
        else:
            outcomes: list[dict] = []
            keep = (lambda seed, rows: outcomes.extend({"seed": seed, **row} for row in rows)) if records_path else None
            doc = evaluate_run(run, overrides, seeds, checkpoint if run_dir else None, batch_size=batch_size,
                               on_records=keep, **common)
    cfg_eval = run.config["eval"]
    if name is None:
        name = setting_name(split, overrides["edit_langs"] or cfg_eval["edit_langs"],
                            overrides["eval_langs"] or cfg_eval["eval_langs"], settings.n_update, settings.n_retain,
                            settings.edit_scale)
        if many:
            from lime_toolkit.runs.sequential import sequential_name

            name += sequential_name(n_seq, k_batch)
    if run_dir is None:
        from lime_toolkit.runs.build import save_run_config

        save_run_config(run)
    paths = write_eval_outputs(doc, Path(run.out) / "eval", name)
    if json_path:
        from lime_toolkit.files import write_json_atomic

        write_json_atomic(Path(json_path), doc)
    if records_path:
        from lime_toolkit.files import write_text_atomic

        write_text_atomic(Path(records_path), "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in outcomes))
    out = Console()
    out.print(language_table(doc))
    out.print(eval_language_table(doc))
    out.print(matrix_table(doc["acc_matrix"], "acc[l_e][l_u] (%)"))
    out.print(matrix_table(doc["con_matrix"], "con[l_e][l_r] (%)"))
    if "sequential" in doc:
        out.print(stage_table(doc))
    extra = [str(p) for p in (json_path, records_path) if p]
    out.print(f"written: {', '.join([str(p) for p in paths.values()] + extra)}")
    return doc


def stage_table(doc: dict) -> Table:
    """Sequential/batch editing: acc, con and succ of every edit so far after each stage."""
    seq = doc["sequential"]
    table = Table(title=f"{seq['n_edits']} edits in steps of {seq['batch_edits']}: every edit so far, "
                        f"con against the unedited model (%)")
    for col in ("edits", "steps", "acc", "con", "succ", "succ_per_edit"):
        table.add_column(col, justify="right")
    for st in seq["stages"]:
        table.add_row(str(st["edits"]), str(st["steps"]), *(percent(st[k]) for k in ("acc", "con", "succ", "succ_per_edit")))
    return table
