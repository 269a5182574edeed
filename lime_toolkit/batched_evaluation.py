"""Batched evaluation: several independent edits made and checked in one pass through the model.

A factor editor's edit of a weight W is low-rank: ΔW = Σ_t δ̃_t x̃_tᵀ over the edit input's tokens
t. Its edited layer therefore computes, for any input x,

    W' x = W x − α ΔW x = W x − α Σ_t δ̃_t (x̃_t · x)

so the edit never needs a dense W' of its own. A batch of B edits is evaluated as:

1. one forward/backward pass over the B edit inputs captures each input's gradient factors (the
   loss is the sum of the inputs' own mean losses, so each input's factors are those a pass on it
   alone gives: edits are independent);
2. per edit, the mask strategy of its language and the editor's transform give (x̃, δ̃), exactly as
   :meth:`~lime_toolkit.editing.EditingSystem.edit` does for one edit (an editor whose transform
   works token by token, ``tokenwise``, transforms the tokens of all the edits in one call);
3. the update inputs of all B edits, grouped by length, go through the edited model, each edited
   layer's output corrected by its row's own edit's factored update (forward hooks); the retain
   inputs go through the unedited model (their unedited predictions) and through the edited layers
   once more: the layers before the first edited one are not computed twice, the edited pass
   starts from the hidden states the unedited pass had there.

Every per-edit outcome equals the one-edit-at-a-time loop's (:func:`lime_toolkit.evaluation.
edit_and_check`) up to floating-point rounding in the last bits, which decides a prediction only
at an exact tie (tests/test_batched_evaluation.py compares the two on the tiny test models).

Full editors (finetuning) and factor editors whose ΔW is not a sum of outer products of transformed
factors (KnowledgeEditor overrides :meth:`~lime_toolkit.editor_api.FactorEditor.delta_weight`)
are evaluated one edit at a time.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lime_toolkit.data import EditCase, Example
from lime_toolkit.editing import EditingSystem
from lime_toolkit.encoding import Batch, encode_examples, per_example
from lime_toolkit.factored_updates import FactoredUpdates, applied, edits_are_low_rank
from lime_toolkit.factors import linear_io
from lime_toolkit.metrics import EditRecord
from lime_toolkit.models import Params, position_logits
from lime_toolkit.shared_prefix import (
    UneditedCache,
    layer_stack,
    resumed_at_first_edited_layer,
    resumed_hidden,
)

#: Edits per batch when evaluating an editor whose edits are low-rank and no batch size is given.
DEFAULT_BATCH_SIZE = 64

ExampleFactors = dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class EditJob:
    """One edit to evaluate: the case edited in ``lang``, its update and retain inputs."""

    lang: str
    case: EditCase
    updates: list[Example]
    retains: list[Example]


def resolve_batch_size(system: EditingSystem, batch_size: int | None) -> int:
    """Edits per batch: ``batch_size`` (None: :data:`DEFAULT_BATCH_SIZE`) for low-rank editors, 1
    (the loop) for every other editor."""
    if not edits_are_low_rank(system):
        return 1
    return DEFAULT_BATCH_SIZE if batch_size is None else max(1, int(batch_size))


def capture_example_factors(model: nn.Module, batch: Batch, params: Params,
                            losses: list[float] | None = None) -> list[ExampleFactors]:
    """Per example of ``batch``: ``{name: (x, δ)}`` of the edited weights ``params``, as
    :func:`lime_toolkit.factors.capture_factors` gives for that example alone (detached; tokens
    where x or δ is all zero, padding among them, dropped). ``losses``, when given, receives each
    example's own loss."""
    leaves = {n: t.detach().requires_grad_() for n, t in params.items()}
    with linear_io(model, params) as seen, torch.enable_grad():
        logits = position_logits(model, batch, leaves)
        target = batch.labels != -100
        per_position = F.cross_entropy(logits, batch.labels, ignore_index=-100, reduction="none")
        # each example's own mean: its positions weigh 1 / (its number of targets)
        counts = torch.bincount(batch.rows[target], minlength=len(batch.examples)).to(per_position.dtype)
        weight = torch.where(target, 1.0 / counts.clamp(min=1)[batch.rows], torch.zeros_like(per_position))
        loss = (per_position * weight).sum()
        if losses is not None:
            own = torch.zeros(len(batch.examples), dtype=per_position.dtype, device=per_position.device)
            losses.extend(own.index_add_(0, batch.rows, (per_position * weight).detach()).tolist())
        names = list(seen)
        grads = torch.autograd.grad(loss, [seen[n][1] for n in names], allow_unused=True)
    out: list[ExampleFactors] = [{} for _ in batch.examples]
    for name, delta in zip(names, grads):
        x, y = seen[name]
        if delta is None:
            delta = torch.zeros_like(y)
        x, delta = x.detach(), delta.detach()
        for i in range(len(batch.examples)):
            xi, di = x[i].reshape(-1, x.shape[-1]), delta[i].reshape(-1, delta.shape[-1])
            keep = (xi != 0).any(dim=1) & (di != 0).any(dim=1)
            out[i][name] = (xi[keep], di[keep])
    return out


