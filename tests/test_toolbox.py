"""The toolbox for dataset plugins (lime_toolkit.toolbox), each function on small real inputs."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lime_toolkit.data import CLASSIFICATION, TARGET_SLOT, Example
from lime_toolkit.errors import UserError
from lime_toolkit.toolbox.masked_lm import (
    IGNORE,
    WarmupDecay,
    bert_config,
    encode_slot_rows,
    model_inputs,
    new_masked_lm,
    optimizer_step,
    pad_rows,
    random_mask,
    special_ids,
)
from lime_toolkit.toolbox.names import safe_key
from lime_toolkit.toolbox.prepared import claim_target, find_prepared, is_prepared, prepared_models, save_prepared
from lime_toolkit.toolbox.scoring import (
    accuracy_per_language,
    recall_per_language,
    share_per_language,
    slot_logits,
    slot_predictions,
)
from lime_toolkit.toolbox.settings import coerce, settings_from_options
from lime_toolkit.toolbox.wordpiece import (
    SPECIAL_TOKENS,
    bert_tokenizer,
    bert_words,
    learn_vocabulary,
    train_wordpiece,
)

TINY = SimpleNamespace(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
FACTS = {  # (subject, object) per language, parallel by position
    "en": [("Anna", "Paris"), ("Boris", "Rome"), ("Clara", "Oslo"), ("Dario", "Lima")],
    "de": [("Anna", "Paris"), ("Boris", "Rom"), ("Clara", "Oslo"), ("Dario", "Lima")],
}
TEMPLATE = {"en": "[X] was born in [Y] .", "de": "[X] wurde in [Y] geboren ."}


def fact_examples(targets=None) -> list[Example]:
    out = []
    for lang, facts in FACTS.items():
        for i, (subject, obj) in enumerate(facts):
            text = TEMPLATE[lang].replace("[X]", subject).replace("[Y]", TARGET_SLOT)
            out.append(Example(f"f{i}", lang, text, obj if targets is None else targets[lang][i]))
    return out


def fact_tokenizer():
    sentences = [ex.text.replace(TARGET_SLOT, ex.target) for ex in fact_examples()]
    return bert_tokenizer(learn_vocabulary(bert_words(sentences), 200))


# -- settings -----------------------------------------------------------------------------------


def test_coerce_reads_every_kind_of_option():
    assert coerce(False, " Yes ", "flag") is True and coerce(True, "off", "flag") is False
    assert coerce(True, False, "flag") is False
    assert coerce(8000, "12", "vocab_size") == 12 and coerce(8000, 12, "vocab_size") == 12
    assert coerce(5.0, 5, "max_minutes") == 5.0 and isinstance(coerce(5.0, 5, "max_minutes"), float)
    assert coerce(5.0, "1e-3", "lr") == pytest.approx(1e-3)
    assert coerce("auto", "tsv", "source") == "tsv"
    assert coerce((0.6, 0.1, 0.3), "0.5, 0.25,0.25", "split") == (0.5, 0.25, 0.25)
    assert coerce((0.6, 0.1, 0.3), [1, 0, 0], "split") == (1.0, 0.0, 0.0)
    assert coerce((2, 3), "1,2", "align_layers") == (1, 2)
    assert coerce(("en",), "en,de", "train_langs") == ("en", "de") == coerce(("en",), ["en", "de"], "train_langs")
    assert coerce((), "a,b", "names") == ("a", "b")
    assert coerce(None, {"any": 1}, "base_model") == {"any": 1}
    # the same value from YAML and from a command-line string gives the same setting
    assert coerce(5.0, 2, "x") == coerce(5.0, "2", "x") and coerce((0.6,), [1], "s") == coerce((0.6,), "1", "s")


@pytest.mark.parametrize("default, value, expected", [
    (False, "maybe", "boolean (true or false)"),
    (False, 1, "boolean (true or false)"),
    (8000, "1.5", "integer"),
    (8000, 1.5, "integer"),
    (8000, True, "integer"),
    (8000, None, "integer"),
    (1e-3, "fast", "number"),
    ("auto", 5, "string"),
    ((0.6, 0.1, 0.3), "0.5,x", "comma list of numbers"),
    ((2, 3), 7, "comma list of integers"),
])
def test_coerce_errors_name_the_option_and_the_type(default, value, expected):
    with pytest.raises(UserError) as err:
        coerce(default, value, "opt", owner="xnli")
    assert str(err.value) == f"xnli setting opt={value!r} is not a valid {expected}"


@dataclass(frozen=True)
class _Settings:
    size: int = 4
    rate: float = 0.5
    langs: tuple[str, ...] = ("en",)

    def validate(self):
        if self.size < 1:
            raise UserError("size must be positive")


def test_settings_from_options():
    assert settings_from_options(_Settings, None, owner="toy") == _Settings()
    s = settings_from_options(_Settings, {"size": "7", "langs": "en,de"}, owner="toy", base=_Settings(rate=0.1))
    assert s == _Settings(size=7, rate=0.1, langs=("en", "de"))
    with pytest.raises(UserError, match=r"^unknown toy setting\(s\) colour, sise; valid: preset, langs, rate, size$"):
        settings_from_options(_Settings, {"sise": 1, "colour": 2}, owner="toy", also=("preset",))
    with pytest.raises(UserError, match="size must be positive"):  # validate() runs
        settings_from_options(_Settings, {"size": 0}, owner="toy")
    with pytest.raises(UserError, match="toy setting rate='x' is not a valid number"):
        settings_from_options(_Settings, {"rate": "x"}, owner="toy")


def test_the_three_dataset_settings_coerce_alike():
    from lime_toolkit_plugins.demo.corpus import DemoSettings
    from lime_toolkit_plugins.mlama.settings import MlamaSettings
    from lime_toolkit_plugins.xnli.settings import XnliSettings

    parsers = {"demo": DemoSettings.from_overrides, "xnli": XnliSettings.from_extra,
               "mlama": lambda extra: MlamaSettings.from_extra(extra)[0]}
    for owner, parse in parsers.items():
        assert parse({"hidden_size": "32", "learning_rate": 1}) == parse({"hidden_size": 32, "learning_rate": "1.0"})
        assert parse({"learning_rate": 1}).learning_rate == 1.0
        with pytest.raises(UserError, match=f"^{owner} setting hidden_size='big' is not a valid integer$"):
            parse({"hidden_size": "big"})
        with pytest.raises(UserError, match=f"^unknown {owner} setting"):
            parse({"hidden": 3})
    assert XnliSettings.from_extra({"exclude_current": "yes", "train_langs": "en,de"}).train_langs == ("en", "de")
    assert DemoSettings.from_overrides({"align_layers": "1,2"}).align_layers == (1, 2)


# -- wordpiece ----------------------------------------------------------------------------------


def test_train_wordpiece_keeps_the_special_tokens():
    texts = ["The cat sat on the mat .", "Der Hund schläft .", "猫在睡觉 。"] * 5
    for lowercase in (False, True):
        tok = train_wordpiece(texts, 300, lowercase=lowercase)
        assert tok.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3, 4]
        assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
        ids = tok("The cat [MASK] on the mat .")["input_ids"]
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and tok.mask_token_id in ids
        assert tok.unk_token_id not in tok("Der Hund schläft .")["input_ids"]  # accents kept, known
        assert tok.tokenize("猫在睡觉") == ["猫", "在", "睡", "觉"]  # CJK characters split
        assert ("the" in tok.tokenize("The cat")) is lowercase


def test_learn_vocabulary_is_deterministic_and_round_trips():
    sentences = [ex.text.replace(TARGET_SLOT, ex.target) for ex in fact_examples()]
    counts = bert_words(sentences)
    vocab = learn_vocabulary(counts, 10 ** 6)  # merges until nothing is left to merge
    assert list(vocab)[:5] == SPECIAL_TOKENS and sorted(vocab.values()) == list(range(len(vocab)))
    assert learn_vocabulary(type(counts)(dict(reversed(list(counts.items())))), 10 ** 6) == vocab  # order-free
    assert all(word in vocab for word in counts)  # every word became one piece
    small = learn_vocabulary(counts, 40)  # the first merges only, in the same order
    assert len(small) == 40 and list(small.items()) == list(vocab.items())[:40]
    tok = bert_tokenizer(vocab)
    for sentence in sentences:
        ids = tok(sentence, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids
        assert " ".join(tok.convert_ids_to_tokens(ids)).replace(" ##", "") == sentence
    assert tok.tokenize("[CLS] Anna [MASK] [SEP]")[0::3] == ["[CLS]", "[SEP]"]  # specials stay whole
    assert tok.tokenize("Anna [MASK]")[-1] == "[MASK]"


# -- masked LM ----------------------------------------------------------------------------------


def test_bert_config_and_new_masked_lm():
    tok = fact_tokenizer()
    config = bert_config(tok, TINY, num_labels=3, max_position_embeddings=64)
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.intermediate_size) == (len(tok), 32, 2, 2, 64)
    assert (config.num_labels, config.max_position_embeddings, config.pad_token_id) == (3, 64, tok.pad_token_id)
    assert config._attn_implementation == "eager"
    torch.manual_seed(1)
    a = new_masked_lm(tok, TINY)
    torch.manual_seed(1)
    b = new_masked_lm(tok, TINY)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_encode_slot_rows_and_pad_rows():
    tok = fact_tokenizer()
    examples = fact_examples()
    rows = encode_slot_rows(tok, examples, chunk=3)
    assert len(rows) == len(examples)
    for (ids, labels), ex in zip(rows, examples):
        slot = labels != IGNORE
        assert ids[slot].eq(tok.mask_token_id).all() and (ids == tok.mask_token_id).sum() == slot.sum()
        assert labels[slot].tolist() == tok(ex.target, add_special_tokens=False)["input_ids"]
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and tok.pad_token_id not in ids
    ids, labels = pad_rows(rows, tok.pad_token_id)
    assert ids.shape == labels.shape == (len(rows), max(len(r[0]) for r in rows))
    for i, (x, y) in enumerate(rows):
        assert torch.equal(ids[i, :len(x)], x) and torch.equal(labels[i, :len(y)], y)
        assert ids[i, len(x):].eq(tok.pad_token_id).all() and labels[i, len(y):].eq(IGNORE).all()
    inputs = model_inputs(ids, tok.pad_token_id)
    assert inputs["attention_mask"].sum(1).tolist() == [len(x) for x, _ in rows]


def test_random_mask():
    tok = fact_tokenizer()
    ids, labels = pad_rows(encode_slot_rows(tok, fact_examples()), tok.pad_token_id)
    special = special_ids(tok)
    same = random_mask(ids, labels, 0.0, tok.mask_token_id, special, torch.Generator())
    assert same[0] is ids and same[1] is labels
    masked, new_labels = random_mask(ids, labels, 1.0, tok.mask_token_id, special, torch.Generator().manual_seed(0))
    ordinary = (labels == IGNORE) & ~torch.isin(ids, special)
    assert masked[ordinary].eq(tok.mask_token_id).all() and torch.equal(new_labels[ordinary], ids[ordinary])
    assert torch.equal(masked[~ordinary], ids[~ordinary]) and torch.equal(new_labels[~ordinary], labels[~ordinary])
    half = [random_mask(ids, labels, 0.5, tok.mask_token_id, special, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(half[0][0], half[1][0]) and 0 < int((half[0][0] != ids).sum()) < int(ordinary.sum())


def test_warmup_decay_schedule():
    plan = WarmupDecay(warmup=4, total=12)
    assert [plan(s) for s in (0, 3)] == [0.25, 1.0]
    assert plan(8) == pytest.approx(0.5) and plan(12) == 0.0 and plan(20) == 0.0
    assert WarmupDecay(warmup=4, total=12, floor=0.1)(12) == 0.1
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = plan.scheduler(optimizer)
    assert optimizer.param_groups[0]["lr"] == 0.5
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 2.0
    plan.total = 6  # re-planned mid-run
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2.0 * 2 / 2)


def test_optimizer_step_clips_and_steps():
    weight = torch.nn.Parameter(torch.zeros(3))
    model = torch.nn.Module()
    model.weight = weight
    optimizer = torch.optim.SGD([weight], lr=1.0)
    scheduler = WarmupDecay(warmup=4, total=10).scheduler(optimizer)  # lr 0.25, then 0.5
    optimizer_step(model, optimizer, scheduler, (weight * torch.tensor([30.0, 40.0, 0.0])).sum(), max_norm=1.0)
    assert weight.detach().tolist() == pytest.approx([-0.15, -0.2, 0.0])  # gradient norm 50 clipped to 1
    assert optimizer.param_groups[0]["lr"] == 0.5 and weight.grad is not None


# -- scoring ------------------------------------------------------------------------------------


def _memorised_model(tok, examples):
    """A tiny masked LM trained with the toolbox's pieces until it recalls ``examples``."""
    torch.manual_seed(0)
    model = new_masked_lm(tok, TINY)
    ids, labels = pad_rows(encode_slot_rows(tok, examples), tok.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scheduler = WarmupDecay(warmup=10, total=400, floor=0.1).scheduler(optimizer)
    r, c = (labels != IGNORE).nonzero(as_tuple=True)
    for _ in range(400):
        model.train()
        loss = torch.nn.functional.cross_entropy(slot_logits(model, model_inputs(ids, tok.pad_token_id), r, c),
                                                 labels[r, c])
        optimizer_step(model, optimizer, scheduler, loss)
        if loss.item() < 0.01:
            break
    return model


def test_recall_of_a_memorised_toy_set():
    tok = fact_tokenizer()
    examples = fact_examples()
    model = _memorised_model(tok, examples)
    model.train()
    assert recall_per_language(model, tok, examples, batch_size=3) == {"en": 1.0, "de": 1.0}
    assert model.training  # the mode is restored
    # the same facts asked with other (real, in-vocabulary) answers: nothing is recalled
    shifted = {lang: [facts[(i + 1) % 4][1] for i in range(4)] for lang, facts in FACTS.items()}
    assert recall_per_language(model, tok, fact_examples(shifted)) == {"en": 0.0, "de": 0.0}
    # one wrong answer in German only
    one_off = {lang: [o for _, o in facts] for lang, facts in FACTS.items()}
    one_off["de"][1] = "Oslo"
    assert recall_per_language(model, tok, fact_examples(one_off)) == {"en": 1.0, "de": 0.75}
    # slot_logits through the LM head alone equals the full model's logits at the slots
    ids, labels = pad_rows(encode_slot_rows(tok, examples), tok.pad_token_id)
    r, c = (labels != IGNORE).nonzero(as_tuple=True)
    inputs = model_inputs(ids, tok.pad_token_id)
    model.eval()
    with torch.no_grad():
        full = model(**inputs).logits[r, c]
        assert torch.allclose(slot_logits(model, inputs, r, c), full, atol=1e-5)
        assert torch.equal(slot_predictions(model, inputs, r, c), labels[r, c])


def test_accuracy_per_language():
    from transformers import BertForSequenceClassification

    tok = fact_tokenizer()
    torch.manual_seed(0)
    model = BertForSequenceClassification(bert_config(tok, TINY, num_labels=3)).eval()
    pairs = [Example(f"p{i}", lang, (f"{s} was born in {o} .", f"{s} is from {o} ."), None)
             for lang, facts in FACTS.items() for i, (s, o) in enumerate(facts)]
    from lime_toolkit.encoding import encode_examples

    with torch.no_grad():
        predicted = model(**encode_examples(tok, pairs, CLASSIFICATION).inputs).logits.argmax(-1).tolist()
    right = [Example(e.id, e.lang, e.text, p) for e, p in zip(pairs, predicted)]
    wrong = [Example(e.id, e.lang, e.text, (p + 1) % 3) for e, p in zip(pairs, predicted)]
    assert accuracy_per_language(model, tok, right, batch_size=3) == {"en": 1.0, "de": 1.0}
    assert accuracy_per_language(model, tok, wrong) == {"en": 0.0, "de": 0.0}
    mixed = right[:4] + wrong[4:6] + right[6:]
    assert accuracy_per_language(model, tok, mixed, device=torch.device("cpu")) == {"en": 1.0, "de": 0.5}


def test_share_per_language_keeps_first_seen_order():
    examples = [Example("a", "zh", "x"), Example("a", "en", "x"), Example("b", "zh", "x")]
    assert list(share_per_language(examples, [True, False, False]).items()) == [("zh", 0.5), ("en", 0.0)]


# -- prepared models ----------------------------------------------------------------------------


def _save(final, tok, info):
    torch.manual_seed(0)
    return save_prepared(final, new_masked_lm(tok, TINY), tok, "recall.json", info)


def test_save_and_find_prepared(tmp_path):
    tok = fact_tokenizer()
    root = tmp_path / "demo"
    first = _save(root / "k1" / "model", tok, {"recall": 0.5, "key": {"data": "d", "languages": ["en", "de"]}})
    assert is_prepared(first, "recall.json") and json.loads((first / "recall.json").read_text())["recall"] == 0.5
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".tmp")]  # nothing left behind
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    assert AutoTokenizer.from_pretrained(first).get_vocab() == tok.get_vocab()
    assert AutoModelForMaskedLM.from_pretrained(first).config.hidden_size == 32

    # partial entries: an info file without a model, and an interrupted build's temporary directory
    (root / "k2" / "model").mkdir(parents=True)
    (root / "k2" / "model" / "recall.json").write_text(json.dumps({"key": {"data": "d", "languages": ["en", "de"]}}))
    (root / "k3" / ".tmp-model-x").mkdir(parents=True)
    (root / "k3" / ".tmp-model-x" / "recall.json").write_text("{}")
    (root / "k4" / "model").mkdir(parents=True)
    (root / "k4" / "model" / "recall.json").write_text("not json")
    (root / "k4" / "model" / "config.json").write_text("{}")
    assert [p for p, _ in prepared_models(root, "recall.json")] == [first]
    assert not is_prepared(root / "k2" / "model", "recall.json")

    covers_en = lambda key: key.get("data") == "d" and {"en"} <= set(key.get("languages", []))  # noqa: E731
    assert find_prepared(root, "recall.json", exact=first) == first
    assert find_prepared(root, "recall.json", exact=root / "k2" / "model") is None  # exact must be complete
    assert find_prepared(root, "recall.json", exact=root / "k2" / "model", accept=covers_en) == first
    assert find_prepared(root, "recall.json", accept=lambda key: key.get("data") == "other") is None
    second = _save(root / "k5" / "model", tok, {"key": {"data": "d", "languages": ["en"]}})
    assert find_prepared(root, "recall.json", accept=covers_en) in (first, second)
    import os

    os.utime(first / "recall.json", (1, 1))  # the newest matching model wins
    assert find_prepared(root, "recall.json", accept=covers_en) == second


