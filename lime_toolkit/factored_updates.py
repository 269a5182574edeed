"""Edits applied in factored form, without a dense edited weight.

A factor editor's update of a weight W is ΔW = Σ_t δ̃_t x̃_tᵀ over the edit input's tokens t, so the
edited layer computes, for any input x,

    W' x = W x − α ΔW x = W x − α Σ_t δ̃_t (x̃_t · x).

:class:`FactoredUpdates` holds one or several edits in that form and :func:`applied` makes a model's
edited layers compute it (forward hooks), row by row of a batch (differentiably: the hooks are
ordinary torch operations). Batched evaluation (:mod:`lime_toolkit.batched_evaluation`) checks many
edits at once this way. Meta-training (:func:`edited`) uses it for large edited weights, where a dense
W' = W − α ΔW per edit would be the largest tensors of its graph (docs/performance.md).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import FactorEditor
from lime_toolkit.encoding import Batch
from lime_toolkit.models import Params


def edits_are_low_rank(system: EditingSystem) -> bool:
    """Whether ``system``'s edits are sums of outer products of transformed factors (a factor
    editor that keeps :meth:`FactorEditor.delta_weight`), i.e. can be applied in factored form."""
    editor = system.editor
    return isinstance(editor, FactorEditor) and type(editor).delta_weight is FactorEditor.delta_weight


class FactoredUpdates:
    """Per edited weight, the edits of a batch in factored form: x̃ stacked as [edits, tokens, in]
    and α·δ̃ as [edits, tokens, out], zero-padded to the longest edit (a zero token adds nothing)."""

    def __init__(self, per_edit: list[dict[str, tuple[torch.Tensor, torch.Tensor]]]):
        self.x: dict[str, torch.Tensor] = {}
        self.scaled_delta: dict[str, torch.Tensor] = {}
        for name in per_edit[0]:
            xs = [e[name][0] for e in per_edit]
            ds = [e[name][1] for e in per_edit]
            tokens = max(1, max(len(x) for x in xs))
            self.x[name] = torch.stack([F.pad(x, (0, 0, 0, tokens - len(x))) for x in xs])
            self.scaled_delta[name] = torch.stack([F.pad(d, (0, 0, 0, tokens - len(d))) for d in ds])

    def correction(self, name: str, inputs: torch.Tensor, owner: torch.Tensor | None) -> torch.Tensor:
        """α ΔW_e x for every row of ``inputs`` ([rows, ..., in]), row r edited by edit ``owner[r]``
        (``owner`` None: every row by the first edit)."""
        rows = inputs.reshape(inputs.shape[0], -1, inputs.shape[-1])
        if owner is None:
            x_t = self.x[name][:1].expand(rows.shape[0], -1, -1)
            d_t = self.scaled_delta[name][:1].expand(rows.shape[0], -1, -1)
        else:
            x_t = self.x[name][owner]  # [rows, tokens, in]
            d_t = self.scaled_delta[name][owner]  # [rows, tokens, out]
        coefficients = torch.bmm(rows, x_t.transpose(1, 2))  # x̃_t · x per position
        return torch.bmm(coefficients, d_t).reshape(*inputs.shape[:-1], d_t.shape[-1])


@contextmanager
def applied(model: nn.Module, updates: FactoredUpdates, owner: torch.Tensor | None):
    """Within the block, every edited layer of ``model`` subtracts row r's edit ``owner[r]`` (``owner``
    None: every row by the first edit)."""
    handles = []
    for name in updates.x:
        def hook(mod, args, output, _name=name):
            return output - updates.correction(_name, args[0], owner)
        handles.append(model.get_submodule(name.rsplit(".", 1)[0]).register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


#: Meta-training applies an edit in factored form when an edited weight has at least this many
#: entries (mBERT's MLP weights: 2.4 M); smaller weights keep the dense W' = W − α ΔW, which costs
#: less than the hooks there.
FACTORED_MIN_ENTRIES = 1 << 20


def trains_factored(system: EditingSystem) -> bool:
    """Whether meta-training applies ``system``'s edits in factored form (see :func:`edited`): a
    low-rank editor, and an edited weight of at least :data:`FACTORED_MIN_ENTRIES` entries."""
    if not edits_are_low_rank(system):
        return False
    return max(system.model.get_parameter(n).numel() for n in system.param_names) >= FACTORED_MIN_ENTRIES


@contextmanager
def edited(system: EditingSystem, batch: Batch, lang: str) -> Iterator[Params]:
    """θ_u, the edit of the edit input ``batch`` in ``lang``, for the block: the parameters to pass to
    :func:`~lime_toolkit.models.position_logits` (and ``edit_loss``) inside it. Dense: the edited
    weights W' = W − α ΔW. Factored (where :func:`trains_factored`): the base weights,
    while the edited layers subtract α ΔW x = Σ_t α δ̃_t (x̃_t · x) from their outputs; the same
    values and gradients without a dense ΔW. Every forward pass of ``system.model`` inside a
    factored block is edited, so compute unedited results outside it."""
    if not trains_factored(system):
        yield system.edit(batch, lang)
        return
    base = system.base_params()
    updates = FactoredUpdates([system.factored_updates(batch, lang, base)])
    with applied(system.model, updates, None):
        yield base
