"""The edits of one optimiser step meta-trained in one pass through the model.

:func:`lime_toolkit.training.meta_loss` makes and scores one edit at a time. For a factor editor
whose update is low-rank and first-order (MEND), every edit of an optimiser step can go through the
model together, as batched evaluation does (:mod:`lime_toolkit.batched_evaluation`):

1. one forward/backward pass over the step's edit inputs captures each input's own gradient factors;
2. per edit, its language's masks (with the gate noise that edit's micro-step would draw) and the
   editor's transform give its factored update (x̃, α·δ̃);
3. the update inputs of every edit go through the model in one pass, each edited layer's output
   corrected by its row's own edit (:func:`lime_toolkit.factored_updates.applied`); the retain
   inputs in one unedited and one edited pass, the edited one starting at the first edited layer.

Each edit's terms are reduced over its own positions exactly as ``meta_loss`` reduces them, so the
mean of the terms and every gradient equal the one-edit-at-a-time loop's up to floating-point
rounding (tests/test_batched_training.py). Second-order editors (ET) and editors whose update is
not a sum of outer products (KE) train one edit at a time.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable

import torch
import torch.nn.functional as F

from lime_toolkit.batched_evaluation import EditJob, capture_example_factors, transformed_factors
from lime_toolkit.editing import EditingSystem
from lime_toolkit.encoding import encode_examples
from lime_toolkit.factored_updates import FactoredUpdates, applied, edits_are_low_rank
from lime_toolkit.models import position_logits
from lime_toolkit.run import Run
from lime_toolkit.sampler import Sample
from lime_toolkit.shared_prefix import SharedPrefix, layer_stack


def trains_batched(system: EditingSystem) -> bool:
    """Whether the edits of an optimiser step can be meta-trained in one pass: a low-rank factor
    editor that needs no second-order graph through its factors."""
    return edits_are_low_rank(system) and not system.editor.second_order


def _per_edit_mean(values: torch.Tensor, edit_of: torch.Tensor, n_edits: int) -> torch.Tensor:
    """Per edit, the mean of ``values`` over the positions ``edit_of`` assigns to it."""
    sums = values.new_zeros(n_edits).index_add(0, edit_of, values)
    counts = torch.bincount(edit_of, minlength=n_edits).to(values.dtype)
    return sums / counts


def batched_meta_loss(run: Run, samples: list[Sample], weights: dict,
                      noise: Callable[[int], AbstractContextManager]) -> dict[str, torch.Tensor]:
    """The mean over ``samples`` of :func:`~lime_toolkit.training.meta_loss`'s terms, every edit in
    one pass; ``noise(e)`` is the random state the masks of edit ``e`` draw their gates under."""
    model, system, device = run.model, run.system, run.device
    encode = lambda examples: encode_examples(run.tokenizer, examples, run.task).to(device)  # noqa: E731
    n = len(samples)
    base = system.base_params()
    losses: list[float] | None = [] if system.loss_power else None  # each edit's own loss: only loss_power reads it
    factors = capture_example_factors(model, encode([s.edit for s in samples]), base, losses)
    jobs = [EditJob(s.edit.lang, s.case, s.updates, s.retain) for s in samples]
    updates = FactoredUpdates(transformed_factors(system, run.tokenizer, run.task, jobs, factors, device, losses,
                                                  noise=noise))

    def owners(lists):
        return torch.tensor([e for e, xs in enumerate(lists) for _ in xs], device=device)

    batch, owner = encode([ex for s in samples for ex in s.updates]), owners([s.updates for s in samples])
    with applied(model, updates, owner):
        ce = F.cross_entropy(position_logits(model, batch, base), batch.labels, ignore_index=-100, reduction="none")
    target = batch.labels != -100
    rel = _per_edit_mean(ce[target], owner[batch.rows][target], n)

    retain, owner = encode([ex for s in samples for ex in s.retain]), owners([s.retain for s in samples])
    prefix = SharedPrefix(layer_stack(model, system.param_names))
    with torch.no_grad(), prefix.recording():
        before = F.log_softmax(position_logits(model, retain), dim=-1)
    with applied(model, updates, owner), prefix.resumed():
        after = F.log_softmax(position_logits(model, retain, base), dim=-1)
    kl = (before.exp() * (before - after)).sum(dim=-1)
    loc = _per_edit_mean(kl, owner[retain.rows], n)

    if system.masks is not None:
        penalty = {lang: system.masks.penalty([lang]).to(rel.device) for lang in dict.fromkeys(j.lang for j in jobs)}
        mask = torch.stack([penalty[j.lang] for j in jobs])
    else:
        mask = rel.new_zeros(n)
    total = weights["rel_weight"] * rel + weights["loc_weight"] * loc + weights["mask_weight"] * mask
    return {"loss": total.mean(), "rel": rel.mean(), "loc": loc.mean(), "mask": mask.mean()}
