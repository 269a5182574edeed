"""Questions to ask a base model before trusting a cross-lingual editing result.

* :func:`layer_alignment`: at each layer's MLP input, at the prediction position, are parallel
  inputs represented alike? For every language, the share of held-out items whose nearest
  neighbour (cosine) among the first language's representations is the same item
  (``retrieval``), and the mean cosine of parallel pairs against that of unrelated pairs.
* :func:`finetune_reach`: does an update of the edited weights exist that carries an edit across
  languages? Finetune the edited weights on one edit input only (``"edit"``), or on the edit's
  inputs in every language together (``"joint"``), and check every language and unrelated inputs.
* :func:`gradient_step_reach`: what a single plain gradient step W − α∇W does (an untrained
  factor editor with step size α), for a range of α.

Both work on any run (dataset, model and edited weights as configured); ``lime-toolkit diagnose``
prints them. docs/diagnosis.md reads the demo's numbers.
"""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from lime_toolkit.architectures import editable_parameters, num_layers
from lime_toolkit.data import EditCase
from lime_toolkit.encoding import encode_examples
from lime_toolkit.evaluation import check_edit
from lime_toolkit.models import position_logits
from lime_toolkit.run import Run
from lime_toolkit.sampler import draw_unrelated


def _cases(run: Run, split: str, n: int, seed: int) -> list[EditCase]:
    langs = run.dataset.languages
    cases = [c for c in run.cases(split) if all(l in c.inputs for l in langs)]
    if len(cases) > n:
        cases = [cases[i] for i in sorted(random.Random(f"{seed}:diagnose").sample(range(len(cases)), n))]
    return cases


def _positions(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """One (row, column) per example: the first prediction position (classification: [CLS])."""
    if batch.cols is None:
        return batch.rows, torch.zeros_like(batch.rows)
    first = {}
    for i, (r, c) in enumerate(zip(batch.rows.tolist(), batch.cols.tolist())):
        first.setdefault(r, i)
    index = torch.tensor([first[r] for r in range(len(batch.examples))])
    return batch.rows[index], batch.cols[index]


@torch.no_grad()
def layer_alignment(run: Run, split: str = "test", n_items: int = 60, seed: int = 0) -> list[dict]:
    """Per layer: ``{"layer", "retrieval": {lang: share}, "cos_parallel", "cos_unrelated"}``."""
    model, langs = run.model, run.dataset.languages
    cases = _cases(run, split, n_items, seed)
    if len(cases) < 2:
        return []
    first_weights = editable_parameters(model, layers=list(range(num_layers(model))))[::2]
    modules = [model.get_submodule(name.rsplit(".", 1)[0]) for name in first_weights]
    seen: dict[int, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, i=i: seen.__setitem__(i, args[0]))
             for i, m in enumerate(modules)]
    try:
        examples = [c.inputs[l] for c in cases for l in langs]
        batch = encode_examples(run.tokenizer, examples, run.task).to(run.device)
        position_logits(model, batch)
    finally:
        for h in hooks:
            h.remove()
    rows, cols = _positions(batch)
    out = []
    for i in range(len(modules)):
        v = F.normalize(seen[i][rows, cols].float(), dim=-1).reshape(len(cases), len(langs), -1)
        anchor = v[:, 0]
        retrieval = {}
        for j, lang in enumerate(langs[1:], 1):
            hits = ((v[:, j] @ anchor.T).argmax(1) == torch.arange(len(cases), device=v.device)).float()
            retrieval[lang] = round(hits.mean().item(), 3)
        parallel = (v[:, 1:] * anchor[:, None]).sum(-1).mean().item()
        unrelated = (v[:, 1:] * anchor.roll(1, 0)[:, None]).sum(-1).mean().item()
        out.append({"layer": i, "anchor": langs[0], "retrieval": retrieval,
                    "cos_parallel": round(parallel, 3), "cos_unrelated": round(unrelated, 3)})
    return out


