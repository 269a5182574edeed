"""The XNLI dataset (Conneau et al. 2018), registered as ``xnli``.

Reads per-language ``<lang>/dev.jsonl`` / ``<lang>/test.jsonl`` files, the official XNLI-1.0 TSV
release, or the Hugging Face dataset ``facebook/xnli``. The implementation is registered by import
path and imported only when the dataset is first used, so loading the plugin stays cheap.
"""
from lime_toolkit.hookspecs import hookimpl

LIME_TOOLKIT_API = "1"


@hookimpl
def register_datasets(register):
    """Register :class:`~.dataset.XnliDataset` as ``xnli``."""
    register(
        "xnli",
        "lime_toolkit_plugins.xnli.dataset:XnliDataset",
        description="XNLI natural language inference, 15 parallel languages, 3 labels (jsonl per "
        "language, the XNLI-1.0 TSV release, or facebook/xnli from the Hugging Face hub)",
    )
