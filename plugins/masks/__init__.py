"""Mask strategies: ``none`` (identity) and ``l0`` (LiME language anisotropic masks).

The implementation modules import torch; they are loaded only when the hook runs, so that loading
the plugin (for example to build the command line) stays cheap.
"""
from lime_toolkit.hookspecs import hookimpl

LIME_TOOLKIT_API = "1"


@hookimpl
def register_mask_strategies(register):
    """Register :class:`NoMask` as ``none`` and :class:`L0Masks` as ``l0``."""
    from .strategies import L0Masks, NoMask

    register("none", NoMask, description="no masks: the gradient factors pass through unchanged")
    register(
        "l0",
        L0Masks,
        description="LiME language anisotropic masks: per edit language and weight, hard-concrete "
        "gated scales on x and δ with an expected-L0 penalty",
    )
