"""The declared architectures, each on a small random model built here from a transformers config.

For BERT (the reference), XLM-RoBERTa, DistilBERT and DeBERTa-v2 (mDeBERTa's architecture), for
the masked-LM and the sequence-classification tasks: the model is saved with ``save_pretrained``
and loaded back through ``lime_toolkit.models.load_model``; then

* ``editable_parameters`` picks the MLP weights of the family (in and out projections);
* the masked-LM head declared for the family gives the whole model's logits (also under edits);
* the captured factors give autograd's weight gradients (Σ_t δ_t x_tᵀ) on a padded batch,
  against a reference written with plain ``functional_call`` on the whole model;
* a two-step MEND + l0 meta-training moves the editor's and the edit language's mask parameters,
  and one edit through the ``EditingSystem`` changes the prediction logits and lowers the edit loss.

Each model has 2 layers of width 32 and a ~25-word vocabulary: the whole file runs in seconds.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from lime_toolkit.architectures import editable_parameters, family_of, mlm_head
from lime_toolkit.config import defaults
from lime_toolkit.data import CLASSIFICATION, MASKED_LM, TARGET_SLOT, EditCase, Example
from lime_toolkit.dataset_api import Dataset, DatasetOptions
from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import EditorSetup
from lime_toolkit.encoding import encode_examples
from lime_toolkit.factors import capture_factors, edit_loss
from lime_toolkit.mask_api import MaskSetup
from lime_toolkit.models import load_model, position_logits
from lime_toolkit.run import Run
from lime_toolkit.testing import TOY_OBJECTS, TOY_SUBJECTS, TOY_TEMPLATES, ToyDataset
from lime_toolkit.training import train
from lime_toolkit_plugins.masks.strategies import L0Masks
from lime_toolkit_plugins.mend.editor import MendEditor

HIDDEN, INTERMEDIATE, LAYERS, LABELS = 32, 64, 2, 3
ARCHITECTURES = ["bert", "xlm-roberta", "distilbert", "deberta-v2"]
TASKS = [MASKED_LM, CLASSIFICATION]
#: The two MLP weights of layer {i}, as named in the base model.
MLP = {
    "bert": ("bert.encoder.layer.{i}.intermediate.dense.weight", "bert.encoder.layer.{i}.output.dense.weight"),
    "xlm-roberta": ("roberta.encoder.layer.{i}.intermediate.dense.weight",
                    "roberta.encoder.layer.{i}.output.dense.weight"),
    "distilbert": ("distilbert.transformer.layer.{i}.ffn.lin1.weight", "distilbert.transformer.layer.{i}.ffn.lin2.weight"),
    "deberta-v2": ("deberta.encoder.layer.{i}.intermediate.dense.weight",
                   "deberta.encoder.layer.{i}.output.dense.weight"),
}


# -- building the models -------------------------------------------------------------------------------

def toy_tokenizer(model_type: str):
    """A word-level fast tokenizer over the toy vocabulary with the family's special tokens
    (XLM-R's <s> </s> <pad> <mask>, BERT's [CLS] [SEP] [PAD] [MASK] for the others)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    if model_type == "xlm-roberta":
        cls, pad, sep, unk, mask = "<s>", "<pad>", "</s>", "<unk>", "<mask>"  # ids 0-3 as in XLM-R
    else:
        pad, unk, cls, sep, mask = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    specials = [cls, pad, sep, unk, mask] if model_type == "xlm-roberta" else [pad, unk, cls, sep, mask]
    words = specials + [".", "lives", "in", "wohnt"] + TOY_SUBJECTS + TOY_OBJECTS + [o + "e" for o in TOY_OBJECTS]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = TemplateProcessing(single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B {sep}",
                                            special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, unk_token=unk, cls_token=cls,
                                   sep_token=sep, mask_token=mask, bos_token=cls, eos_token=sep)