def _check(run: Run, case: EditCase, params, pool, n_retain: int, seed: int):
    langs = run.dataset.languages
    rng = random.Random(f"{seed}:{case.id}")
    retains = [draw_unrelated(rng, pool, langs, case.id) for _ in range(n_retain)]
    return check_edit(run.model, run.tokenizer, run.task, params, [case.inputs[l] for l in langs], retains)


def gradient_step_reach(run: Run, alphas=(0.01, 0.03, 0.1, 0.3, 1.0), split: str = "test", n_edits: int = 30,
                        n_retain: int = 12, seed: int = 0, edit_lang: str | None = None) -> list[dict]:
    """For each α: edit with W − α·∇W of the edit loss in ``edit_lang`` (default: the first
    language); ``[{"alpha", "acc": {lang: share}, "con"}]``."""
    langs = run.dataset.languages
    edit_lang = edit_lang or langs[0]
    weights = dict(run.model.named_parameters())
    names = run.system.param_names
    pool = run.pool(split)
    grads = []
    cases = _cases(run, split, n_edits, seed)
    for case in cases:
        batch = encode_examples(run.tokenizer, [case.inputs[edit_lang]], run.task).to(run.device)
        leaves = {n: weights[n].detach().requires_grad_() for n in names}
        with torch.enable_grad():
            loss = F.cross_entropy(position_logits(run.model, batch, leaves), batch.labels)
            grads.append(dict(zip(names, torch.autograd.grad(loss, list(leaves.values())))))
    out = []
    for alpha in alphas:
        hits = {l: [] for l in langs}
        kept: list[bool] = []
        for case, grad in zip(cases, grads):
            params = {n: weights[n].detach() - alpha * grad[n] for n in names}
            took, same = _check(run, case, params, pool, n_retain, seed)
            for lang, ok in zip(langs, took):
                hits[lang].append(ok)
            kept += same
        out.append({"alpha": alpha, "acc": {l: round(sum(v) / len(v), 3) for l, v in hits.items() if v},
                    "con": round(sum(kept) / len(kept), 3) if kept else None})
    return out


def finetune_reach(run: Run, mode: str = "edit", split: str = "test", n_edits: int = 30, lr: float = 1e-2,
                   max_steps: int = 100, n_retain: int = 12, seed: int = 0, edit_lang: str | None = None) -> dict:
    """Finetune the run's edited weights (Adam, until every trained input predicts its target or
    ``max_steps``) on ``mode="edit"``: the edit input in ``edit_lang`` (default: the first
    language); ``mode="joint"``: the edit's inputs in every language at once. Returns
    ``{"acc": {lang: share}, "con": share, "steps": mean steps, "edits": n}``."""
    model, langs, task = run.model, run.dataset.languages, run.task
    edit_lang = edit_lang or langs[0]
    weights = dict(model.named_parameters())
    names = run.system.param_names
    pool = run.pool(split)
    hits = {l: [] for l in langs}
    kept: list[bool] = []
    steps_taken = []
    for case in _cases(run, split, n_edits, seed):
        trained = [case.inputs[edit_lang]] if mode == "edit" else [case.inputs[l] for l in langs]
        batch = encode_examples(run.tokenizer, trained, task).to(run.device)
        params = {n: weights[n].detach().clone().requires_grad_() for n in names}
        optimizer = torch.optim.Adam(params.values(), lr=lr)
        step = 0
        with torch.enable_grad():
            for step in range(max_steps + 1):
                logits = position_logits(model, batch, params)
                if bool((logits.argmax(-1) == batch.labels).all()) or step == max_steps:
                    break
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(logits, batch.labels).backward()
                optimizer.step()
        steps_taken.append(step)
        took, same = _check(run, case, {n: p.detach() for n, p in params.items()}, pool, n_retain, seed)
        for lang, ok in zip(langs, took):
            hits[lang].append(ok)
        kept += same
    n = len(steps_taken)
    return {"mode": mode, "edit_lang": edit_lang if mode == "edit" else "all", "edits": n, "lr": lr,
            "acc": {l: round(sum(v) / len(v), 3) for l, v in hits.items() if v},
            "con": round(sum(kept) / len(kept), 3) if kept else None,
            "steps": round(sum(steps_taken) / n, 2) if n else None}
