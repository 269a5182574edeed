"""Editable Training (Sinitsin et al. 2020), registered as ``et``.

The implementation imports torch; it is registered by import path, so it is loaded only when the
editor is first used.
"""
from lime_toolkit.hookspecs import hookimpl

LIME_TOOLKIT_API = "1"


@hookimpl
def register_editors(register):
    """Register :class:`~.editor.EditableTrainingEditor` as ``et``."""
    register(
        "et",
        "lime_toolkit_plugins.et.editor:EditableTrainingEditor",
        description="Editable Training: one differentiable gradient step with a learned step size per "
        "weight; meta-training also trains the edited base weights (full second-order gradients)",
    )
