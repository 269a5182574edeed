"""What the edits of a batched evaluation share: the unedited model's pass over each checked input.

A retain input is checked by comparing its prediction under an edit with the unedited model's. The
unedited prediction, and the hidden states at the input of the first edited layer (the layers
before it compute the same with and without any edit), depend on the input alone, not on the edit:
:class:`UneditedCache` computes them once per distinct input and keeps them for every edit of the
evaluation that draws the same input (bounded: the least recently used inputs are dropped first).
Each edit's own pass then starts at the first edited layer from the recorded hidden states
(:func:`resumed_at_first_edited_layer`), for the architecture families whose encoders run their
layers plainly in sequence (``sequential_layers`` in :mod:`lime_toolkit.architectures`); for the
others the edited pass runs the whole model.
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from lime_toolkit.architectures import family_of
from lime_toolkit.data import Example
from lime_toolkit.encoding import Batch, encode_examples
from lime_toolkit.models import position_logits


@dataclass
class LayerStack:
    """The model's list of layers that holds every edited weight, and the first edited layer: the
    layers before it (and the embeddings) compute the same with and without an edit."""

    layers: nn.ModuleList
    first: int


def layer_stack(model: nn.Module, names: list[str]) -> LayerStack | None:
    """Where the edited weights ``names`` sit, or None when they are not all in one list of layers
    after its first layer, or the model's architecture family does not run its layers plainly in
    sequence (then nothing is shared between the unedited and edited passes)."""
    family = family_of(model) if hasattr(model, "config") else None
    if family is None or not family.sequential_layers:
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


@dataclass
class Unedited:
    """One input under the unedited model: its predicted ids (one per prediction position, in
    order) and the hidden states of its real tokens at the first edited layer's input (None when
    nothing is shared)."""

    predicted: torch.Tensor
    hidden: torch.Tensor | None


class UneditedCache:
    """The unedited model's results per distinct checked input (:class:`Unedited`), for the edits of
    one evaluation; at most ``max_inputs`` are kept (for mBERT's width and inputs of about a dozen
    tokens, a few KB of predictions and about 40 KB of hidden states each)."""

    def __init__(self, max_inputs: int = 2048):
        self.max_inputs = max_inputs
        self.entries: OrderedDict[Example, Unedited] = OrderedDict()
        self.as_tuple = False

    def results(self, model: nn.Module, tokenizer, task: str, stack: LayerStack | None, examples: list[Example],
                rows_per_pass: int, device) -> dict[Example, Unedited]:
        """The results for ``examples``: those not kept yet computed in passes of at most
        ``rows_per_pass`` inputs of similar length."""
        missing = list(dict.fromkeys(ex for ex in examples if ex not in self.entries))
        if missing:
            lengths = encode_examples(tokenizer, missing, task).inputs["attention_mask"].sum(dim=1).tolist()
            missing = [missing[i] for i in sorted(range(len(missing)), key=lambda i: lengths[i])]
            for start in range(0, len(missing), rows_per_pass):
                self._compute(model, tokenizer, task, stack, missing[start:start + rows_per_pass], device)
        out = {}
        for ex in examples:
            self.entries.move_to_end(ex)
            out[ex] = self.entries[ex]
        while len(self.entries) > self.max_inputs:
            self.entries.popitem(last=False)
        return out

    def _compute(self, model, tokenizer, task, stack, group: list[Example], device) -> None:
        batch = encode_examples(tokenizer, group, task).to(device)
        prefix = SharedPrefix(stack)
        with prefix.recording():
            predicted = position_logits(model, batch).argmax(-1)
        hidden = prefix.hidden if prefix.hidden is not None and prefix.hidden.shape[0] == len(group) else None
        self.as_tuple = prefix.as_tuple if prefix.as_tuple is not None else self.as_tuple
        real = batch.inputs["attention_mask"].bool()
        for i, ex in enumerate(group):
            self.entries[ex] = Unedited(predicted[batch.rows == i].clone(),
                                        None if hidden is None else hidden[i][real[i]].clone())


class SharedPrefix:
    """The hidden states one forward pass had at the first edited layer's input
    (:meth:`recording`), to start a later pass over the same batch there (:meth:`resumed`): the
    unedited and the edited pass over the same inputs share every layer before the first edited one.
    With ``stack`` None (see :func:`layer_stack`) nothing is recorded and passes run whole."""

    def __init__(self, stack: LayerStack | None):
        self.stack = stack
        self.hidden: torch.Tensor | None = None
        self.as_tuple: bool | None = None  # whether the model's layers return tuples

    @contextmanager
    def recording(self):
        """Record the block's (last) forward pass."""
        if self.stack is None:
            yield self
            return

        def grab(mod, args, kwargs):
            hidden = args[0] if args else kwargs.get("hidden_states")
            self.hidden = hidden if isinstance(hidden, torch.Tensor) else None

        def kind(mod, args, output):
            self.as_tuple = isinstance(output, tuple)
        handles = [self.stack.layers[self.stack.first].register_forward_pre_hook(grab, with_kwargs=True),
                   self.stack.layers[self.stack.first - 1].register_forward_hook(kind)]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    @contextmanager
    def resumed(self):
        """Within the block, a forward pass over the recorded batch starts at the first edited layer
        (whole, when nothing was recorded)."""
        if self.stack is None or self.hidden is None or self.as_tuple is None:
            yield
            return
        with resumed_at_first_edited_layer(self.stack, self.hidden, self.as_tuple):
            yield


def resumed_hidden(batch: Batch, kept: list[Unedited]) -> torch.Tensor | None:
    """The hidden states at the first edited layer for every row of ``batch`` (row i: ``kept[i]``'s,
    at its real tokens; zeros at padding, which no real token attends to), or None when one of them
    was not recorded."""
    if any(k.hidden is None for k in kept):
        return None
    real = batch.inputs["attention_mask"].bool()
    hidden = kept[0].hidden.new_zeros(*real.shape, kept[0].hidden.shape[-1])
    for i, k in enumerate(kept):
        hidden[i][real[i]] = k.hidden
    return hidden
