"""Finetuning (FT), the paper's baseline, registered as ``ft``.

Nothing is meta-trained: each edit optimises the edited weights on the edit loss until the edit
input predicts its target. The implementation imports torch; it is registered by import path, so it is loaded only when the
editor is first used.
"""
from lime_toolkit.hookspecs import hookimpl

LIME_TOOLKIT_API = "1"


@hookimpl
def register_editors(register):
    """Register :class:`~.editor.FinetuneEditor` as ``ft``."""
    register(
        "ft",
        "lime_toolkit_plugins.ft.editor:FinetuneEditor",
        description="Finetuning baseline: optimise the edited weights on the edit loss (Adam or "
        "RMSprop, lr 5e-6, up to 100 steps) until the edit input predicts its target; nothing to train",
    )
