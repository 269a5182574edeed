"""The contract an editor plugin implements, at two levels (see docs/plugins.md).

* :class:`FactorEditor`: implements only its transform of the gradient factors (x, δ) of each edited
  weight, and owns its parameters. The core captures the factors, applies the selected mask
  strategy, calls the editor and forms W' = W − α·ΔW. Such an editor gets cross-lingual training
  and every mask strategy without a line of code of its own for them.
* :class:`FullEditor`: implements the whole edit stage (finetuning, locate-then-edit methods). It
  still gets cross-lingual training and evaluation; mask strategies do not apply to it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from lime_toolkit.encoding import Batch

Params = dict[str, torch.Tensor]


@dataclass
class EditorSetup:
    """What an editor is constructed with.

    ``shapes`` maps each edited parameter name (as in ``model.named_parameters()``) to its
    (out_features, in_features); ``options`` is the editor's section of the run configuration;
    ``languages`` are the dataset's languages in order. ``model`` is the frozen base model (read
    it, never modify it).
    """

    model: nn.Module
    shapes: dict[str, tuple[int, int]]
    languages: list[str]
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, key: str, default):
        return self.options.get(key, default)


@dataclass
class EditContext:
    """One edit as the editor sees it.

    ``lang`` is the edit language, ``batch`` the encoded edit input with its desired labels.
    ``loss(params)`` is the edit loss of the model under ``params`` (edited parameter name ->
    tensor) and ``solved(params)`` whether every target position is predicted correctly; full
    editors use them, factor editors usually need neither.
    """

    lang: str
    batch: Batch
    loss: Callable[[Params], torch.Tensor]
    solved: Callable[[Params], bool]


class Editor(nn.Module):
    """Common base: an editor is an ``nn.Module`` whose parameters are what meta-training learns."""

    #: Set by subclasses that have nothing to train (finetuning); ``train`` then only evaluates.
    trainable: bool = True
    #: The optimiser's learning rate for this editor's parameters unless the config says otherwise.
    default_lr: float = 1e-4
    #: Whether mask strategies can be combined with this editor.
    supports_masks: bool = False
    #: Optional ``{option: lime_toolkit.config_schema.Spec}``: the options this editor reads, checked when a
    #: run is built (a bad value or, in the editor's own ``editor_options`` sub-mapping, an unknown
    #: key is one clear error). None: the options are not checked.
    option_specs: dict | None = None

    def __init__(self, setup: EditorSetup):
        super().__init__()
        self.setup = setup

    def base_weight(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        """The pre-edit value of an edited weight. Editors that meta-train the base weights
        (Editable Training) return their own trainable copy; the default is the model's."""
        return weight

    def param_groups(self) -> list[dict]:
        """Optimiser parameter groups; override to give some parameters their own learning rate."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "name": "editor"}] if params else []


class FactorEditor(Editor):
    """A gradient-factor editor. Implement :meth:`transform` (and usually :meth:`step_size`)."""

    supports_masks = True
    #: True when :meth:`transform` maps each token's (x, δ) on its own and does not read ``ctx``: the
    #: core may then transform the tokens of several edits in one call (batched evaluation).
    tokenwise: bool = False
    #: Capture the factors with a differentiable graph (needed for full second-order gradients).
    second_order: bool = False

    def transform(self, name: str, x: torch.Tensor, delta: torch.Tensor, ctx: EditContext):
        """Map the (masked) factors of weight ``name`` to new ones.

        ``x`` is [tokens, in_features], ``delta`` [tokens, out_features] (tokens where either was all
        zero are already dropped). Returns ``(x̃, δ̃)`` of the same shapes.
        """
        raise NotImplementedError

    def step_size(self, name: str) -> torch.Tensor | float:
        """α for weight ``name`` in W' = W − α·ΔW (default 1)."""
        return 1.0

    def delta_weight(self, name: str, x: torch.Tensor, delta: torch.Tensor, ctx: EditContext) -> torch.Tensor:
        """ΔW = Σ_t δ̃_t x̃_tᵀ of shape [out, in]. Override only for editors whose update is not a sum
        of outer products of transformed factors (KnowledgeEditor)."""
        x_t, d_t = self.transform(name, x, delta, ctx)
        return d_t.transpose(0, 1) @ x_t


class FullEditor(Editor):
    """An editor that implements the whole edit stage."""

    def edit(self, params: Params, ctx: EditContext) -> Params:
        """Return edited values for ``params`` (edited parameter name -> pre-edit tensor), built
        without modifying them in place. ``ctx.loss`` and ``ctx.solved`` evaluate candidates."""
        raise NotImplementedError
