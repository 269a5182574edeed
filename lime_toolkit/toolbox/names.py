"""Names usable as keys of ``nn.ParameterDict`` / ``nn.ModuleDict``.

Contract: :func:`safe_key` maps a parameter name (``bert.encoder.layer.1.output.dense.weight``) or
any other name to a key without dots, the same way every time, and distinct names that contain no
``__`` to distinct keys. Editors and mask strategies key their per-weight modules by it. No torch.
"""
from __future__ import annotations


def safe_key(name: str) -> str:
    """``name`` with every ``.`` replaced by ``__`` (module-dict keys must not contain dots)."""
    return name.replace(".", "__")
