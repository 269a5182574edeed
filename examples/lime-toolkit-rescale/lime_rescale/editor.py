"""The ``rescale`` editor: a gradient-factor editor that is not in the paper.

For each edited weight W it learns a per-dimension scale of the inputs x (init 1) and of the output
gradients δ (init 1) and a step size α (init ``step_size_init``, default 1e-2), so that
W' = W − α · Σ_t (s_δ ⊙ δ_t)(s_x ⊙ x_t)ᵀ. Cross-lingual training and every mask strategy
(``--masks l0``) come from the core: there is no code for them here.
"""
import torch
from torch import nn

from lime_toolkit.editor_api import EditorSetup, FactorEditor


class RescaleEditor(FactorEditor):
    default_lr = 1e-3

    def __init__(self, setup: EditorSetup):
        super().__init__(setup)
        alpha = float(setup.option("step_size_init", 1e-2))
        self.keys = {name: name.replace(".", "__") for name in setup.shapes}  # ParameterDict keys have no '.'
        self.scale_x = nn.ParameterDict({self.keys[n]: nn.Parameter(torch.ones(i)) for n, (o, i) in setup.shapes.items()})
        self.scale_delta = nn.ParameterDict({self.keys[n]: nn.Parameter(torch.ones(o)) for n, (o, i) in setup.shapes.items()})
        self.alpha = nn.ParameterDict({self.keys[n]: nn.Parameter(torch.tensor(alpha)) for n in setup.shapes})

    def transform(self, name, x, delta, ctx):
        key = self.keys[name]
        return x * self.scale_x[key].to(x.dtype), delta * self.scale_delta[key].to(delta.dtype)

    def step_size(self, name):
        return self.alpha[self.keys[name]]
