"""Hard-concrete gates (Louizos et al. 2018) with a learned scale: one LiME mask vector."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class HardConcreteConfig:
    """Temperature β, stretch interval (γ, ζ) and the noise margin ε of u ~ U(ε, 1 − ε)."""

    beta: float = 2.0 / 3.0
    gamma: float = -0.1
    zeta: float = 1.1
    eps: float = 1e-6

    @property
    def l0_shift(self) -> float:
        """β·log(−γ/ζ), subtracted from log α in the expected-L0 formula."""
        return self.beta * math.log(-self.gamma / self.zeta)


class HardConcreteMask(nn.Module):
    """m = s ⊙ z over ``size`` dimensions: s a learned scale (init 1), z a hard-concrete gate with
    learned log α (init N(0, ``init_std``²), drawn from torch's global RNG)."""

    def __init__(self, size: int, config: HardConcreteConfig, init_std: float = 0.01):
        super().__init__()
        self.config = config
        self.log_alpha = nn.Parameter(torch.randn(size) * init_std)
        self.scale = nn.Parameter(torch.ones(size))

    def gate(self) -> torch.Tensor:
        """z: a stochastic sample when ``self.training``, the deterministic gate otherwise."""
        c = self.config
        if self.training:
            u = torch.rand_like(self.log_alpha) * (1 - 2 * c.eps) + c.eps
            s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + self.log_alpha) / c.beta)
        else:
            s = torch.sigmoid(self.log_alpha)
        return (s * (c.zeta - c.gamma) + c.gamma).clamp(0.0, 1.0)

    def forward(self) -> torch.Tensor:
        """The mask vector m = s ⊙ z."""
        return self.scale * self.gate()

    def expected_l0(self, differentiable: bool = True) -> torch.Tensor:
        """Per dimension P(z ≠ 0) = sigmoid(log α − β log(−γ/ζ)). With ``differentiable=False`` it
        is computed from detached parameters (the reference code's behaviour: same value, no
        gradient)."""
        log_alpha = self.log_alpha if differentiable else self.log_alpha.detach()
        return torch.sigmoid(log_alpha - self.config.l0_shift)

    @torch.no_grad()
    def clamp_(self, bound: float) -> None:
        """Clamp log α to [−bound, bound] in place."""
        self.log_alpha.clamp_(-bound, bound)
