"""The MEND editor (Mitchell et al. 2022, as modified by LiME), registered as ``mend``.

The implementation imports torch; it is registered by import path, so it is loaded only when the
editor is first used.
"""
from lime_toolkit.hookspecs import hookimpl

LIME_TOOLKIT_API = "1"


@hookimpl
def register_editors(register):
    """Register :class:`~.editor.MendEditor` as ``mend``."""
    register(
        "mend",
        "lime_toolkit_plugins.mend.editor:MendEditor",
        description="MEND gradient-factor editor network (LiME variant: LayerNorm inputs, one "
        "low-rank network per weight shape, per-layer scale/shift, learned step sizes)",
    )
