"""Finetuning (FT), the baseline of method-notes §5.

Each edit starts from the unedited weights, optimises them on the edit loss for up to
``max_steps`` steps and stops as soon as the edit input predicts its target (checked before each
step). The paper says Adam; the reference code uses RMSprop: both are offered, Adam by default.
"""
from __future__ import annotations

import torch

from lime_toolkit.config_schema import Choice, Int, Positive
from lime_toolkit.editor_api import EditContext, EditorSetup, FullEditor, Params
from lime_toolkit.errors import UserError

OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}


class FinetuneEditor(FullEditor):
    """Finetune the edited weights on the edit input.

    Options: ``lr`` (5e-6), ``max_steps`` (100), ``optimizer`` ("adam", the paper; "rmsprop",
    the reference code). A fresh optimiser is built for every edit, so edits are independent.

    After each edit, :attr:`last_steps` holds the number of optimiser steps it took and
    :attr:`last_solved` whether the edit input then predicted its target.
    """

    trainable = False
    supports_masks = False
    #: Checked when the run is built (lime_toolkit.config.check_options).
    option_specs = {"lr": Positive(), "max_steps": Int(0), "optimizer": Choice(*OPTIMIZERS)}

    def __init__(self, setup: EditorSetup):
        super().__init__(setup)
        self.lr = float(setup.option("lr", 5e-6))
        self.max_steps = int(setup.option("max_steps", 100))
        self.optimizer = str(setup.option("optimizer", "adam")).lower()
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"ft: optimizer must be one of {', '.join(OPTIMIZERS)} (got '{self.optimizer}')")
        if self.lr <= 0 or self.max_steps < 0:
            raise UserError(f"ft: lr must be positive and max_steps non-negative "
                            f"(got lr={self.lr}, max_steps={self.max_steps})")
        self.last_steps: int | None = None
        self.last_solved: bool | None = None

    def edit(self, params: Params, ctx: EditContext) -> Params:
        """Finetuned copies of ``params`` (detached; ``params`` themselves are not modified)."""
        weights = {n: t.detach().clone().requires_grad_() for n, t in params.items()}
        optimizer = OPTIMIZERS[self.optimizer](list(weights.values()), lr=self.lr)
        steps, solved = 0, False
        # evaluation calls editors under torch.no_grad(); finetuning needs gradients regardless
        with torch.enable_grad():
            while True:
                solved = ctx.solved(weights)
                if solved or steps >= self.max_steps:
                    break
                optimizer.zero_grad(set_to_none=True)
                ctx.loss(weights).backward()
                optimizer.step()
                steps += 1
        self.last_steps, self.last_solved = steps, solved
        return {n: w.detach() for n, w in weights.items()}
