"""The XNLI dataset (Conneau et al. 2018), registered as ``xnli``.

Reads per-language ``<lang>/dev.jsonl`` / ``<lang>/test.jsonl`` files, the official XNLI-1.0 TSV
release, or the Hugging Face dataset ``facebook/xnli``. The implementation is imported only when
the hook runs, so loading the plugin stays cheap.
"""
from lime_toolkit.hookspecs import hookimpl

LIME_TOOLKIT_API = "1"


@hookimpl
def register_datasets(register):
    """Register :class:`~.dataset.XnliDataset` as ``xnli``."""
    from .dataset import XnliDataset

    register(
        "xnli",
        XnliDataset,
        description="XNLI natural language inference, 15 parallel languages, 3 labels (jsonl per "
        "language, the XNLI-1.0 TSV release, or facebook/xnli from the Hugging Face hub)",
    )