def toy_config(model_type: str, tokenizer, **overrides):
    """A small transformers config of the family, without dropout."""
    from transformers import BertConfig, DebertaV2Config, DistilBertConfig, XLMRobertaConfig

    common = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, max_position_embeddings=40)
    bert_like = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2,
                     intermediate_size=INTERMEDIATE, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if model_type == "bert":
        config = BertConfig(**common, **bert_like)
    elif model_type == "xlm-roberta":
        config = XLMRobertaConfig(**common, **bert_like, bos_token_id=tokenizer.cls_token_id,
                                  eos_token_id=tokenizer.sep_token_id)
    elif model_type == "distilbert":
        config = DistilBertConfig(**common, dim=HIDDEN, n_layers=LAYERS, n_heads=2, hidden_dim=INTERMEDIATE,
                                  dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0)
    elif model_type == "deberta-v2":  # mDeBERTa-v3's settings: disentangled relative attention only
        config = DebertaV2Config(**common, **bert_like, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                 position_buckets=8, max_relative_positions=-1, norm_rel_ebd="layer_norm",
                                 share_att_key=True, position_biased_input=False, type_vocab_size=0,
                                 pooler_dropout=0.0)
    else:
        raise ValueError(model_type)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def save_random_model(model_type: str, task: str, directory: Path, seed: int = 0, **overrides) -> Path:
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification

    tokenizer = toy_tokenizer(model_type)
    config = toy_config(model_type, tokenizer, **overrides)
    if task == CLASSIFICATION:
        config.num_labels = LABELS
    torch.manual_seed(seed)
    auto = AutoModelForMaskedLM if task == MASKED_LM else AutoModelForSequenceClassification
    auto.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``built(model_type, task) -> (model, tokenizer)``, saved once per module and loaded back the
    toolkit's way."""
    cache = {}

    def get(model_type: str, task: str):
        if (model_type, task) not in cache:
            directory = save_random_model(model_type, task, tmp_path_factory.mktemp(f"{model_type}-{task}"))
            cache[model_type, task] = load_model(str(directory), task, LABELS if task == CLASSIFICATION else None)
        return cache[model_type, task]

    return get


# -- a toy classification dataset ------------------------------------------------------------------------

class ToyClassification(Dataset):
    """The toy facts as parallel en/de sentences with a class each (desired: the next class)."""

    task = CLASSIFICATION
    num_labels = LABELS
    description = "toy parallel sentences with classes, for tests"

    def __init__(self, options: DatasetOptions | None = None):
        super().__init__(options or DatasetOptions())

    @property
    def languages(self) -> list[str]:
        return list(TOY_TEMPLATES)

    @staticmethod
    def _text(lang: str, subject: str, obj: str) -> str:
        return TOY_TEMPLATES[lang].replace("[X]", subject).replace(TARGET_SLOT, obj if lang == "en" else obj + "e")

    def _subjects(self, split):
        return {"train": TOY_SUBJECTS[:4], "dev": TOY_SUBJECTS[4:6], "test": TOY_SUBJECTS[6:]}[split]

    def edit_cases(self, split, *, predict=None):
        return [EditCase(s, {l: Example(s, l, self._text(l, s, TOY_OBJECTS[i % 4]), (i + 1) % LABELS)
                             for l in self.languages})
                for i, s in enumerate(self._subjects(split))]

    def locality_pool(self, split):
        return {l: [Example(f"{s}-{o}", l, self._text(l, s, o)) for s in self._subjects(split) for o in TOY_OBJECTS[2:]]
                for l in self.languages}

    def default_model(self):
        raise NotImplementedError("tests pass the model directly")


def dataset_for(task: str) -> Dataset:
    return ToyDataset() if task == MASKED_LM else ToyClassification()


def padded_pair(task: str) -> list[Example]:
    """Two examples of different lengths: the shorter one is padded."""
    if task == MASKED_LM:
        return [Example("x", "en", f"anna in {TARGET_SLOT}", "rome"), ToyDataset().edit_cases("train")[1].inputs["de"]]
    return [Example("x", "en", "anna in rome", 2), ToyClassification().edit_cases("train")[1].inputs["de"]]


# -- the reference: the whole model, plain functional_call --------------------------------------------------

