"""Sequential and batch editing: many held-out edits applied to one model (``evaluate
--sequential N`` and ``--batch-edits K``).

The base model itself is never modified: the running edited parameters are a dict, as for one
edit. Each *step* starts from the parameters the previous steps produced and makes K edits (1 for
plain sequential editing):

* factor editors: every edit's factors are captured on the current weights and masked with its own
  edit language's masks; the step applies the sum of their updates, W <- W - sum_k alpha * dW_k
  (the factors of the K edit inputs together in one dW);
* full editors (FT): the current weights are finetuned on the K edit inputs at once (one batch) and
  carried on to the next step.

After each *stage* (1, 2, 5, 10, 20, 50, 100, ... edits and the last one) every edit made so far is
checked: acc on its parallel inputs (in every eval language) and con on its unrelated inputs,
compared with the ORIGINAL unedited model's predictions.

The order of the edits is a seeded shuffle of the split's (case, edit language) pairs in which
every case comes once before any comes again (in another edit language, with the same desired
targets: the demo's test split has 54 facts, so 100 edits edit some facts twice). Each edit's
update and retain inputs are drawn exactly as :func:`lime_toolkit.evaluation.evaluate` draws them,
except that no unrelated input may be an item the sequence edits; so one sequential edit is the
single-edit evaluation of that edit. When the sequence edits every item of the split, the
unrelated inputs come from the other held-out split (dev for test; ``setting.retain_split``).
"""
from __future__ import annotations

import dataclasses
import random
from typing import Callable

import torch

from lime_toolkit.batched_evaluation import EditJob
from lime_toolkit.data import EditCase, Example
from lime_toolkit.editing import EditingSystem, scaled_edits
from lime_toolkit.editor_api import FullEditor
from lime_toolkit.encoding import encode_examples
from lime_toolkit.errors import UserError
from lime_toolkit.evaluation import EvalSettings, check_edit, draw_job
from lime_toolkit.metrics import EditRecord, summarise
from lime_toolkit.models import Params

#: Edit counts after which every edit so far is checked (besides the last edit).
STAGE_MARKS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
#: What a stage keeps of a ``summarise()`` dict.
STAGE_KEYS = ("acc", "con", "succ", "succ_per_edit", "per_language", "acc_matrix", "con_matrix")


def stage_points(n_edits: int) -> list[int]:
    """The edit counts after which the edits so far are checked: :data:`STAGE_MARKS` up to
    ``n_edits``, and ``n_edits`` itself."""
    return sorted({m for m in STAGE_MARKS if m <= n_edits} | {n_edits})


def check_counts(n_edits: int | None, batch_edits: int | None) -> tuple[int, int]:
    """``(N, K)`` from ``--sequential`` and ``--batch-edits``: ``--batch-edits K`` alone is one step
    of K edits; both: N edits in steps of K. One-line errors for values below 1 or K > N."""
    for flag, value in (("--sequential", n_edits), ("--batch-edits", batch_edits)):
        if value is not None and int(value) < 1:
            raise UserError(f"{flag} must be at least 1 (got {value})")
    k = int(batch_edits or 1)
    n = int(n_edits) if n_edits is not None else k
    if k > n:
        raise UserError(f"--batch-edits {k} is larger than --sequential {n}; make it at most {n}")
    return n, k


OTHER_SPLIT = {"test": "dev", "dev": "test", "train": "dev"}


