"""Helpers for testing editors, datasets and mask strategies in-process (also for plugin authors).

``tiny_masked_lm()`` builds a random, very small BERT masked LM with a word-level vocabulary in well
under a second (``save_tiny_masked_lm(path)`` saves one to pass as ``--model``); ``ToyDataset`` is
a parallel two-language fact set for it. Neither needs a download.
"""
from __future__ import annotations

from lime_toolkit.data import MASKED_LM, TARGET_SLOT, EditCase, Example
from lime_toolkit.dataset_api import Dataset, DatasetOptions
from lime_toolkit.hookspecs import hookimpl

TOY_SUBJECTS = ["anna", "boris", "chen", "dara", "emil", "fumi", "gert", "hana"]
TOY_OBJECTS = ["paris", "rome", "oslo", "lima"]
TOY_TEMPLATES = {"en": f"[X] lives in {TARGET_SLOT} .", "de": f"[X] wohnt in {TARGET_SLOT} ."}
TOY_OBJECT_FORMS = {"en": {o: o for o in TOY_OBJECTS}, "de": {o: o + "e" for o in TOY_OBJECTS}}


def tiny_masked_lm(hidden: int = 32, layers: int = 2, seed: int = 0):
    """A random ``BertForMaskedLM`` and its tokenizer covering the toy vocabulary."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "lives", "in", "wohnt"]
    words += TOY_SUBJECTS + TOY_OBJECTS + [o + "e" for o in TOY_OBJECTS]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                            special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(words), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=hidden * 2, max_position_embeddings=32, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, attn_implementation="eager")
    model = BertForMaskedLM(config).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer


def save_tiny_masked_lm(path, **kwargs):
    """Build :func:`tiny_masked_lm` and ``save_pretrained`` it (model and tokenizer) to ``path``,
    ready to pass as ``--model``; returns ``path``."""
    model, tokenizer = tiny_masked_lm(**kwargs)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class ToyDataset(Dataset):
    """Parallel en/de facts "X lives in Y" over :data:`TOY_SUBJECTS` for tests."""

    task = MASKED_LM
    description = "toy parallel facts for tests"

    def __init__(self, options: DatasetOptions | None = None):
        super().__init__(options or DatasetOptions())

    @property
    def languages(self) -> list[str]:
        return list(self.options.languages or TOY_TEMPLATES)

    def _subjects(self, split):
        return {"train": TOY_SUBJECTS[:4], "dev": TOY_SUBJECTS[4:6], "test": TOY_SUBJECTS[6:]}[split]

    def edit_cases(self, split, *, predict=None):
        cases = []
        for i, subject in enumerate(self._subjects(split)):
            new = TOY_OBJECTS[(i + 1) % len(TOY_OBJECTS)]
            cases.append(EditCase(subject, {
                l: Example(subject, l, TOY_TEMPLATES[l].replace("[X]", subject), TOY_OBJECT_FORMS[l][new])
                for l in self.languages}))
        return cases

    def locality_pool(self, split):
        return {l: [Example(s, l, TOY_TEMPLATES[l].replace("[X]", s), None, n_masks=1) for s in self._subjects(split)]
                for l in self.languages}

    def default_model(self):
        raise NotImplementedError("tests pass the model directly")


class ToyPlugin:
    """Registers :class:`ToyDataset` as the dataset ``toy``, the way a plugin package would
    (``get_plugin_manager().register(ToyPlugin(), name)``)."""

    @hookimpl
    def register_datasets(self, register):
        register("toy", ToyDataset, "toy facts")