def reference_logits(model, tokenizer, task, examples, params=None):
    """Logits at every answer position (masked LM: each mask token; classification: each row) from
    the whole model's forward, and their labels."""
    if task == MASKED_LM:
        texts = [ex.text.replace(TARGET_SLOT, tokenizer.mask_token) for ex in examples]
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        logits = functional_call(model, params or {}, args=(), kwargs=dict(enc)).logits
        labels = torch.tensor([tokenizer.convert_tokens_to_ids(ex.target) for ex in examples])
        return logits[enc["input_ids"] == tokenizer.mask_token_id], labels
    enc = tokenizer([ex.text for ex in examples], padding=True, return_tensors="pt")
    return functional_call(model, params or {}, args=(), kwargs=dict(enc)).logits, torch.tensor([ex.target for ex in examples])


# -- (a) which weights are edited ---------------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_editable_parameters_are_the_mlp_weights(built, model_type, task):
    model, _ = built(model_type, task)
    assert model.config.model_type == model_type and family_of(model) is not None
    first, second = MLP[model_type]
    expected = [t.format(i=i) for i in range(LAYERS) for t in (first, second)]
    assert editable_parameters(model, last_n_layers=LAYERS) == expected
    assert editable_parameters(model) == expected  # the default, last 3 layers, on a 2-layer model
    assert editable_parameters(model, layers=[-1]) == expected[2:]
    weights = dict(model.named_parameters())
    for name in expected:  # the MLP's in and out projections, Linear weights of the model itself
        module = model.get_submodule(name.rsplit(".", 1)[0])
        assert isinstance(module, torch.nn.Linear) and module.weight is weights[name]
    assert weights[first.format(i=0)].shape == (INTERMEDIATE, HIDDEN)
    assert weights[second.format(i=0)].shape == (HIDDEN, INTERMEDIATE)


# -- the declared masked-LM head ----------------------------------------------------------------------------

@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_declared_mlm_head_gives_the_whole_models_logits(built, model_type):
    """``position_logits`` runs the base model and the declared head at the mask positions only; it
    must give what the whole masked LM gives there, before and after an edit of the MLP weights."""
    model, tok = built(model_type, MASKED_LM)
    assert mlm_head(model) is not None  # the fast path is taken for every declared family
    examples = padded_pair(MASKED_LM)
    batch = encode_examples(tok, examples, MASKED_LM)
    names = editable_parameters(model)
    torch.manual_seed(0)
    edited = {n: p + 0.5 * torch.randn_like(p) for n, p in model.named_parameters() if n in names}
    for params in (None, edited):
        expected, _ = reference_logits(model, tok, MASKED_LM, examples, params)
        torch.testing.assert_close(position_logits(model, batch, params), expected, atol=1e-5, rtol=1e-4)


def test_deberta_without_the_legacy_head_runs_whole(tmp_path):
    """DeBERTa-v2 built with ``legacy=False`` has another head (it takes the word embeddings too):
    no declared head applies, and the whole model runs instead, with the same logits."""
    directory = save_random_model("deberta-v2", MASKED_LM, tmp_path / "m", legacy=False)
    model, tok = load_model(str(directory), MASKED_LM)
    assert not hasattr(model, "cls") and mlm_head(model) is None
    examples = padded_pair(MASKED_LM)
    expected, _ = reference_logits(model, tok, MASKED_LM, examples)
    torch.testing.assert_close(position_logits(model, encode_examples(tok, examples, MASKED_LM)), expected)


# -- (b) factors ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_factors_equal_autograd_weight_gradients(built, model_type, task):
    model, tok = built(model_type, task)
    names = editable_parameters(model)
    weights = {n: p for n, p in model.named_parameters() if n in names}
    examples = padded_pair(task)
    batch = encode_examples(tok, examples, task)
    attention = batch.inputs["attention_mask"]
    assert not attention.all()  # the batch really is padded

    leaves = {n: w.detach().clone().requires_grad_() for n, w in weights.items()}
    logits, labels = reference_logits(model, tok, task, examples, leaves)
    grads = dict(zip(leaves, torch.autograd.grad(F.cross_entropy(logits, labels), list(leaves.values()))))
    loss, factors = capture_factors(model, batch, weights)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)
    assert set(factors) == set(names)
    for name in names:
        x, delta = factors[name]
        assert grads[name].abs().max() > 0, name
        torch.testing.assert_close(delta.T @ x, grads[name], atol=1e-7, rtol=1e-4)
        # layer 0's MLP reaches the loss at every real token and at no padding token; the last
        # layer's only at the answer positions (masked LM: the masks; classification: the first token)
        last = f".{LAYERS - 1}." in name
        rows = (int((batch.labels != -100).sum()) if task == MASKED_LM else len(examples)) if last else int(attention.sum())
        assert x.shape[0] == delta.shape[0] == rows, name


