"""Apply held-out edits and measure, per edit language and eval language, whether they reach the
parallel inputs (acc) and spare unrelated ones (con)."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

import torch

from lime_toolkit.batched_evaluation import EditJob, check_edits, resolve_batch_size
from lime_toolkit.data import EditCase, Example
from lime_toolkit.editing import EditingSystem, scaled_edits
from lime_toolkit.encoding import encode_examples, per_example
from lime_toolkit.errors import UserError
from lime_toolkit.metrics import EditRecord, summarise
from lime_toolkit.models import position_logits
from lime_toolkit.sampler import draw_unrelated
from lime_toolkit.shared_prefix import UneditedCache


@dataclass
class EvalSettings:
    """``n_update``: parallel inputs per edit (0 = every eval language); ``n_retain``: unrelated
    inputs per edit; ``max_edits``: at most this many edits per edit language (None = all);
    ``intervals``: add the bootstrap intervals (validation during training needs only the means);
    ``batch_size``: edits made and checked together when the editor's edits are low-rank (None:
    :data:`~lime_toolkit.batched_evaluation.DEFAULT_BATCH_SIZE`; 1: one at a time; other editors
    always go one at a time). The records do not depend on it. ``edit_scale``: every edit's update
    multiplied by this (1.0: as the editor makes it; a probe of the edits' magnitude)."""

    edit_langs: list[str]
    eval_langs: list[str]
    n_update: int = 1
    n_retain: int = 4
    max_edits: int | None = None
    seed: int = 0
    intervals: bool = True
    batch_size: int | None = None
    edit_scale: float = 1.0


@torch.no_grad()
def check_edit(model, tokenizer, task: str, params, updates: list[Example], retains: list[Example]):
    """Under the edited ``params``: does each update input predict its target (``took``), and does
    each retain input keep the unedited model's prediction (``kept``)? One batch for both."""
    batch = encode_examples(tokenizer, updates + retains, task)
    batch = batch.to(next(iter(params.values())).device) if params else batch
    edited = position_logits(model, batch, params).argmax(-1)
    base = position_logits(model, batch).argmax(-1)
    n_u = len(updates)
    took = per_example(edited == batch.labels, batch.rows, len(batch.examples))[:n_u]
    kept = per_example(edited == base, batch.rows, len(batch.examples))[n_u:]
    return took, kept


def edit_and_check(system: EditingSystem, tokenizer, task: str, case: EditCase, lang: str,
                   updates: list[Example], retains: list[Example]) -> EditRecord:
    """Apply one edit of ``case`` in ``lang`` and check the update and retain inputs."""
    device = next(system.model.parameters()).device
    with torch.no_grad():
        params = system.edit(encode_examples(tokenizer, [case.inputs[lang]], task).to(device), lang)
    took, kept = check_edit(system.model, tokenizer, task, params, updates, retains)
    return EditRecord(lang, [(ex.lang, ok) for ex, ok in zip(updates, took)],
                      [(ex.lang, ok) for ex, ok in zip(retains, kept)])


def plan_edits(cases: list[EditCase], pool: dict[str, list[Example]], settings: EvalSettings):
    """The edits :func:`evaluate` makes, in order: per edit language its cases (a seeded sample of
    ``max_edits``), each with its seeded draw of update and retain inputs."""
    for lang in settings.edit_langs:
        mine = [c for c in cases if c.can_edit_in(lang)]
        if settings.max_edits is not None and len(mine) > settings.max_edits:
            # a seeded sample spread over the whole split (the first N would be few subjects)
            keep = random.Random(f"{settings.seed}:sample:{lang}").sample(range(len(mine)), settings.max_edits)
            mine = [mine[i] for i in sorted(keep)]
        for case in mine:
            if any(l in case.inputs for l in settings.eval_langs):
                yield draw_job(case, lang, pool, settings)


def draw_job(case: EditCase, lang: str, pool: dict[str, list[Example]], settings: EvalSettings,
             exclude: set[str] | None = None, attempts: int = 100) -> EditJob:
    """The edit of ``case`` in ``lang`` with its draw of update and retain inputs, seeded by
    (seed, lang, case): the parallel inputs in the eval languages (``n_update`` of them, sampled,
    when fewer than all), and ``n_retain`` unrelated inputs, none parallel to ``case`` nor to an
    item of ``exclude``."""
    rng = random.Random(f"{settings.seed}:{lang}:{case.id}")
    langs = [l for l in settings.eval_langs if l in case.inputs]
    if settings.n_update and settings.n_update < len(langs):
        langs = sorted(rng.sample(langs, settings.n_update), key=settings.eval_langs.index)
    excluded = {case.id} | set(exclude or ())
    retains = [draw_unrelated(rng, pool, settings.eval_langs, excluded, attempts) for _ in range(settings.n_retain)]
    return EditJob(lang, case, [case.inputs[l] for l in langs], retains)


def edit_records(system: EditingSystem, tokenizer, task: str, jobs, batch_size: int | None = None,
                 on_edit: Callable[[], None] | None = None) -> list[EditRecord]:
    """The record of every edit of ``jobs``: in batches of ``batch_size`` where the editor's edits
    are low-rank (:mod:`lime_toolkit.batched_evaluation`), else one at a time."""
    size = resolve_batch_size(system, batch_size)
    records: list[EditRecord] = []
    pending: list[EditJob] = []
    unedited = UneditedCache()  # the retain inputs' unedited results, shared by all the batches

    def flush():
        done = check_edits(system, tokenizer, task, pending, unedited) if size > 1 else [
            edit_and_check(system, tokenizer, task, j.case, j.lang, j.updates, j.retains) for j in pending]
        records.extend(done)
        for _ in done:
            if on_edit:
                on_edit()
        pending.clear()

    for job in jobs:
        pending.append(job)
        if len(pending) >= size:
            flush()
    if pending:
        flush()
    return records


def outcome(job: EditJob, record: EditRecord) -> dict:
    """One edit's outcome as plain JSON: the case, its edit language and target, the case's scalar
    metadata (e.g. the relation), whether each parallel input took the target and whether each
    unrelated input kept its prediction."""
    meta = {k: v for k, v in (job.case.meta or {}).items() if isinstance(v, (str, int, float, bool))}
    return {"case": job.case.id, "edit_lang": job.lang, "target": job.case.inputs[job.lang].target, "meta": meta,
            "took": [[lang, ok] for lang, ok in record.updates], "kept": [[lang, ok] for lang, ok in record.retains]}


def evaluate(system: EditingSystem, tokenizer, task: str, cases: list[EditCase], pool: dict[str, list[Example]],
             settings: EvalSettings, on_edit: Callable[[], None] | None = None,
             on_records: Callable[[list[dict]], None] | None = None) -> dict:
    """Run every edit (up to ``max_edits`` per edit language) and summarise them. ``on_records``
    is given one :func:`outcome` per edit, in the order they were made."""
    was_training = system.training
    system.eval()
    try:
        jobs = list(plan_edits(cases, pool, settings))
        with scaled_edits(system, settings.edit_scale):
            records = edit_records(system, tokenizer, task, jobs, settings.batch_size, on_edit)
    finally:
        system.train(was_training)
    if on_records:
        on_records([outcome(job, record) for job, record in zip(jobs, records)])
    if not records:
        raise UserError("no edits to evaluate: the split has no cases in the chosen edit languages")
    return summarise(records, settings.edit_langs, settings.eval_langs, intervals=settings.intervals)
