"""The edit stage: (edit input, desired target, language) -> edited parameters.

The base model is never modified: edited parameters are a dict of tensors applied with
``torch.func.functional_call``. For factor editors the core captures the gradient factors, applies
the mask strategy of the edit language, and forms W' = W − α·ΔW.
"""
from __future__ import annotations

import torch
from torch import nn

from lime_toolkit.editor_api import EditContext, Editor, FactorEditor, FullEditor
from lime_toolkit.encoding import Batch
from lime_toolkit.errors import UserError
from lime_toolkit.factors import capture_factors, edit_loss
from lime_toolkit.mask_api import MaskStrategy
from lime_toolkit.models import Params, position_logits


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
        if masks is not None and not editor.supports_masks:
            raise UserError(f"editor '{type(editor).__name__}' edits the model itself and cannot use masks; "
                            f"use --masks none")

    @property
    def model(self) -> nn.Module:
        return self._model[0]

    def base_params(self) -> Params:
        """The pre-edit values of the edited parameters (the editor's own copy where it trains them)."""
        weights = dict(self.model.named_parameters())
        return {n: self.editor.base_weight(n, weights[n]) for n in self.param_names}

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
            return self.editor.edit(base, self.context(batch, lang))
        return {name: base[name] - update for name, update in self.updates(batch, lang, base).items()}

    def updates(self, batch: Batch, lang: str, params: Params) -> Params:
        """A factor editor's α·ΔW per edited weight for the edit input ``batch`` in language ``lang``,
        its factors captured under ``params`` and masked with ``lang``'s masks."""
        if not isinstance(self.editor, FactorEditor):
            raise UserError(f"editor {type(self.editor).__name__} is neither a FactorEditor nor a FullEditor")
        ctx = self.context(batch, lang)
        # evaluation runs under no_grad: no second-order graph is needed there
        second_order = self.editor.second_order and torch.is_grad_enabled()
        _, factors = capture_factors(self.model, batch, params, create_graph=second_order)
        out = {}
        for name, (x, delta) in factors.items():
            if self.masks is not None:
                x, delta = self.masks.apply(name, lang, x, delta)
            out[name] = self.editor.step_size(name) * self.editor.delta_weight(name, x, delta, ctx)
        return out
