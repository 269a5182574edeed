"""Mask strategies: ``none`` (identity) and ``l0`` (LiME language anisotropic masks).

The implementation modules import torch; the strategies are registered by import path, so they are
loaded only when one is first used and loading the plugin (to build the command line, to list
plugins) stays cheap.
"""
from lime_toolkit.hookspecs import hookimpl

LIME_TOOLKIT_API = "1"


@hookimpl
def register_mask_strategies(register):
    """Register :class:`NoMask` as ``none`` and :class:`L0Masks` as ``l0``."""
    register(
        "none",
        "lime_toolkit_plugins.masks.strategies:NoMask",
        description="no masks: the gradient factors pass through unchanged",
    )
    register(
        "l0",
        "lime_toolkit_plugins.masks.strategies:L0Masks",
        description="LiME language anisotropic masks: per edit language and weight, hard-concrete "
        "gated scales on x and δ with an expected-L0 penalty",
    )