def test_claim_target(tmp_path):
    tok = fact_tokenizer()
    lines = []
    prepared = _save(tmp_path / "done", tok, {})
    assert claim_target(prepared, "recall.json", "toy model", lines.append) is True
    assert lines == [f"toy model already prepared: {prepared}"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_target(empty, "recall.json", "toy model", lines.append) is False and not empty.exists()
    assert claim_target(tmp_path / "new", "recall.json", "toy model", lines.append) is False
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_text("x")
    with pytest.raises(UserError, match="is not a prepared toy model; choose another --out or delete it"):
        claim_target(tmp_path / "junk", "recall.json", "toy model", lines.append)


def test_save_prepared_keeps_a_model_saved_first(tmp_path):
    tok = fact_tokenizer()
    final = _save(tmp_path / "model", tok, {"which": "first"})
    _save(final, tok, {"which": "second"})
    assert json.loads((final / "recall.json").read_text()) == {"which": "first"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# -- names --------------------------------------------------------------------------------------


def test_safe_key():
    from torch import nn

    names = ["bert.encoder.layer.1.output.dense.weight", "cls.predictions.transform.dense.weight"]
    keys = [safe_key(n) for n in names]
    assert keys == ["bert__encoder__layer__1__output__dense__weight", "cls__predictions__transform__dense__weight"]
    nn.ModuleDict({k: nn.Identity() for k in keys})  # accepted as module keys
    assert safe_key("en") == "en"


# -- the documentation --------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def _doc_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index("## A toolbox for dataset plugins"):text.index("## The mask strategy contract")]


def test_every_public_toolbox_function_is_documented():
    import importlib
    import inspect
    import pkgutil

    import lime_toolkit.toolbox as toolbox

    section = _doc_section()
    for info in pkgutil.iter_modules(toolbox.__path__):
        module = importlib.import_module(f"lime_toolkit.toolbox.{info.name}")
        assert (module.__doc__ or "").strip(), f"{info.name} has no module docstring"
        assert f"lime_toolkit.toolbox.{info.name}" in section
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                assert f"`{name}" in section, f"docs/plugins.md does not describe toolbox.{info.name}.{name}"
                assert (obj.__doc__ or "").strip(), f"toolbox.{info.name}.{name} has no docstring"


def test_the_documented_example_builds_a_model(tmp_path):
    from lime_toolkit.dataset_api import DatasetOptions
    from lime_toolkit.testing import ToyDataset

    block = _doc_section().split("```python\n")[1].split("```")[0]
    namespace: dict = {}
    exec(compile(block, "docs/plugins.md", "exec"), namespace)
    build = namespace["build_tiny_model"]
    lines: list[str] = []
    with pytest.raises(UserError, match="^tiny-facts setting steps='x' is not a valid integer$"):
        build(ToyDataset(DatasetOptions(extra={"steps": "x"})), tmp_path / "model", lines.append)
    out = build(ToyDataset(DatasetOptions(extra={"steps": "60"})), tmp_path / "model", lines.append)
    assert is_prepared(out, "recall.json") and lines[0].startswith("recall en ")
    assert json.loads((out / "recall.json").read_text())["settings"]["steps"] == 60
    assert build(ToyDataset(DatasetOptions(extra={"steps": "60"})), out, lines.append) == out
    assert lines[-1] == f"tiny-facts model already prepared: {out}"
