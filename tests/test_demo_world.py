"""The offline demo world: corpus generator, the ``demo`` dataset plugin and its tiny model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import BertTokenizer

from lime_toolkit.data import MASKED_LM, SPLITS, TARGET_SLOT
from lime_toolkit.dataset_api import DatasetOptions
from lime_toolkit.encoding import encode_examples
from lime_toolkit.errors import UserError
from lime_toolkit.registry import Component
from lime_toolkit.toolbox.scoring import recall_per_language
from lime_toolkit.toolbox.wordpiece import SPECIAL_TOKENS, bert_words, learn_vocabulary
from lime_toolkit_plugins import demo
from lime_toolkit_plugins.demo.corpus import DemoCorpus, DemoSettings
from lime_toolkit_plugins.demo.tiny_model import (
    build_demo_model,
    demo_model_dir,
    demo_tokenizer,
    read_recall,
    train_tokenizer,
)
from lime_toolkit_plugins.demo.vocabulary import LANGUAGES, RELATIONS

SMALL = DemoSettings.small()
SMALL_RECALL_THRESHOLD = 0.8


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIME_TOOLKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def small_model(tmp_path_factory):
    """The SMALL preset built once per session into a temporary cache; yields (cache, model dir)."""
    cache = tmp_path_factory.mktemp("demo-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIME_TOOLKIT_CACHE", str(cache))
        lines: list[str] = []
        model_dir = build_demo_model(SMALL, log=lines.append)
        assert lines, "the build reports progress through log"
        yield cache, model_dir


# -- corpus --------------------------------------------------------------------------------------


def test_generator_is_deterministic():
    assert DemoCorpus(SMALL).to_json().encode() == DemoCorpus(DemoSettings.small()).to_json().encode()
    assert DemoCorpus(SMALL).to_json() != DemoCorpus(DemoSettings.small(seed=1)).to_json()


def test_generator_does_not_touch_the_global_rng():
    import random

    random.seed(123)
    expected = random.random()
    random.seed(123)
    DemoCorpus(SMALL)
    assert random.random() == expected


def test_balanced_objects_deal_every_object_equally_often():
    from collections import Counter

    def spreads(world: DemoCorpus) -> list[int]:
        """Per relation: how many more facts its commonest object has than its rarest."""
        out = []
        for rel in world.relations:
            counts = Counter({o: 0 for o in range(world.n_objects(rel))})
            counts.update(f.obj for f in world.facts if f.relation == rel)
            out.append(max(counts.values()) - min(counts.values()))
        return out

    random_world, balanced = DemoCorpus(DemoSettings(objects="random")), DemoCorpus(DemoSettings())
    assert max(spreads(balanced)) <= 1
    assert max(spreads(random_world)) >= 5  # what "balanced" changes
    assert balanced.to_json() == DemoCorpus(DemoSettings()).to_json()
    assert DemoSettings().objects == "balanced"  # the default
    assert [f.id for f in balanced.facts] == [f.id for f in random_world.facts]  # the same facts, other objects
    assert [f.obj for f in balanced.facts] != [f.obj for f in random_world.facts]


def test_objects_setting_keys_the_cache_only_when_not_random():
    # the worlds made before the setting existed (random objects) keep their key
    assert "objects" not in DemoSettings(objects="random").key_dict()
    assert DemoSettings().key_dict()["objects"] == "balanced"
    with pytest.raises(UserError, match="unknown demo objects 'even'"):
        DemoSettings(objects="even").validate()


def test_languages_and_scripts():
    corpus = DemoCorpus(SMALL)
    assert corpus.languages == ["en", "de", "fr", "es", "ru", "zh"] == list(LANGUAGES)
    assert len(corpus.relations) >= 8
    subject = corpus.subjects[0]
    assert subject.name("en") == subject.name("de") == subject.name("fr") == subject.name("es")
    assert all("\u0400" <= ch <= "\u04ff" for ch in subject.name("ru") if ch.isalpha())
    assert all("\u4e00" <= ch <= "\u9fff" for ch in subject.name("zh") if ch != "·")
    names = [s.name("en") for s in corpus.subjects]
    assert len(set(names)) == len(names) == len({s.name("zh") for s in corpus.subjects})


def test_every_fact_in_every_language_linked_by_id():
    corpus = DemoCorpus(SMALL)
    facts = corpus.facts
    assert len(facts) == SMALL.n_subjects * len(SMALL.relations)
    assert [f.id for f in facts] == sorted(f.id for f in facts)
    assert len({f.id for f in facts}) == len(facts)
    assert {(f.subject, f.relation) for f in facts} == {
        (s.index, r) for s in corpus.subjects for r in corpus.relations
    }
    for fact in facts[:50]:
        for lang in corpus.languages:
            example = corpus.example(fact, lang)
            assert example.id == fact.id and example.lang == lang
            assert example.text.count(TARGET_SLOT) == 1 and "[X]" not in example.text
            assert corpus.subjects[fact.subject].name(lang) in example.text
            assert example.target == corpus.object_text(fact.relation, fact.obj, lang)


def test_split_by_subject():
    corpus = DemoCorpus(DemoSettings())
    by_split = {split: {f.subject for f in corpus.facts_in(split)} for split in SPLITS}
    assert not (by_split["train"] & by_split["dev"] or by_split["train"] & by_split["test"] or by_split["dev"] & by_split["test"])
    assert set().union(*by_split.values()) == set(range(corpus.settings.n_subjects))
    n = corpus.settings.n_subjects
    assert abs(len(by_split["train"]) - 0.8 * n) <= 1 and abs(len(by_split["test"]) - 0.1 * n) <= 1
    assert sum(len(corpus.facts_in(s)) for s in SPLITS) == len(corpus.facts)
    with pytest.raises(UserError):
        corpus.facts_in("validation")


# -- the dataset plugin --------------------------------------------------------------------------


def _dataset(**kwargs) -> demo.DemoDataset:
    extra = kwargs.pop("extra", {"preset": "small"})
    return demo.DemoDataset(DatasetOptions(extra=extra, **kwargs))


def test_edit_cases_are_parallel_counterfactuals():
    ds = _dataset()
    corpus = ds.corpus
    assert ds.task == MASKED_LM
    for split in SPLITS:
        cases = ds.edit_cases(split)
        assert [c.id for c in cases] == [f.id for f in corpus.facts_in(split)]
        for case in cases:
            fact = next(f for f in corpus.facts_in(split) if f.id == case.id)
            assert case.languages == list(LANGUAGES)
            new = case.meta["new_object_index"]
            assert new != fact.obj
            for lang, example in case.inputs.items():
                assert example.id == case.id and example.lang == lang
                assert example.target == corpus.object_text(fact.relation, new, lang)
                assert example.target != corpus.object_text(fact.relation, fact.obj, lang)
                assert example.target != case.meta["true_object"][lang]


def test_counterfactuals_follow_the_seed_and_cover_other_objects():
    targets = lambda seed: [c.meta["new_object_index"] for c in _dataset(seed=seed).edit_cases("train")]  # noqa: E731
    assert targets(0) == targets(0)
    assert targets(0) != targets(1)
    # uniform over the other objects: every object index turns up as a target somewhere
    assert len(set(targets(0))) >= 8


def test_options_languages_limit_and_extra():
    ds = _dataset(languages=["zh", "en"])
    assert ds.languages == ["zh", "en"]
    assert ds.edit_cases("dev")[0].languages == ["zh", "en"]
    with pytest.raises(UserError, match="valid: en, de, fr, es, ru, zh"):
        _dataset(languages=["en", "xx"])

    limited = _dataset(limit=5)
    cases = limited.edit_cases("train")
    assert len(cases) == 5 and [c.id for c in cases] == sorted(c.id for c in cases)
    assert [c.id for c in cases] == [c.id for c in _dataset(limit=5).edit_cases("train")]
    assert limited.describe() == {lang: {"train": 5, "dev": 5, "test": 5} for lang in LANGUAGES}

    assert _dataset(extra={"preset": "small", "n_subjects": "12"}).corpus.settings.n_subjects == 12
    assert _dataset(extra={}).settings == DemoSettings()
    with pytest.raises(UserError, match="unknown demo setting"):
        _dataset(extra={"n_subject": 3})
    with pytest.raises(UserError, match="preset"):
        _dataset(extra={"preset": "huge"})


def test_locality_pool(tmp_cache):
    ds = _dataset(languages=["en", "zh"])
    tokenizer = demo_tokenizer(ds.settings)  # cheap: the tokenizer only, no model
    pool = ds.locality_pool("test")
    assert list(pool) == ["en", "zh"]
    facts = ds.corpus.facts_in("test")
    for lang, examples in pool.items():
        assert [e.id for e in examples] == [f.id for f in facts]
        for fact, example in zip(facts, examples):
            assert example.target is None and TARGET_SLOT in example.text
            true = ds.corpus.object_text(fact.relation, fact.obj, lang)
            assert example.n_masks == len(tokenizer(true, add_special_tokens=False)["input_ids"])
    batch = encode_examples(tokenizer, pool["zh"][:8], MASKED_LM)
    assert int((batch.labels == -100).sum()) == sum(e.n_masks for e in pool["zh"][:8])
    assert not demo_model_dir(ds.settings).exists()  # the pool needs the tokenizer only

    # With the run's tokenizer bound (another --model), masks are counted in its word pieces: here a
    # character-level WordPiece vocabulary, in which most objects take several pieces.
    corpus = DemoCorpus(DemoSettings.small())
    chars = learn_vocabulary(bert_words([corpus.sentence(f, l) for f in corpus.facts for l in corpus.languages]
                                        + [w for _, objs in RELATIONS.values() for ws in objs.values() for w in ws]),
                             0, SPECIAL_TOKENS)
    coarse = BertTokenizer(vocab=chars, do_lower_case=False, strip_accents=False)
    ds.bind_tokenizer(coarse)
    bound = ds.locality_pool("test")["en"]
    expected = [len(coarse(ds.corpus.object_text(f.relation, f.obj, "en"), add_special_tokens=False)["input_ids"]) for f in facts]
    assert [e.n_masks for e in bound] == expected != [e.n_masks for e in pool["en"]]


def test_hook_registers_the_dataset():
    registered = {}
    demo.register_datasets(lambda name, obj, description="": registered.update({name: (obj, description)}))
    assert registered["demo"][0] == "lime_toolkit_plugins.demo.dataset:DemoDataset"  # registered lazily
    assert Component("demo", registered["demo"][0], "demo").obj is demo.DemoDataset
    assert registered["demo"][1] == demo.DemoDataset.description
    assert demo.LIME_TOOLKIT_API == "1"


# -- the tiny model ------------------------------------------------------------------------------


def _load_model(model_dir: Path):
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(model_dir)


def test_tokenizer_is_deterministic_and_cased():
    corpus = DemoCorpus(SMALL)
    first, second = train_tokenizer(corpus), train_tokenizer(corpus)
    assert first.get_vocab() == second.get_vocab()
    assert first.mask_token == "[MASK]" and first.pad_token_id == 0
    assert first.tokenize("Warsaw") == ["Warsaw"]
    zh_object = corpus.object_text("born_in", 0, "zh")
    assert first.tokenize(zh_object) == [zh_object]  # one added token, not one per character
    zh_name = corpus.subjects[0].name("zh")
    assert first.tokenize(zh_name) == [ch for ch in zh_name]  # names stay split into characters


def test_build_is_reproducible(tmp_cache):
    tiny = DemoSettings.small(n_subjects=6, max_epochs=2)
    first = build_demo_model(tiny, log=lambda _: None)
    state = {k: v.clone() for k, v in _load_model(first).state_dict().items()}
    second = build_demo_model(tiny, log=lambda _: None, force=True)
    assert first == second
    again = _load_model(second).state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)


def test_interrupted_build_leaves_no_model(tmp_cache):
    settings = DemoSettings.small(n_subjects=6, max_epochs=4, eval_every=1)

    def fail(line: str) -> None:
        if line.startswith("epoch 2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_demo_model(settings, log=fail)
    final = demo_model_dir(settings)
    assert not final.exists()
    assert not [p for p in final.parent.iterdir() if p.name.startswith(".tmp-")]
    assert read_recall(settings) is None


@pytest.mark.slow
def test_small_model_saves_reloads_and_recalls(small_model):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    cache, model_dir = small_model
    assert model_dir == cache / "demo" / model_dir.parent.name / "model"
    info = json.loads((model_dir / "recall.json").read_text())
    assert set(info["recall"]) == set(LANGUAGES)
    assert min(info["recall"].values()) >= SMALL_RECALL_THRESHOLD, info["recall"]
    assert info["settings"] == SMALL.key_dict()

    model = AutoModelForMaskedLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # transformers does not save the attention implementation: ask for eager when loading
    eager = AutoModelForMaskedLM.from_pretrained(model_dir, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    corpus = DemoCorpus(SMALL)
    zh_name = corpus.subjects[0].name("zh")
    assert tokenizer.tokenize(zh_name) == list(zh_name)  # Chinese characters split as BERT does
    for text in ("Paris Lisbonne", "Лиссабон Москва", "Moscú Ägypten"):  # cased, accents kept
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text

    examples = [corpus.example(f, lang) for f in corpus.facts for lang in corpus.languages]
    assert recall_per_language(model, tokenizer, examples) == pytest.approx(info["recall"])
    assert recall_per_language(eager, tokenizer, examples) == pytest.approx(info["recall"])


@pytest.mark.slow
def test_dataset_uses_the_cached_model(small_model, monkeypatch, tmp_path):
    cache, model_dir = small_model
    monkeypatch.setenv("LIME_TOOLKIT_CACHE", str(cache))
    ds = _dataset()
    logged: list[str] = []
    ds.log = logged.append
    assert ds.default_model() == str(model_dir)
    assert not logged  # cached: nothing was rebuilt
    out = ds.prepare_base_model(tmp_path / "copy", progress=logged.append)
    assert out == tmp_path / "copy" and (out / "recall.json").is_file() and (out / "config.json").is_file()
    assert build_demo_model(SMALL, log=logged.append) == model_dir
