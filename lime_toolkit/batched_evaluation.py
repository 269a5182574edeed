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

from contextlib import contextmanager
from dataclasses import dataclass

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

#: Edits per batch when evaluating an editor whose edits are low-rank and no batch size is given.
DEFAULT_BATCH_SIZE = 32

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
                        losses: list[float] | None = None) -> list[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Per edit: ``{name: (x̃, s·α·δ̃)}`` after its language's masks and the editor's transform, s
    the system's ``edit_scale`` times its :meth:`~lime_toolkit.editing.EditingSystem.loss_factor`
    of the edit's loss (``losses``, needed when ``loss_power`` is set). A
    :attr:`~lime_toolkit.editor_api.FactorEditor.tokenwise` editor transforms the tokens of all the
    edits in one call per weight; any other gets one call per edit with that edit's context."""
    editor, masks = system.editor, system.masks
    masked = []
    for job, mine in zip(jobs, factors):
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


@dataclass
class LayerStack:
    """The model's list of layers that holds every edited weight, and the first edited layer: the
    layers before it (and the embeddings) compute the same with and without an edit."""

    layers: nn.ModuleList
    first: int


#: Model types whose encoder runs its list of layers one after the other, each layer taking the
#: previous one's hidden states and nothing computed in between (checked in
#: tests/test_batched_evaluation.py). Others (DeBERTa-v2 convolves after its first layer and returns
#: tuples) compute the layers before the first edited one twice.
SEQUENTIAL_LAYERS = ("bert", "roberta", "xlm-roberta", "distilbert")


def layer_stack(model: nn.Module, names: list[str]) -> LayerStack | None:
    """Where the edited weights ``names`` sit, or None when they are not all in one list of layers
    after its first layer, or the model's type is not one of :data:`SEQUENTIAL_LAYERS` (then
    nothing is shared between the unedited and edited passes)."""
    if getattr(getattr(model, "config", None), "model_type", None) not in SEQUENTIAL_LAYERS:
        return None
    found: tuple[str, int] | None = None
    for name in names:
        parts, hit = name.split("."), None
        for i in range(len(parts) - 2, 0, -1):  # the innermost list of modules indexed in the name
            if parts[i].isdigit():
                try:
                    module = model.get_submodule(".".join(parts[:i]))
                except AttributeError:
                    continue
                if isinstance(module, nn.ModuleList):
                    hit = (".".join(parts[:i]), int(parts[i]))
                    break
        if hit is None or (found is not None and found[0] != hit[0]):
            return None
        found = hit if found is None else (found[0], min(found[1], hit[1]))
    if found is None or found[1] == 0:
        return None
    return LayerStack(model.get_submodule(found[0]), found[1])


class _Resume(nn.Module):
    """Stands in for a layer before the first edited one: the first stand-in returns the hidden
    states recorded at the first edited layer's input, the others pass them on."""

    def __init__(self, hidden: torch.Tensor | None, as_tuple: bool):
        super().__init__()
        self.hidden, self.as_tuple = hidden, as_tuple

    def forward(self, *args, **kwargs):
        hidden = self.hidden if self.hidden is not None else (args[0] if args else kwargs["hidden_states"])
        return (hidden,) if self.as_tuple else hidden


@contextmanager
def resumed_at_first_edited_layer(stack: LayerStack, hidden: torch.Tensor, as_tuple: bool):
    """Within the block, a forward pass skips the layers before ``stack.first`` and starts from
    ``hidden`` (recorded on the same inputs)."""
    saved = [stack.layers[i] for i in range(stack.first)]
    try:
        for i in range(stack.first):
            stack.layers[i] = _Resume(hidden if i == 0 else None, as_tuple)
        yield
    finally:
        for i, layer in enumerate(saved):
            stack.layers[i] = layer


def unedited_and_edited(system: EditingSystem, batch: Batch, base: Params, updates: FactoredUpdates,
                        owner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unedited model's and the edited models' predicted ids at every prediction position of
    ``batch`` (row r edited by edit ``owner[r]``). Where the edited weights all lie after the first
    layer, the edited pass starts from the hidden states the unedited pass had at the first edited
    layer instead of computing them again."""
    model = system.model
    stack = layer_stack(model, list(updates.x))
    recorded: dict = {}
    handles = []
    if stack is not None:
        def grab(mod, args, kwargs):
            recorded["hidden"] = args[0] if args else kwargs.get("hidden_states")

        def kind(mod, args, output):
            recorded["as_tuple"] = isinstance(output, tuple)
        handles = [stack.layers[stack.first].register_forward_pre_hook(grab, with_kwargs=True),
                   stack.layers[stack.first - 1].register_forward_hook(kind)]
    try:
        unedited = position_logits(model, batch).argmax(-1)
    finally:
        for h in handles:
            h.remove()
    hidden = recorded.get("hidden")
    if stack is None or not isinstance(hidden, torch.Tensor) or hidden.shape[0] != len(batch.examples):
        with applied(model, updates, owner):
            return unedited, position_logits(model, batch, base).argmax(-1)
    with resumed_at_first_edited_layer(stack, hidden, recorded.get("as_tuple", False)), \
            applied(model, updates, owner):
        return unedited, position_logits(model, batch, base).argmax(-1)


#: At most this many update and retain inputs in one forward pass (inputs of similar length go
#: together, so that little is padding).
ROWS_PER_PASS = 48


@torch.no_grad()
def check_edits(system: EditingSystem, tokenizer, task: str, jobs: list[EditJob]) -> list[EditRecord]:
    """Make and check the edits of ``jobs`` together (see the module docstring); one
    :class:`EditRecord` per job, in order."""
    model = system.model
    device = next(model.parameters()).device
    base = system.base_params()
    edit_batch = encode_examples(tokenizer, [j.case.inputs[j.lang] for j in jobs], task).to(device)
    losses: list[float] = []
    factors = capture_example_factors(model, edit_batch, base, losses)
    updates = FactoredUpdates(transformed_factors(system, tokenizer, task, jobs, factors, device, losses))
    # every update and retain input, with its edit and whether it is a retain input
    checked = [(ex, e, k >= len(j.updates)) for e, j in enumerate(jobs) for k, ex in enumerate(j.updates + j.retains)]
    lengths = encode_examples(tokenizer, [ex for ex, _, _ in checked], task).inputs["attention_mask"].sum(dim=1)
    outcome: dict[int, bool] = {}
    for retain in (False, True):  # update inputs need only the edited pass; retain inputs both
        order = sorted((i for i in range(len(checked)) if checked[i][2] == retain), key=lambda i: int(lengths[i]))
        for start in range(0, len(order), ROWS_PER_PASS):
            group = order[start:start + ROWS_PER_PASS]
            batch = encode_examples(tokenizer, [checked[i][0] for i in group], task).to(device)
            owner = torch.tensor([checked[i][1] for i in group], device=device)
            if retain:
                unedited, edited = unedited_and_edited(system, batch, base, updates, owner)
                flags = _per_example(edited == unedited, batch.rows, len(group))
            else:
                with applied(model, updates, owner):
                    edited = position_logits(model, batch, base).argmax(-1)
                flags = _per_example(edited == batch.labels, batch.rows, len(group))
            outcome.update(zip(group, flags))
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
