"""The mLAMA dataset (Kassner et al. 2021), registered as ``mlama``.

Reads the mLAMA 1.1 release layout (``mlama1.1/<lang>/templates.jsonl`` and
``mlama1.1/<lang>/<relation>.jsonl``). The implementation is registered by import path and
imported only when the dataset is first used, so loading the plugin stays cheap.
"""
from lime_toolkit.hookspecs import hookimpl

LIME_TOOLKIT_API = "1"


@hookimpl
def register_datasets(register):
    """Register :class:`~.dataset.MlamaDataset` as ``mlama``."""
    register(
        "mlama",
        "lime_toolkit_plugins.mlama.dataset:MlamaDataset",
        description="mLAMA 1.1 factual knowledge probes: facts <subject, relation, object> in 53 languages "
        "linked by uuid; edits ask for another object of the same relation",
    )