# -- (c) MEND + l0: a short meta-training and an edit ----------------------------------------------------------

class Monitor:
    def __init__(self):
        self.terms = []

    def on_step(self, step, terms, steps_per_s):
        self.terms.append(terms)

    def on_validation(self, step, metrics, improved):
        pass

    def on_edit(self):
        pass


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_mend_l0_trains_and_edits(built, model_type, task, tmp_path):
    """Two optimiser steps of ``train`` (2 edits each, edit language de): every MEND parameter tensor
    and the de gates move, en's gates and the base model do not; then one edit of a held-out case
    through the EditingSystem changes the logits and lowers the edit loss."""
    model, tok = built(model_type, task)
    data = dataset_for(task)
    names = editable_parameters(model)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in names}
    torch.manual_seed(1)
    editor = MendEditor(EditorSetup(model, dict(shapes), data.languages, {"rank": 8, "step_size_init": 1.0}))
    masks = L0Masks(MaskSetup(dict(shapes), data.languages, {}))
    system = EditingSystem(model, names, editor, masks)
    config = defaults()
    config["train"].update(langs="de", max_steps=2, accumulate=2, val_every=2, val_edits=1, retain_per_edit=2,
                           patience=0, lr=1e-3, mask_lr=1e-2)
    run = Run(config, data, model, tok, system, tmp_path / "run", torch.device("cpu"))
    editor_before = {k: v.clone() for k, v in editor.state_dict().items()}
    masks_before = {k: v.clone() for k, v in masks.state_dict().items()}
    model_before = {k: v.clone() for k, v in model.state_dict().items()}

    monitor = Monitor()
    result = train(run, monitor)
    assert result.steps == 2 and len(monitor.terms) == 2
    assert all(math.isfinite(v) for terms in monitor.terms for v in terms.values())
    for key, value in editor.state_dict().items():
        assert not torch.equal(value, editor_before[key]), f"{key} never moved"
    for key, value in masks.state_dict().items():
        assert torch.equal(value, masks_before[key]) != key.startswith("gates.de."), key
    assert all(torch.equal(v, model_before[k]) for k, v in model.state_dict().items())

    system.eval()
    case = data.edit_cases("test")[0]
    batch = encode_examples(tok, [case.inputs["en"]], task)
    with torch.no_grad():
        edited = system.edit(batch, "en")
        before, after = position_logits(model, batch), position_logits(model, batch, edited)
        assert set(edited) == set(names)
        # a random classifier's logits are all near 0 (DeBERTa-v2's around 1e-2): judge the change
        # against their size; float noise is some 1e-7 of it
        assert (after - before).abs().max() > 1e-3 * before.abs().max()
        assert edit_loss(model, batch, edited) < edit_loss(model, batch)


def test_distilbert_ignores_token_type_ids_from_a_bert_tokenizer(built):
    """DistilBERT has no token types; a BERT tokenizer shipped with it still sends token_type_ids.
    Predictions and factors are the same with and without them."""
    model, tok = built("distilbert", CLASSIFICATION)
    examples = [ex for case in ToyClassification().edit_cases("train") for ex in case.inputs.values()][:2]
    plain = encode_examples(tok, examples, CLASSIFICATION)
    typed = encode_examples(tok, examples, CLASSIFICATION)
    typed.inputs["token_type_ids"] = torch.ones_like(typed.inputs["input_ids"])
    weights = {n: p for n, p in model.named_parameters() if n in editable_parameters(model)}
    torch.testing.assert_close(position_logits(model, typed), position_logits(model, plain), atol=0, rtol=0)
    expected = capture_factors(model, plain, weights)[1]
    for name, (x, delta) in capture_factors(model, typed, weights)[1].items():
        assert torch.equal(x, expected[name][0]) and torch.equal(delta, expected[name][1])
