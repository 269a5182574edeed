"""The MEND editor network: residual low-rank layers over concatenated, normalised factors."""
from __future__ import annotations

import torch
from torch import nn


def normalise(v: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token layer normalisation without affine parameters (LiME's replacement for MEND's
    token-level batch norm). Returns the normalised tensor and the per-token scale ``std + eps``
    that maps the network's output back to the factor's own units."""
    mean = v.mean(dim=-1, keepdim=True)
    scale = v.std(dim=-1, keepdim=True, unbiased=False) + eps
    return (v - mean) / scale, scale


class LowRankResidualLayer(nn.Module):
    """One branch r(h) = max(s ⊙ (U V h + b) + t, 0) of ``h <- h + r(h)``, or without the
    clamp (``linear=True``) for the network's last layer.

    U starts at zero and b at zero, so with the per-weight scale s = 1 and shift t = 0 the branch
    is exactly zero: the layer starts as the identity. V ~ N(0, 1) as in MEND.
    """

    def __init__(self, dim: int, rank: int, linear: bool = False):
        super().__init__()
        self.linear = linear
        self.u = nn.Parameter(torch.zeros(dim, rank))
        self.v = nn.Parameter(torch.randn(rank, dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, h: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        pre = (h @ self.v.transpose(0, 1)) @ self.u.transpose(0, 1) + self.bias
        out = pre * scale + shift
        # Not relu or clamp: at init the pre-activation is exactly 0, where relu's gradient is 0
        # (and clamp's too from torch 2.14 on), so the network could never leave the identity.
        # where() passes the gradient wherever out >= 0, the same values on every torch version.
        return out if self.linear else torch.where(out >= 0, out, torch.zeros_like(out))


class SharedEditorNetwork(nn.Module):
    """The network shared by every edited weight of one shape (out, in): ``n_layers`` residual
    low-rank layers on vectors of dimension in + out. The per-weight scale and shift vectors are
    passed in (they belong to the edited weight, not to the network).

    As in MEND's own implementation the last layer has no non-linearity (``linear_last``): with a
    clamp there too, every residual is non-negative, so the editor could add to the factors but
    never subtract from them (for example remove the component that all inputs share)."""

    def __init__(self, dim: int, rank: int, n_layers: int, linear_last: bool = True):
        super().__init__()
        self.dim, self.rank = dim, rank
        self.layers = nn.ModuleList(LowRankResidualLayer(dim, rank, linear=linear_last and k == n_layers - 1)
                                    for k in range(n_layers))

    def residual(self, h0: torch.Tensor, scales: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """Σ_k r_k: the network's output minus its input ``h0`` ([tokens, dim]). Accumulated
        separately from ``h0`` so that a zero residual leaves the caller's factors bit-exact.
        ``scales`` and ``shifts`` are [n_layers, dim]."""
        total = torch.zeros_like(h0)
        for k, layer in enumerate(self.layers):
            total = total + layer(h0 + total, scales[k], shifts[k])
        return total
