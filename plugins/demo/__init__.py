"""The built-in ``demo`` dataset: an offline, invented multilingual fact world and its tiny model.

Facts about invented people (birthplace, profession, instrument ...) in en, de, fr, es, ru and zh,
parallel across languages, plus a tiny BERT-style masked LM pre-trained on them, so that every
command of the toolkit can be tried without data or a network. See :mod:`.corpus`,
:mod:`.tiny_model` and :mod:`.dataset`. The implementation (which imports torch) is registered by
import path and loaded only when the dataset or a name below is used, so loading the plugin stays
cheap; reading the demo's facts (``data describe``) does not import torch either.
"""
from lime_toolkit.hookspecs import hookimpl

LIME_TOOLKIT_API = "1"

#: One line for ``list-plugins`` (also ``DemoDataset.description``).
DESCRIPTION = "offline demo: invented people's facts in en/de/fr/es/ru/zh with a tiny pre-trained BERT"

_LAZY = {"DemoDataset": ".dataset", "DemoCorpus": ".corpus", "DemoSettings": ".corpus",
         "build_demo_model": ".tiny_model", "demo_model_dir": ".tiny_model"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)


@hookimpl
def register_datasets(register):
    """Register :class:`~.dataset.DemoDataset` as ``demo`` (by import path: nothing is imported here)."""
    register("demo", "lime_toolkit_plugins.demo.dataset:DemoDataset", description=DESCRIPTION)