def transformed_factors(system: EditingSystem, tokenizer, task: str, jobs: list[EditJob],
                        factors: list[ExampleFactors], device,
                        losses: list[float] | None = None,
                        noise: Callable[[int], AbstractContextManager] | None = None,
                        ) -> list[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Per edit: ``{name: (x̃, s·α·δ̃)}`` after its language's masks and the editor's transform, s
    the system's ``edit_scale`` times its :meth:`~lime_toolkit.editing.EditingSystem.loss_factor`
    of the edit's loss (``losses``, needed when ``loss_power`` is set). A
    :attr:`~lime_toolkit.editor_api.FactorEditor.tokenwise` editor transforms the tokens of all the
    edits in one call per weight; any other gets one call per edit with that edit's context.
    ``noise(e)``, when given, is the random state edit ``e``'s masks draw their gates under
    (meta-training: the state of that edit's micro-step)."""
    editor, masks = system.editor, system.masks
    masked = []
    for e, (job, mine) in enumerate(zip(jobs, factors)):
        with noise(e) if noise is not None else nullcontext():
            masked.append({name: masks.apply(name, job.lang, x, delta) if masks is not None else (x, delta)
                           for name, (x, delta) in mine.items()})
    out: list[dict] = [{} for _ in jobs]
    scales = [system.edit_scale * (system.loss_factor(losses[e]) if losses is not None else 1.0)
              for e in range(len(jobs))]
    if system.loss_power and losses is None:
        raise ValueError("transformed_factors: loss_power is set, so the edits' losses are needed")
    if getattr(editor, "tokenwise", False):
        for name in masked[0]:
            sizes = [len(edit[name][0]) for edit in masked]
            x_t, d_t = editor.transform(name, torch.cat([edit[name][0] for edit in masked]),
                                        torch.cat([edit[name][1] for edit in masked]), None)
            d_t = editor.step_size(name) * d_t
            for e, (x_e, d_e) in enumerate(zip(x_t.split(sizes), d_t.split(sizes))):
                out[e][name] = (x_e, scales[e] * d_e)
        return out
    for e, (job, edit) in enumerate(zip(jobs, masked)):
        ctx = system.context(encode_examples(tokenizer, [job.case.inputs[job.lang]], task).to(device), job.lang)
        for name, (x, delta) in edit.items():
            x_t, d_t = editor.transform(name, x, delta, ctx)
            out[e][name] = (x_t, scales[e] * editor.step_size(name) * d_t)
    return out


#: At most this many update and retain inputs in one forward pass (inputs of similar length go
#: together, so that little is padding).
ROWS_PER_PASS = 48


@torch.no_grad()
def check_edits(system: EditingSystem, tokenizer, task: str, jobs: list[EditJob],
                unedited: UneditedCache | None = None) -> list[EditRecord]:
    """Make and check the edits of ``jobs`` together (see the module docstring); one
    :class:`EditRecord` per job, in order. ``unedited`` keeps the unedited model's results on the
    retain inputs for the next batches of the same evaluation (None: this batch's own)."""
    model = system.model
    device = next(model.parameters()).device
    base = system.base_params()
    unedited = unedited if unedited is not None else UneditedCache()
    edit_batch = encode_examples(tokenizer, [j.case.inputs[j.lang] for j in jobs], task).to(device)
    losses: list[float] = []
    factors = capture_example_factors(model, edit_batch, base, losses)
    updates = FactoredUpdates(transformed_factors(system, tokenizer, task, jobs, factors, device, losses))
    stack = layer_stack(model, list(updates.x))
    # every update and retain input, with its edit and whether it is a retain input
    checked = [(ex, e, k >= len(j.updates)) for e, j in enumerate(jobs) for k, ex in enumerate(j.updates + j.retains)]
    lengths = encode_examples(tokenizer, [ex for ex, _, _ in checked], task).inputs["attention_mask"].sum(dim=1)
    kept = unedited.results(model, tokenizer, task, stack, [ex for ex, _, retain in checked if retain],
                            ROWS_PER_PASS, device)
    outcome: dict[int, bool] = {}
    for retain in (False, True):  # update inputs: one edited pass; retain inputs: from the first edited layer
        order = sorted((i for i in range(len(checked)) if checked[i][2] == retain), key=lambda i: int(lengths[i]))
        for start in range(0, len(order), ROWS_PER_PASS):
            group = order[start:start + ROWS_PER_PASS]
            batch = encode_examples(tokenizer, [checked[i][0] for i in group], task).to(device)
            owner = torch.tensor([checked[i][1] for i in group], device=device)
            if not retain:
                with applied(model, updates, owner):
                    edited = position_logits(model, batch, base).argmax(-1)
                outcome.update(zip(group, _per_example(edited == batch.labels, batch.rows, len(group))))
                continue
            mine = [kept[checked[i][0]] for i in group]
            hidden = resumed_hidden(batch, mine) if stack is not None else None
            with applied(model, updates, owner), (
                    resumed_at_first_edited_layer(stack, hidden, unedited.as_tuple) if hidden is not None
                    else nullcontext()):
                edited = position_logits(model, batch, base).argmax(-1)
            before = torch.empty_like(edited)
            for r, k in enumerate(mine):
                before[batch.rows == r] = k.predicted
            outcome.update(zip(group, _per_example(edited == before, batch.rows, len(group))))
    records, at = [], 0
    for j in jobs:
        n_u, n = len(j.updates), len(j.updates) + len(j.retains)
        flags = [outcome[i] for i in range(at, at + n)]
        at += n
        records.append(EditRecord(j.lang, [(ex.lang, ok) for ex, ok in zip(j.updates, flags[:n_u])],
                                  [(ex.lang, ok) for ex, ok in zip(j.retains, flags[n_u:])]))
    return records


def _per_example(flags: torch.Tensor, rows: torch.Tensor, n: int) -> list[bool]:
    return per_example(flags.cpu(), rows.cpu(), n)
