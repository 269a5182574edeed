"""The edit stage: (edit input, desired target, language) -> edited parameters.

The base model is never modified: edited parameters are a dict of tensors applied with
``torch.func.functional_call``. For factor editors the core captures the gradient factors, applies
the mask strategy of the edit language, and forms W' = W − α·ΔW.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

from lime_toolkit.editor_api import EditContext, Editor, FactorEditor, FullEditor
from lime_toolkit.encoding import Batch
from lime_toolkit.errors import UserError
from lime_toolkit.factors import capture_factors, edit_loss
from lime_toolkit.mask_api import MaskStrategy
from lime_toolkit.models import Params, position_logits


@contextmanager
def scaled_edits(system: "EditingSystem", scale: float):
    """Within the block, every edit of ``system`` is multiplied by ``scale`` (``eval.edit_scale``:
    a probe of whether edits are too weak or too strong, never used in training)."""
    saved = system.edit_scale
    system.edit_scale = float(scale)
    try:
        yield system
    finally:
        system.edit_scale = saved


class EditingSystem(nn.Module):
    """An editor and a mask strategy bound to a frozen base model and its edited parameters.

    Its state dict holds exactly what meta-training learns (editor and masks), not the base model.
    """

    def __init__(self, model: nn.Module, param_names: list[str], editor: Editor, masks: MaskStrategy | None):
        super().__init__()
        self._model = (model,)  # a tuple keeps the frozen base model out of this module's state
        self.param_names = list(param_names)
        self.editor = editor
        self.masks = masks
        #: A multiplier on every edit's update (W' = W − scale·α·ΔW; for full editors the change
        #: W' − W); 1.0 in training; evaluation sets it from ``eval.edit_scale`` (:func:`scaled_edits`).
        self.edit_scale = 1.0
        #: γ of ``edit.loss_power``: a factor editor's update is multiplied by (L / L_uniform)^γ, L
        #: the edit input's loss under the unedited weights and L_uniform the loss of a uniform
        #: prediction (ln of the number of outputs), so an edit whose target the model finds less
        #: likely moves the weights further (0: off, every edit as the editor makes it).
        self.loss_power = 0.0
        if masks is not None and not editor.supports_masks:
            raise UserError(f"editor '{type(editor).__name__}' edits the model itself and cannot use masks; "
                            f"use --masks none")

    @property
    def model(self) -> nn.Module:
        return self._model[0]

    def base_params(self) -> Params:
        """The pre-edit values of the edited parameters (the editor's own copy where it trains them)."""
        model = self.model  # get_parameter: no dict of every weight on the edit's hot path
        return {n: self.editor.base_weight(n, model.get_parameter(n)) for n in self.param_names}

    def context(self, batch: Batch, lang: str) -> EditContext:
        model = self.model

        def solved(params: Params) -> bool:
            with torch.no_grad():
                pred = position_logits(model, batch, params).argmax(-1)
            target = batch.labels != -100
            return bool((pred[target] == batch.labels[target]).all())

        return EditContext(lang, batch, lambda params: edit_loss(model, batch, params), solved)

    def edit(self, batch: Batch, lang: str) -> Params:
        """Edited parameters for the edit input ``batch`` in language ``lang``."""
        base = self.base_params()
        if isinstance(self.editor, FullEditor):
            edited = self.editor.edit(base, self.context(batch, lang))
            if self.edit_scale == 1.0:
                return edited
            return {n: base[n] + self.edit_scale * (p - base[n]) if n in base else p for n, p in edited.items()}
        return {name: base[name] - update for name, update in self.updates(batch, lang, base).items()}

    def updates(self, batch: Batch, lang: str, params: Params) -> Params:
        """A factor editor's α·ΔW per edited weight for the edit input ``batch`` in language ``lang``,
        its factors captured under ``params`` and masked with ``lang``'s masks."""
        ctx, scale, factors = self._captured(batch, lang, params)
        out = {}
        for name, (x, delta) in factors.items():
            x, delta = self._masked(name, lang, x, delta)
            out[name] = scale * self.editor.step_size(name) * self.editor.delta_weight(name, x, delta, ctx)
        return out

    def factored_updates(self, batch: Batch, lang: str, params: Params) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """:meth:`updates` before the outer product: ``{name: (x̃, s·α·δ̃)}`` with α·ΔW = δ̃ᵀ x̃ (for
        editors whose ΔW is a sum of outer products of transformed factors; see
        :func:`lime_toolkit.factored_updates.edits_are_low_rank`)."""
        ctx, scale, factors = self._captured(batch, lang, params)
        out = {}
        for name, (x, delta) in factors.items():
            x, delta = self._masked(name, lang, x, delta)
            x_t, d_t = self.editor.transform(name, x, delta, ctx)
            out[name] = (x_t, scale * self.editor.step_size(name) * d_t)
        return out

    def _captured(self, batch: Batch, lang: str, params: Params):
        """(context, s, the gradient factors of the edit input under ``params``)."""
        if not isinstance(self.editor, FactorEditor):
            raise UserError(f"editor {type(self.editor).__name__} is neither a FactorEditor nor a FullEditor")
        ctx = self.context(batch, lang)
        # evaluation runs under no_grad: no second-order graph is needed there
        second_order = self.editor.second_order and torch.is_grad_enabled()
        loss, factors = capture_factors(self.model, batch, params, create_graph=second_order)
        scale = self.edit_scale * (self.loss_factor(float(loss.detach())) if self.loss_power else 1.0)
        return ctx, scale, factors

    def _masked(self, name: str, lang: str, x: torch.Tensor, delta: torch.Tensor):
        return self.masks.apply(name, lang, x, delta) if self.masks is not None else (x, delta)

    def loss_factor(self, loss: float) -> float:
        """(``loss`` / L_uniform)^γ with γ = :attr:`loss_power` (1.0 when γ is 0)."""
        if not self.loss_power:
            return 1.0
        return (max(loss, 0.0) / self.uniform_loss()) ** self.loss_power

    def uniform_loss(self) -> float:
        """ln of the number of outputs (the output vocabulary, or the classes): the loss of a
        uniform prediction, the unit of :meth:`loss_factor`."""
        head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        n = getattr(head, "out_features", None) or getattr(getattr(self.model, "config", None), "num_labels", None)
        return math.log(max(int(n or 2), 2))
