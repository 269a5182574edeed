"""Which parameters are edited, declared once per architecture family.

A family names its transformer layers' MLP weights with ``{i}`` for the layer index. By default the
MLP weights of the last 3 layers are edited (the paper's choice for BERT-base); a run's config can
override this with explicit name patterns (``fnmatch`` style, matched against
``model.named_parameters()``).

Declared (and tested on small random models of each, for the masked-LM and the
sequence-classification tasks, in tests/test_architectures.py): BERT/mBERT, RoBERTa/XLM-R,
DistilBERT/DistilmBERT and DeBERTa-v2/v3 (mDeBERTa).
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lime_toolkit.errors import UserError


@dataclass(frozen=True)
class ArchitectureFamily:
    model_types: tuple[str, ...]
    mlp_weights: tuple[str, ...]  # relative to the base model, with {i} for the layer index
    #: Attributes of the masked-LM model that, applied in order, map the base model's hidden states
    #: to vocabulary logits (its output head); empty: none declared, the whole model runs instead.
    mlm_head: tuple[str, ...] = ()
    #: Whether the encoder runs its list of layers one after the other, each taking the previous
    #: one's hidden states and nothing computed in between, so that a pass can resume at any layer
    #: from recorded hidden states (batched evaluation, :mod:`lime_toolkit.shared_prefix`).
    sequential_layers: bool = True


FAMILIES = {
    "bert": ArchitectureFamily(("bert",), ("encoder.layer.{i}.intermediate.dense.weight",
                                           "encoder.layer.{i}.output.dense.weight"), ("cls",)),
    "roberta": ArchitectureFamily(("roberta", "xlm-roberta", "camembert"),
                                  ("encoder.layer.{i}.intermediate.dense.weight",
                                   "encoder.layer.{i}.output.dense.weight"), ("lm_head",)),
    "distilbert": ArchitectureFamily(("distilbert",), ("transformer.layer.{i}.ffn.lin1.weight",
                                                       "transformer.layer.{i}.ffn.lin2.weight"),
                                     ("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector")),
    # the legacy head (config.legacy: the default, and mDeBERTa's); the other one also takes the word
    # embeddings, so models built with legacy=False run whole (the same logits, more work)
    # DeBERTa-v2 convolves after its first layer and its layers return tuples
    "deberta-v2": ArchitectureFamily(("deberta-v2",), ("encoder.layer.{i}.intermediate.dense.weight",
                                                       "encoder.layer.{i}.output.dense.weight"), ("cls",),
                                     sequential_layers=False),
}


def family_of(model: nn.Module) -> ArchitectureFamily | None:
    model_type = getattr(model.config, "model_type", None)
    return next((f for f in FAMILIES.values() if model_type in f.model_types), None)


def mlm_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The masked-LM output head as a function of the base model's hidden states, or None when the
    model's family declares none or the model lacks one of its modules (then the whole model runs)."""
    family = family_of(model)
    modules = [getattr(model, name, None) for name in (family.mlm_head if family else ())]
    if not modules or any(not isinstance(m, nn.Module) for m in modules):
        return None

    def head(hidden: torch.Tensor) -> torch.Tensor:
        for module in modules:
            hidden = module(hidden)
        return hidden

    return head


def num_layers(model: nn.Module) -> int:
    config = model.config
    for key in ("num_hidden_layers", "n_layers", "num_layers"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    raise UserError(f"cannot tell how many layers model type '{config.model_type}' has; set edit.params in the config")


def editable_parameters(model: nn.Module, patterns: list[str] | None = None, last_n_layers: int = 3,
                        layers: list[int] | None = None) -> list[str]:
    """Names (as in ``model.named_parameters()``) of the weights to edit, in model order.

    ``patterns`` (fnmatch) win; else the MLP weights of the layers numbered ``layers`` (negative
    numbers count from the end, -1 is the last layer); else those of the last ``last_n_layers``."""
    names = [n for n, _ in model.named_parameters()]
    if patterns:
        chosen = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        if not chosen:
            raise UserError(f"no parameter matches edit patterns {patterns}; example names: {names[:4]}")
    else:
        family = family_of(model)
        if family is None:
            raise UserError(
                f"model type '{model.config.model_type}' has no declared editable layers; set edit.params "
                f"(name patterns) in the config, or add a family to lime_toolkit/architectures.py"
            )
        n = num_layers(model)
        chosen_layers = _layer_indices(layers, n) if layers else range(max(0, n - last_n_layers), n)
        prefix = model.base_model_prefix + "." if hasattr(model, model.base_model_prefix) else ""
        wanted = {prefix + t.format(i=i) for i in chosen_layers for t in family.mlp_weights}
        chosen = [name for name in names if name in wanted]
        if len(chosen) != len(wanted):
            raise UserError(f"expected parameters {sorted(wanted - set(chosen))} not found in the model")
    for name in chosen:
        if dict(model.named_parameters())[name].dim() != 2:
            raise UserError(f"edited parameter '{name}' is not a weight matrix; edit patterns must select Linear weights")
    return chosen


def _layer_indices(layers: list[int], n: int) -> list[int]:
    out = []
    for raw in layers:
        try:
            i = int(raw)
        except (TypeError, ValueError):
            raise UserError(f"edit.layers must be layer numbers (got {raw!r})") from None
        if not -n <= i < n:
            raise UserError(f"edit.layers: the model has {n} layers (0 to {n - 1}, or -1 to -{n}); got {i}")
        out.append(i % n)
    return sorted(set(out))