def plan_edits(cases: list[EditCase], pool: dict[str, list[Example]], settings: EvalSettings,
               n_edits: int, split: str = "test", fallback_pool: dict[str, list[Example]] | None = None) -> list[EditJob]:
    """The first ``n_edits`` (case, edit language) pairs of a seeded shuffle in which every case
    comes once before any comes again (in another edit language, with the same desired targets).

    Unrelated inputs are drawn from ``pool`` without the items of any edit of the sequence; when
    the sequence edits every item of ``pool``, from ``fallback_pool`` (another held-out split)."""
    candidates = [(case, lang) for lang in settings.edit_langs for case in cases
                  if case.can_edit_in(lang) and any(l in case.inputs for l in settings.eval_langs)]
    if len(candidates) < n_edits:
        raise UserError(f"the {split} split has {len(candidates)} edits in the edit languages "
                        f"({','.join(settings.edit_langs)}), fewer than the {n_edits} asked for; "
                        f"ask for at most {len(candidates)}")
    order = random.Random(f"{settings.seed}:sequential").sample(range(len(candidates)), len(candidates))
    seen: dict[str, int] = {}
    rounds = []
    for i in order:  # round r: the r-th time its case comes; a stable sort keeps the shuffle within rounds
        case_id = candidates[i][0].id
        rounds.append(seen.get(case_id, 0))
        seen[case_id] = rounds[-1] + 1
    chosen = [candidates[i] for _, i in sorted(zip(rounds, order), key=lambda pair: pair[0])][:n_edits]
    edited = {case.id for case, _ in chosen}
    unrelated = pool  # drawn with rejection, as evaluation draws (one edit: the same inputs)
    if not any(ex.id not in edited for l in settings.eval_langs for ex in pool.get(l, [])):
        if fallback_pool is None:
            raise UserError(f"the sequence edits every item of the {split} split, so it has no unrelated inputs "
                            f"left; make fewer edits")
        unrelated = fallback_pool
    # as evaluation draws them (one edit: the same inputs); many excluded items need more tries
    return [draw_job(case, lang, unrelated, settings, exclude=edited, attempts=10000) for case, lang in chosen]


@torch.no_grad()
def edit_step(system: EditingSystem, tokenizer, task: str, edits: list[tuple[Example, str]],
              params: Params) -> Params:
    """The parameters after one step of the (edit input, edit language) ``edits`` on ``params``.

    Factor editors: ``params - sum_k alpha * dW_k``; full editors: their edit of ``params`` on the
    K inputs as one batch (its context's language is the first edit's)."""
    device = next(iter(params.values())).device
    encode = lambda examples: encode_examples(tokenizer, examples, task).to(device)  # noqa: E731
    if isinstance(system.editor, FullEditor):
        return system.editor.edit(params, system.context(encode([ex for ex, _ in edits]), edits[0][1]))
    total: Params = {}
    for ex, lang in edits:
        for name, update in system.updates(encode([ex]), lang, params).items():
            total[name] = update if name not in total else total[name] + update
    return {name: value - total[name] if name in total else value for name, value in params.items()}


def check_edits(system: EditingSystem, tokenizer, task: str, params: Params, edits: list[EditJob]) -> list[EditRecord]:
    """Every edit in ``edits`` checked under ``params`` (con against the unedited model)."""
    records = []
    for e in edits:
        took, kept = check_edit(system.model, tokenizer, task, params, e.updates, e.retains)
        records.append(EditRecord(e.lang, [(ex.lang, ok) for ex, ok in zip(e.updates, took)],
                                  [(ex.lang, ok) for ex, ok in zip(e.retains, kept)]))
    return records


def sequential_evaluate(system: EditingSystem, tokenizer, task: str, cases: list[EditCase],
                        pool: dict[str, list[Example]], settings: EvalSettings, n_edits: int, batch_edits: int = 1,
                        on_edit: Callable[[], None] | None = None, split: str = "test",
                        fallback_pool: dict[str, list[Example]] | None = None) -> dict:
    """Make ``n_edits`` edits in steps of ``batch_edits``, each step on the model the previous ones
    produced; return ``{"final": summarise() of every edit after the last step, "stages": [...],
    "order": [[case id, edit language], ...], "own_retains": whether the unrelated inputs came from
    ``pool`` (else from ``fallback_pool``)}``. A stage is ``{"edits", "steps", acc, con, succ,
    succ_per_edit, per_language, acc_matrix, con_matrix}`` over the edits made so far."""
    plan = plan_edits(cases, pool, settings, n_edits, split, fallback_pool)
    marks = stage_points(n_edits)
    was_training = system.training
    system.eval()
    stages, final = [], None
    try:
        params = {n: t.detach() for n, t in system.base_params().items()}
        done = steps = 0
        for start in range(0, n_edits, batch_edits):
            step = plan[start:start + batch_edits]
            params = edit_step(system, tokenizer, task, [(e.case.inputs[e.lang], e.lang) for e in step], params)
            before, done, steps = done, done + len(step), steps + 1
            for _ in step:
                if on_edit:
                    on_edit()
            if any(before < m <= done for m in marks):
                last = done == n_edits
                summary = summarise(check_edits(system, tokenizer, task, params, plan[:done]), settings.edit_langs,
                                    settings.eval_langs, intervals=settings.intervals and last)
                stages.append({"edits": done, "steps": steps, **{k: summary[k] for k in STAGE_KEYS}})
                if last:
                    final = summary
    finally:
        system.train(was_training)
    edited = {e.case.id for e in plan}
    own = any(ex.id not in edited for l in settings.eval_langs for ex in pool.get(l, []))  # as plan_edits decides
    return {"final": final, "stages": stages, "order": [[e.case.id, e.lang] for e in plan], "own_retains": own}


