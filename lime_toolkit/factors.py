"""Gradient factors: the per-token inputs x and output gradients δ of the edited linear layers.

For a linear layer W (out x in), ∇W = Σ_t δ_t x_tᵀ. One forward/backward pass on the edit input
captures both with forward hooks and ``torch.autograd.grad`` on the layer outputs.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from lime_toolkit.encoding import Batch
from lime_toolkit.models import Params, position_logits

Factors = dict[str, tuple[torch.Tensor, torch.Tensor]]


def edit_loss(model: nn.Module, batch: Batch, params: Params | None = None) -> torch.Tensor:
    """Cross-entropy of the batch's targets at its prediction positions."""
    return F.cross_entropy(position_logits(model, batch, params), batch.labels, ignore_index=-100)


@contextmanager
def linear_io(model: nn.Module, names) -> Iterator[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Within the block, the returned dict maps each edited weight name (``module.weight``) to the
    (input, output) of its module's last forward call; the hooks are removed on leaving."""
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []
    for name in names:
        def hook(mod, args, output, _name=name):
            seen[_name] = (args[0], output)
        handles.append(model.get_submodule(name.rsplit(".", 1)[0]).register_forward_hook(hook))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def capture_factors(model: nn.Module, batch: Batch, params: Params, create_graph: bool = False) -> tuple[torch.Tensor, Factors]:
    """Run the edit loss under ``params`` and return ``(loss, {name: (x, δ)})``.

    ``x`` is [tokens, in], ``δ`` [tokens, out]; tokens where either is all zero are dropped. With
    ``create_graph`` the factors stay differentiable (second-order editors); otherwise they are
    detached.
    """
    # the graph needs a leaf that requires grad: the edited weights themselves
    leaves = {n: (t if t.requires_grad else t.detach().requires_grad_()) for n, t in params.items()}
    with linear_io(model, params) as seen, torch.enable_grad():
        loss = edit_loss(model, batch, leaves)
        names = list(seen)
        outputs = [seen[n][1] for n in names]
        grads = torch.autograd.grad(loss, outputs, create_graph=create_graph, allow_unused=True)
    factors: Factors = {}
    for name, out, delta in zip(names, outputs, grads):
        x = seen[name][0]
        if delta is None:
            delta = torch.zeros_like(out)
        x = x.reshape(-1, x.shape[-1])
        delta = delta.reshape(-1, delta.shape[-1])
        if not create_graph:
            x, delta = x.detach(), delta.detach()
        keep = (x != 0).any(dim=1) & (delta != 0).any(dim=1)
        factors[name] = (x[keep], delta[keep])
    return loss.detach() if not create_graph else loss, factors
