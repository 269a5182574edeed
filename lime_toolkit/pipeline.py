"""The `train` job end to end: configure, measure the untrained editor, train, evaluate the best."""
from __future__ import annotations

import time

from .cache import write_json_atomic
from .checkpoint import load_checkpoint
from .config import save_config
from .errors import UserError
from .eval_job import scale_setting
from .evaluation import EvalSettings, evaluate
from .run import Run
from .train_log import logged_monitor
from .training import TrainingMonitor, load_best, train


def eval_settings(run: Run, overrides: dict | None = None) -> EvalSettings:
    cfg = {**run.config["eval"], **(overrides or {})}
    edit = run.roles(cfg["edit_langs"]).edit
    evals = run.roles(cfg["eval_langs"]).edit
    return EvalSettings(list(edit), list(evals), int(cfg["n_update"]), int(cfg["n_retain"]),
                        None if cfg["max_edits"] is None else int(cfg["max_edits"]), int(run.config["seed"]),
                        edit_scale=float(cfg.get("edit_scale", 1.0)))


def check_run_dir(run: Run) -> None:
    """Refuse to mix two different runs in one directory (resuming needs the same config), and to
    write into a directory that is not a run."""
    from .rundir import CONFIG_FILE, check_out, read_run_config

    check_out(run.out)
    if (run.out / CONFIG_FILE).exists():
        old = read_run_config(run.out)

        def comparable(config):  # a run may move, change device, or be extended with more steps
            rest = {k: v for k, v in config.items() if k not in ("out", "device")}
            return {**rest, "train": {k: v for k, v in config["train"].items() if k != "max_steps"}}

        if comparable(old) != comparable(run.config):
            raise UserError(f"'{run.out}' holds a run with a different configuration; pass another --out "
                            f"or delete that directory")


def train_and_evaluate(run: Run, monitor: TrainingMonitor, log=print) -> dict | None:
    """Train (unless the editor has nothing to train), then evaluate the best checkpoint and the
    untrained editor on the same held-out edits; writes ``<out>/metrics.json``. Under
    ``accelerate launch`` every process trains and the main one alone evaluates and writes; the
    others return None."""
    started = time.perf_counter()
    from .rundir import prepare_out

    check_run_dir(run)
    settings = eval_settings(run)
    split = run.config["eval"]["split"]
    result = None
    if run.system.editor.trainable:
        from .checkpoint import recover, verify
        from .training import PREVIOUS

        recover(run.out / "checkpoints", PREVIOUS)  # finish a save a killed process left half done
        for name in ("last", "best", "init"):  # a damaged checkpoint stops the run before anything is written
            if (run.out / "checkpoints" / name).exists():
                verify(run.out / "checkpoints" / name)
        from .run import process_state

        dist = process_state()
        if dist.is_main_process:
            prepare_out(run.out)
            save_config(run.config, run.out / "config.yaml")
        dist.wait_for_everyone()
        result = train(run, logged_monitor(run.out, monitor))  # also writes <out>/train_log.jsonl
        if not dist.is_main_process:
            return None  # under accelerate launch the main process alone evaluates and writes
        if result.resumed_from:
            log(f"resumed from step {result.resumed_from}")
    else:
        prepare_out(run.out)
        save_config(run.config, run.out / "config.yaml")
        log(f"editor '{run.config['editor']}' has nothing to train; evaluating it directly")
    cases, pool = run.cases(split), run.pool(split)
    baselines = None
    if run.system.editor.trainable:
        load_checkpoint(run.out / "checkpoints" / "init", run.system)
        baselines = evaluate(run.system, run.tokenizer, run.task, cases, pool, settings, monitor.on_edit)
        load_best(run)
    metrics = evaluate(run.system, run.tokenizer, run.task, cases, pool, settings, monitor.on_edit)
    metrics["baselines"] = baselines if baselines is not None else {k: metrics[k] for k in ("acc", "con", "succ")}
    metrics["setting"] = {
        "dataset": run.config["dataset"], "editor": run.config["editor"], "masks": run.config["masks"],
        "train_langs": run.config["train"]["langs"] if run.system.editor.trainable else "n/a", "split": split,
        "edit_langs": settings.edit_langs,
        "eval_langs": settings.eval_langs, "n_update": settings.n_update, "n_retain": settings.n_retain,
        "seed": run.config["seed"], "model": run.config["model"], **scale_setting(settings),
    }
    if result is not None:
        metrics["training"] = {"steps": result.steps, "best_step": result.best_step,
                               "best_val_succ": result.best_succ, "stopped_early": result.stopped_early}
    metrics["wall_time_s"] = round(time.perf_counter() - started, 1)
    write_json_atomic(run.out / "metrics.json", metrics)
    return metrics


def open_run(run_dir, overrides: dict | None = None, checkpoint: str = "best") -> Run:
    """Rebuild a finished (or interrupted) run from its directory and load its ``checkpoint``
    ("best", falling back to "last"; "init" for the untrained editor)."""
    from pathlib import Path

    from .run import build_run
    from .rundir import read_run_config

    run_dir = Path(run_dir)
    config = read_run_config(run_dir, overrides)
    run = build_run(config, out=run_dir)
    if checkpoint == "init":
        init = run_dir / "checkpoints" / "init"
        if run.system.editor.trainable and not init.exists():
            raise UserError(f"'{run_dir}' has no init checkpoint; train it first")
        if init.exists():
            load_checkpoint(init, run.system)
    elif run.system.editor.trainable:
        if not load_best(run):
            raise UserError(f"'{run_dir}' has no checkpoint yet; train it first")
    return run