def evaluate_sequential_run(run, overrides: dict, n_edits: int | None, batch_edits: int | None,
                            seeds: list[int] | None = None, checkpoint: str | None = None,
                            on_edit: Callable[[], None] | None = None, runs_by_seed=None,
                            on_total: Callable[[int], None] | None = None) -> dict:
    """Like :func:`lime_toolkit.runs.evaluate.evaluate_run`, for sequential/batch editing: the evaluation
    document of every edit after the last step, with ``"sequential"``: ``{"n_edits", "batch_edits",
    "stages": [...]}`` (each stage the mean over seeds, ``std`` and ``per_seed`` of its headline)."""
    from lime_toolkit.results import HEADLINE, eval_document, mean_result, mean_std
    from lime_toolkit.runs.evaluate import resolve_settings, run_setting, scale_setting

    n, k = check_counts(n_edits, batch_edits)
    split, settings = resolve_settings(run, overrides)
    seeds = seeds or [int(run.config["seed"])]
    if on_total:
        on_total(n * len(seeds))
    outcomes = {}
    for seed in seeds:
        current = runs_by_seed(seed) if runs_by_seed else run
        with scaled_edits(current.system, settings.edit_scale):
            outcomes[seed] = sequential_evaluate(current.system, current.tokenizer, current.task,
                                                 current.cases(split), current.pool(split),
                                                 dataclasses.replace(settings, seed=seed), n, k, on_edit, split,
                                                 _fallback(current, split))
    stages = []
    for i, first in enumerate(outcomes[seeds[0]]["stages"]):
        per_seed = {s: outcomes[s]["stages"][i] for s in seeds}
        combined = mean_result([{**v, "edits": v["edits"], "languages_without_edits": []} for v in per_seed.values()])
        stages.append({"edits": first["edits"], "steps": first["steps"],
                       **{key: combined[key] for key in STAGE_KEYS},
                       "std": {key: mean_std(v[key] for v in per_seed.values())["std"] for key in HEADLINE},
                       "per_seed": {str(s): {key: v[key] for key in HEADLINE} for s, v in per_seed.items()}})
    setting = {**run_setting(run, checkpoint), "split": split, "edit_langs": settings.edit_langs,
               "eval_langs": settings.eval_langs, "n_update": settings.n_update, "n_retain": settings.n_retain,
               "max_edits": None, "sequential": n, "batch_edits": k, **scale_setting(settings),
               "retain_split": split if all(o["own_retains"] for o in outcomes.values()) else OTHER_SPLIT[split]}
    doc = eval_document({s: outcomes[s]["final"] for s in seeds}, setting,
                        {"run_dir": str(run.out), "checkpoint": checkpoint})
    doc["sequential"] = {"n_edits": n, "batch_edits": k, "stages": stages,
                         "order": {str(s): outcomes[s]["order"] for s in seeds}}
    return doc


def _fallback(run, split: str):
    """The locality pool of the other held-out split (None when the dataset has none)."""
    try:
        return run.pool(OTHER_SPLIT[split])
    except UserError:
        return None


def sequential_name(n_edits: int, batch_edits: int) -> str:
    """The setting-name suffix, e.g. ``_seq100`` or ``_seq100_b10``."""
    return f"_seq{n_edits}" + (f"_b{batch_edits}" if batch_edits != 1 else "")
