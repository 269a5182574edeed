"""The faces of ``evaluate``, ``edit``, ``report`` and ``compare``: load a run, call the core, print
rich tables, write files. The commands themselves are declared in :mod:`lime_toolkit.cli`."""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .errors import UserError

RUN_FLAGS = ("editor", "masks", "dataset", "data_dir", "model", "languages", "limit", "seed")


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def refuse_run_flags(config_path, flags: dict) -> None:
    """With a RUN_DIR, the flags that would configure a new run are an error."""
    extra = [k for k in RUN_FLAGS if flags.get(k) is not None] + (["--config"] if config_path else [])
    if extra:
        raise UserError(f"a run directory brings its own configuration; drop "
                        f"{', '.join('--' + k.replace('_', '-') for k in extra)} or leave out RUN_DIR")


def load_run(run_dir, config_path, flags: dict, checkpoint: str = "best", seed: int | None = None):
    """A run from its directory (with ``checkpoint`` loaded), or, without one, a run built from the
    flags (an untrained editor such as ft) whose directory is ``--out``."""
    from .cli import resolve_config
    from .run import build_run

    if run_dir is not None:
        refuse_run_flags(config_path, flags)
        from .checkpoint import load_checkpoint
        from .pipeline import open_run

        overrides = {"device": flags["device"]} if flags.get("device") else None
        run = open_run(run_dir, overrides, "init" if checkpoint == "init" else "best")
        if checkpoint == "last" and run.system.editor.trainable:
            last = Path(run_dir) / "checkpoints" / "last"
            if not last.exists():
                raise UserError(f"'{run_dir}' has no last checkpoint")
            load_checkpoint(last, run.system)
        return run
    flags = {**flags, "seed": seed if seed is not None else flags.get("seed")}
    config = resolve_config(config_path, **{k: v for k, v in flags.items() if k in RUN_FLAGS + ("device", "out")})
    run = build_run(config)
    if run.system.editor.trainable:
        Console(stderr=True).print(f"[yellow]note:[/] editor '{config['editor']}' is trainable but no run directory "
                                   f"was given: evaluating it untrained")
    return run


def language_table(doc: dict) -> Table:
    """Per edit language: edits, acc, con, succ, and the min/spread of its acc over eval languages."""
    s = doc["setting"]
    table = Table(title=f"{s['editor']} + {s['masks']} masks on {s['dataset']}: {s['split']} edits, "
                        f"{','.join(s['edit_langs'])} -> {','.join(s['eval_langs'])} (%, seeds {s['seeds']})")
    for col in ("edit language", "edits", "acc", "con", "succ", "acc min", "acc spread"):
        table.add_column(col, justify="left" if col == "edit language" else "right")
    for l, v in doc["per_edit_language"].items():
        a = v.get("acc_over_eval") or {}
        table.add_row(l, str(v["edits"]), _pct(v["acc"]), _pct(v["con"]), _pct(v["succ"]), _pct(a.get("min")),
                      _pct(a.get("spread")))
    table.add_section()
    multi = len(s["seeds"]) > 1
    cell = lambda k: _pct(doc[k]) + (f" ± {100 * doc['std'][k]:.2f}" if multi else "")  # noqa: E731
    table.add_row("[bold]macro average", str(doc["edits"]), f"[bold]{cell('acc')}", f"[bold]{cell('con')}",
                  f"[bold]{cell('succ')}", "", "")
    table.add_row("succ_per_edit", "", "", "", cell("succ_per_edit"), "", "")
    spread = doc["across_edit_languages"]
    table.add_row("spread (max-min)", "", *(_pct((spread.get(k) or {}).get("spread")) for k in ("acc", "con", "succ")),
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
        table.add_row(le, *(_pct(row.get(c)) for c in cols))
    return table


def eval_language_table(doc: dict) -> Table:
    table = Table(title="per eval language (over edit languages, %)")
    for col in ("eval language", "acc mean", "acc min", "acc spread", "con mean", "con min", "con spread"):
        table.add_column(col, justify="left" if col == "eval language" else "right")
    for l, v in doc["per_eval_language"].items():
        a, c = v["acc"] or {}, v["con"] or {}
        table.add_row(l, *(_pct(x.get(k)) for x in (a, c) for k in ("mean", "min", "spread")))
    return table


def run_evaluate(run_dir, config_path, flags: dict, err: Console) -> dict:
    """``lime-toolkit evaluate``: evaluate, print the tables, write ``<run>/eval/<setting>.*``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .eval_job import evaluate_run, parse_max_edits, parse_seeds, resolve_settings, setting_name
    from .reporting import write_eval_outputs

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
        from .sequential import check_counts

        n_seq, k_batch = check_counts(n_seq, k_batch)
    from .rundir import check_output_file

    check_output_file(json_path, "--json")
    check_output_file(records_path, "--records")
    if name is not None and (not name.strip() or "/" in name or "\\" in name or name.startswith(".")):
        raise UserError(f"--name '{name}' must be a plain file stem (no '/', not starting with '.')")
    from .preflight import check_language_specs, command_config

    if run_dir is not None:
        refuse_run_flags(config_path, flags)
    check_language_specs(command_config(run_dir, config_path, flags),
                         {k: overrides[k] for k in ("edit_langs", "eval_langs")})  # before the model loads
    with err.status("loading run"):
        run = load_run(run_dir, config_path, flags, checkpoint, seeds[0] if seeds and run_dir is None else None)
    if run_dir is None:
        from .pipeline import check_run_dir

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
            from .sequential import evaluate_sequential_run

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
            from .sequential import sequential_name

            name += sequential_name(n_seq, k_batch)
    if run_dir is None:
        from .run import save_run_config

        save_run_config(run)
    paths = write_eval_outputs(doc, Path(run.out) / "eval", name)
    if json_path:
        from .cache import write_json_atomic

        write_json_atomic(Path(json_path), doc)
    if records_path:
        from .cache import write_text_atomic

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
        table.add_row(str(st["edits"]), str(st["steps"]), *(_pct(st[k]) for k in ("acc", "con", "succ", "succ_per_edit")))
    return table


def run_edit(run_dir, config_path, flags: dict, err: Console):
    """``lime-toolkit edit``: one edit, a before/after table, optionally the edited model saved."""
    text, target, lang = flags.pop("input_text"), flags.pop("target"), flags.pop("lang")
    save, checkpoint, n_unrelated = flags.pop("save"), flags.pop("checkpoint"), flags.pop("unrelated")
    if save and Path(save).exists() and (not Path(save).is_dir() or any(Path(save).iterdir())):
        raise UserError(f"--save '{save}' already exists and is not empty; pass a new directory")
    from .preflight import check_edit_language, command_config

    if run_dir is not None:
        refuse_run_flags(config_path, flags)
    check_edit_language(command_config(run_dir, config_path, flags), lang)  # before the model loads
    with err.status("loading run"):
        run = load_run(run_dir, config_path, flags, checkpoint)
    from .single_edit import apply_edit, save_edited_model  # torch: after the checks

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


def read_runs(run_dirs, eval_name: str | None = None) -> list[dict]:
    """The metrics of each run directory: ``metrics.json``, or ``eval/<eval_name>.json``."""
    from .reporting import load_json

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
    from .cache import write_json_atomic
    from .rundir import check_output_file
    from .tables import cell, paper_table, to_markdown

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
        from .cache import write_text_atomic

        write_text_atomic(Path(md_path), to_markdown(rows, per_edit=per_edit))
    if json_path:
        write_json_atomic(Path(json_path), rows)
    return rows
