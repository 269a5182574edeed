"""KnowledgeEditor (De Cao et al. 2021), registered as ``ke``.

The implementation imports torch; it is registered by import path, so it is loaded only when the
editor is first used.
"""
from lime_toolkit.hookspecs import hookimpl

LIME_TOOLKIT_API = "1"


@hookimpl
def register_editors(register):
    """Register :class:`~.editor.KnowledgeEditor` as ``ke``."""
    register(
        "ke",
        "lime_toolkit_plugins.ke.editor:KnowledgeEditor",
        description="KnowledgeEditor: a BiLSTM conditioner over the edit input and one weight-normed "
        "MLP per edited weight predicting a gradient gate and offset, ΔW = σ(η)(∇W ⊙ a + b)",
    )
