"""The ``evaluate`` job: held-out edits of a run under chosen language settings and seeds.

A *setting* is (split, edit languages, eval languages, n_update, n_retain, max_edits); each seed
draws its own update and retain inputs. :func:`evaluate_run` returns the evaluation document of
:mod:`lime_toolkit.results` (schema in docs/evaluation.md).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

from lime_toolkit.errors import UserError

if TYPE_CHECKING:  # torch: imported by the functions that evaluate, so parsing flags stays cheap
    from lime_toolkit.evaluation import EvalSettings
    from lime_toolkit.run import Run


def parse_max_edits(value) -> int | None:
    """``None``/``"all"``/``0`` -> None (every edit), else a positive int."""
    if value is None or str(value).strip().lower() in ("all", "0", "none"):
        return None
    try:
        n = int(value)
    except ValueError:
        raise UserError(f"--max-edits must be a number or 'all' (got '{value}')") from None
    if n < 0:
        raise UserError(f"--max-edits must not be negative (got {n})")
    return n


def parse_seeds(value, flag: str = "--seeds") -> list[int] | None:
    """``"0,1,2"`` -> [0, 1, 2]; None/empty -> None. Seeds are integers >= 0."""
    if value is None or not str(value).strip():
        return None
    try:
        seeds = [int(s) for s in str(value).split(",") if s.strip()]
    except ValueError:
        raise UserError(f"{flag} must be a comma list of integers >= 0 (got '{value}')") from None
    if any(s < 0 for s in seeds):
        raise UserError(f"{flag} must be a comma list of integers >= 0 (got '{value}')")
    return seeds


def resolve_settings(run: Run, overrides: dict) -> tuple[str, EvalSettings]:
    """The split and :class:`EvalSettings` of ``run`` with ``overrides`` (keys ``split``,
    ``edit_langs``, ``eval_langs``, ``n_update``, ``n_retain``, ``max_edits``, ``edit_scale``; None =
    the run's config)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if "max_edits" in given:
        given["max_edits"] = parse_max_edits(given["max_edits"])
    split = given.pop("split", None) or run.config["eval"]["split"]
    cfg = {**run.config["eval"], **given}
    if cfg.get("max_edits") is not None and parse_max_edits(cfg["max_edits"]) is None:
        cfg["max_edits"] = None
    if int(cfg["n_update"]) < 0 or int(cfg["n_retain"]) < 0:
        raise UserError("--n-update and --n-retain must not be negative")
    return split, eval_settings(run, cfg)


def setting_name(split: str, edit_spec, eval_spec, n_update: int, n_retain: int = 4,
                 edit_scale: float = 1.0) -> str:
    """File-name stem of a setting, e.g. ``test_en-to-all`` (``_u0`` etc. for non-default
    sampling, ``_x1.5`` for edits scaled by 1.5)."""
    def spec(v):
        return (",".join(v) if isinstance(v, (list, tuple)) else str(v)).replace(",", "+").replace(" ", "")

    name = f"{split}_{spec(edit_spec)}-to-{spec(eval_spec)}"
    if int(n_update) != 1:
        name += f"_u{n_update}"
    if int(n_retain) != 4:
        name += f"_r{n_retain}"
    if float(edit_scale) != 1.0:
        name += f"_x{float(edit_scale):g}"
    return name


def eval_settings(run: Run, overrides: dict | None = None) -> EvalSettings:
    """The evaluation settings of the run's ``eval`` section, with ``overrides`` applied."""
    from lime_toolkit.evaluation import EvalSettings

    cfg = {**run.config["eval"], **(overrides or {})}
    edit = run.roles(cfg["edit_langs"]).edit
    evals = run.roles(cfg["eval_langs"]).edit
    return EvalSettings(list(edit), list(evals), int(cfg["n_update"]), int(cfg["n_retain"]),
                        None if cfg["max_edits"] is None else int(cfg["max_edits"]), int(run.config["seed"]),
                        edit_scale=float(cfg.get("edit_scale", 1.0)))


def scale_setting(settings: EvalSettings) -> dict:
    """``{"edit_scale": s}`` for an evaluation whose edits were scaled, else nothing."""
    return {} if settings.edit_scale == 1.0 else {"edit_scale": settings.edit_scale}


def count_edits(cases, settings: EvalSettings) -> int:
    """How many edits :func:`evaluate` will make (for progress bars)."""
    total = 0
    for lang in settings.edit_langs:
        n = sum(1 for c in cases if c.can_edit_in(lang))
        total += n if settings.max_edits is None else min(n, settings.max_edits)
    return total


def run_setting(run: Run, checkpoint: str | None = None) -> dict:
    """What a run is, for the ``setting`` of an evaluation document."""
    trained = run.system.editor.trainable
    return {"dataset": run.config["dataset"], "editor": run.config["editor"], "masks": run.config["masks"],
            "train_langs": run.config["train"]["langs"] if trained else "n/a", "model": run.config["model"],
            "seed": run.config["seed"],
            "languages": list(run.dataset.languages), "checkpoint": checkpoint}


def evaluate_run(run: Run, overrides: dict, seeds: list[int] | None = None, checkpoint: str | None = None,
                 on_edit: Callable[[], None] | None = None, runs_by_seed: Callable[[int], Run] | None = None,
                 on_total: Callable[[int], None] | None = None, batch_size: int | None = None,
                 on_records: Callable[[int, list[dict]], None] | None = None) -> dict:
    """Evaluate ``run``'s editor as it is loaded, once per seed (default: the run's seed), and
    return the evaluation document. ``runs_by_seed(seed)`` may give a different run per seed (an
    untrained editor rebuilt with that seed); otherwise every seed uses ``run`` and only the
    sampling of update/retain inputs changes. ``on_total(n)`` is told the number of edits to come
    (for a progress bar), ``on_edit()`` after each. ``batch_size``: edits made and checked together
    (:class:`~lime_toolkit.evaluation.EvalSettings`; None: the default). ``on_records(seed, outcomes)``
    receives every edit's outcome (:func:`lime_toolkit.evaluation.outcome`) per seed."""
    from lime_toolkit.evaluation import evaluate
    from lime_toolkit.results import eval_document

    split, settings = resolve_settings(run, overrides)
    seeds = seeds or [int(run.config["seed"])]
    results = {}
    cases = pool = None
    for seed in seeds:
        current = runs_by_seed(seed) if runs_by_seed else run
        if cases is None or runs_by_seed:
            cases, pool = current.cases(split), current.pool(split)
            if on_total and not results:
                on_total(count_edits(cases, settings) * len(seeds))
        results[seed] = evaluate(current.system, current.tokenizer, current.task, cases, pool,
                                 dataclasses.replace(settings, seed=seed, batch_size=batch_size), on_edit,
                                 on_records=(lambda rows, s=seed: on_records(s, rows)) if on_records else None)
    setting = {**run_setting(run, checkpoint), "split": split, "edit_langs": settings.edit_langs,
               "eval_langs": settings.eval_langs, "n_update": settings.n_update, "n_retain": settings.n_retain,
               "max_edits": settings.max_edits, **scale_setting(settings)}
    return eval_document(results, setting, {"run_dir": str(run.out), "checkpoint": checkpoint})
