"""The `train` job end to end: configure, measure the untrained editor, train, evaluate the best."""
from __future__ import annotations

import time

from lime_toolkit.checkpoint import load_checkpoint
from lime_toolkit.config import save_config
from lime_toolkit.errors import UserError
from lime_toolkit.evaluation import evaluate
from lime_toolkit.files import write_json_atomic
from lime_toolkit.run import Run
from lime_toolkit.runs.evaluate import eval_settings, scale_setting
from lime_toolkit.runs.train_log import logged_monitor
from lime_toolkit.training import TrainingMonitor, load_best, train


def check_run_dir(run: Run) -> None:
    """Refuse to mix two different runs in one directory (resuming needs the same config), and to
    write into a directory that is not a run."""
    from lime_toolkit.runs.rundir import CONFIG_FILE, check_out, read_run_config

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
    from lime_toolkit.runs.rundir import prepare_out

    check_run_dir(run)
    settings = eval_settings(run)
    split = run.config["eval"]["split"]
    result = None
    if run.system.editor.trainable:
        from lime_toolkit.checkpoint import recover, verify
        from lime_toolkit.devices import process_state
        from lime_toolkit.training import PREVIOUS

        dist = process_state()
        # Under several processes each has checked the directory (check_out, check_run_dir) before
        # the main one changes it; otherwise a slower process could find it half written and refuse it.
        dist.wait_for_everyone()
        if dist.is_main_process:
            recover(run.out / "checkpoints", PREVIOUS)  # finish a save a killed process left half done
        dist.wait_for_everyone()
        for name in ("last", "best", "init"):  # a damaged checkpoint stops the run before anything is written
            if (run.out / "checkpoints" / name).exists():
                verify(run.out / "checkpoints" / name)
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
