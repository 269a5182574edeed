"""The contract a mask strategy implements (see docs/plugins.md).

A mask strategy holds, per editing language and edited weight, whatever it needs to re-weight the
gradient factors before a factor editor's transform. Only the *edit* language selects the mask:
update and retain languages are unknown at edit time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn


@dataclass
class MaskSetup:
    """``shapes``: edited parameter name -> (out_features, in_features); ``languages``: the
    languages that can be edit languages, in order; ``options``: the ``masks`` config section."""

    shapes: dict[str, tuple[int, int]]
    languages: list[str]
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, key: str, default):
        return self.options.get(key, default)


class MaskStrategy(nn.Module):
    """Base class. ``self.training`` selects stochastic (training) or deterministic (evaluation)
    behaviour."""

    #: The optimiser's learning rate for the mask parameters unless the config says otherwise.
    default_lr: float = 1e-3
    #: True for a strategy that changes nothing; only such a strategy may go with a full editor.
    is_identity: bool = False
    #: Optional ``{option: lime_toolkit.config_schema.Spec}`` of the options this strategy reads, checked
    #: when a run is built (see :attr:`lime_toolkit.editor_api.Editor.option_specs`).
    option_specs: dict | None = None

    def __init__(self, setup: MaskSetup):
        super().__init__()
        self.setup = setup

    def apply(self, name: str, lang: str, x: torch.Tensor, delta: torch.Tensor):
        """Return masked ``(x, delta)`` for weight ``name`` edited in language ``lang``.
        ``x`` is [tokens, in_features], ``delta`` [tokens, out_features]."""
        return x, delta

    def penalty(self, langs: Sequence[str]) -> torch.Tensor:
        """The regularisation term of the masks used for ``langs`` (a scalar tensor; 0 if none)."""
        return torch.zeros(())

    def before_optimizer_step(self) -> None:
        """Called before every optimiser step (e.g. to clamp parameters)."""

    def language_vectors(self, lang: str) -> dict[str, torch.Tensor]:
        """Per edited weight, the learned vector that characterises ``lang``'s mask (for the mask
        analysis figure); empty when the strategy has none."""
        return {}
