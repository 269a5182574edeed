"""Editable Training (ET, Sinitsin et al. 2020), method-notes §5.

An edit is one differentiable SGD step, W' = W_b − α_W · ∇W, with a learned step size α_W per
edited weight. Meta-training updates α, the base model's edited weights W_b themselves and (with
``--masks``) the masks, with full second-order gradients: the core captures the gradient factors
with ``create_graph=True`` because :attr:`second_order` is set.

The base model stays frozen: this editor owns a trainable copy W_b of each edited weight,
initialised from the model and returned by :meth:`base_weight`, so the copies are part of the
editor's state dict and saved with every checkpoint. Locality is measured against the frozen
original model by the core.

With masks the core masks the factors before :meth:`delta_weight`; the transform is the identity,
so the edit is the gradient rebuilt from the masked factors, Σ_t mask(δ_t) mask(x_t)ᵀ.
"""
from __future__ import annotations

import torch
from torch import nn

from lime_toolkit.config_schema import BOOL, Number, Positive
from lime_toolkit.editor_api import EditContext, EditorSetup, FactorEditor
from lime_toolkit.errors import UserError
from lime_toolkit.toolbox.names import safe_key


class EditableTrainingEditor(FactorEditor):
    """Editable Training.

    Parameters: ``base_weights[key]`` (trainable copy of each edited weight) and
    ``step_sizes[key]`` (α, a raw scalar, init ``step_size_init``), ``key`` being the weight's
    name with '.' replaced by '__'.

    Options: ``step_size_init`` (1e-2, the notes' α init), ``step_size_lr`` (1e-3: α's own
    optimiser group; the base-weight copies train at the editor lr, the config's ``train.lr`` or
    :attr:`default_lr` = 5e-5 as in the reference code), ``first_order`` (False; True drops the
    second-order terms, for ablations and speed).
    """

    default_lr = 5e-5
    #: Checked when the run is built (lime_toolkit.config.check_options).
    option_specs = {"step_size_init": Number(), "step_size_lr": Number(0), "first_order": BOOL, "lr": Positive()}
    second_order = True
    #: The transform is the identity, token by token (batched evaluation).
    tokenwise = True

    def __init__(self, setup: EditorSetup):
        super().__init__(setup)
        self.step_size_lr = float(setup.option("step_size_lr", 1e-3))
        step_size_init = float(setup.option("step_size_init", 1e-2))
        if bool(setup.option("first_order", False)):
            self.second_order = False  # instance attribute: this editor captures detached factors
        self.shapes = {name: (int(o), int(i)) for name, (o, i) in setup.shapes.items()}
        self._keys = {name: safe_key(name) for name in self.shapes}
        if len(set(self._keys.values())) != len(self._keys):
            raise UserError(f"et: edited weight names collide once '.' is replaced: {sorted(self.shapes)}")
        weights = dict(setup.model.named_parameters())
        missing = [n for n in self.shapes if n not in weights]
        if missing:
            raise UserError(f"et: the model has no parameter(s) {', '.join(missing)} to copy as base weights")
        self.base_weights = nn.ParameterDict()
        self.step_sizes = nn.ParameterDict()
        for name, shape in self.shapes.items():
            weight = weights[name]
            if tuple(weight.shape) != shape:
                raise UserError(f"et: weight '{name}' has shape {tuple(weight.shape)}, expected {shape}")
            key = self._keys[name]
            self.base_weights[key] = nn.Parameter(weight.detach().clone())
            self.step_sizes[key] = nn.Parameter(torch.tensor(step_size_init, dtype=weight.dtype))

    def _key(self, name: str) -> str:
        try:
            return self._keys[name]
        except KeyError:
            raise KeyError(f"et has no parameters for weight '{name}'; it was built for: "
                           f"{', '.join(self.shapes)}") from None

    def base_weight(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        """The trainable copy W_b of weight ``name`` (the pre-edit value under Editable Training)."""
        return self.base_weights[self._key(name)]

    def transform(self, name: str, x: torch.Tensor, delta: torch.Tensor, ctx: EditContext | None = None):
        """The identity: ET's update is the (masked) gradient itself."""
        return x, delta

    def step_size(self, name: str) -> torch.Tensor:
        """The learned α of weight ``name``."""
        return self.step_sizes[self._key(name)]

    def param_groups(self) -> list[dict]:
        """The base-weight copies at the editor lr; the step sizes in their own group at
        ``step_size_lr``."""
        groups = []
        base = [p for p in self.base_weights.parameters() if p.requires_grad]
        if base:
            groups.append({"params": base, "name": "base_weights"})
        alphas = [p for p in self.step_sizes.parameters() if p.requires_grad]
        if alphas:
            groups.append({"params": alphas, "name": "step_size", "lr": self.step_size_lr})
        return groups
