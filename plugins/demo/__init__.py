"""The built-in ``demo`` dataset: an offline, invented multilingual fact world and its tiny model.

Facts about invented people (birthplace, profession, instrument ...) in en, de, fr, es, ru and zh,
parallel across languages, plus a tiny BERT-style masked LM pre-trained on them, so that every
command of the toolkit can be tried without data or a network. See :mod:`.corpus`,
:mod:`.tiny_model` and :mod:`.dataset`. The implementation (which imports torch) is loaded only when
the hook runs or a name below is used, so loading the plugin stays cheap.
"""
from lime_toolkit.hookspecs import hookimpl

LIME_TOOLKIT_API = "1"

_LAZY = {"DemoDataset": ".dataset", "DemoCorpus": ".corpus", "DemoSettings": ".corpus",
         "build_demo_model": ".tiny_model", "demo_model_dir": ".tiny_model"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)


@hookimpl
def register_datasets(register):
    """Register :class:`~.dataset.DemoDataset` as ``demo``."""
    from .dataset import DemoDataset

    register("demo", DemoDataset, description=DemoDataset.description)
