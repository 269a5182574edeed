"""The ``shared`` mask strategy: one learned scale per edited weight, the same for every language.

A language-*agnostic* counterpart of LiME's L0 masks, for comparison: ``apply`` returns
(x ⊙ (1 + m_x), δ ⊙ (1 + m_δ)) whatever the edit language, with m initialised to 0. The penalty is
``l1`` (option, default 0.01) times the mean |m|.
"""
import torch
from torch import nn

from lime_toolkit.mask_api import MaskSetup, MaskStrategy


class SharedScale(MaskStrategy):
    def __init__(self, setup: MaskSetup):
        super().__init__(setup)
        self.l1 = float(setup.option("l1", 0.01))
        self.keys = {name: name.replace(".", "__") for name in setup.shapes}
        self.m_x = nn.ParameterDict({self.keys[n]: nn.Parameter(torch.zeros(i)) for n, (o, i) in setup.shapes.items()})
        self.m_delta = nn.ParameterDict({self.keys[n]: nn.Parameter(torch.zeros(o)) for n, (o, i) in setup.shapes.items()})

    def apply(self, name, lang, x, delta):
        key = self.keys[name]
        return x * (1 + self.m_x[key]).to(x.dtype), delta * (1 + self.m_delta[key]).to(delta.dtype)

    def penalty(self, langs):
        if not langs:
            return torch.zeros(())
        return self.l1 * torch.cat([p.abs() for p in self.parameters()]).mean()

    def language_vectors(self, lang):
        return {n: torch.cat([self.m_x[k], self.m_delta[k]]).detach().clone() for n, k in self.keys.items()}
