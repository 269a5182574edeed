"""The mlama dataset: the release layout, facts linked by uuid, the subject-level split, desired
objects that are one entity across languages, [MASK] counts, all-masks-right accuracy, errors that
name file and line.

A mini mLAMA tree is written into tmp_path; the real shared copy (../shared/data/mlama, or
$LIME_TOOLKIT_SHARED_DATA/mlama) is used when present and skipped with a reason otherwise.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from lime_toolkit.data import MASKED_LM, SPLITS, TARGET_SLOT
from lime_toolkit.dataset_api import DatasetOptions
from lime_toolkit.encoding import encode_examples
from lime_toolkit.errors import UserError
from lime_toolkit.evaluation import per_example
from lime_toolkit_plugins.mlama.dataset import MlamaDataset, estimate_pieces


def shared_data() -> Path:
    env = os.environ.get("LIME_TOOLKIT_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


REAL = shared_data() / "mlama"
needs_real = pytest.mark.skipif(not (REAL / "mlama1.1" / "en" / "templates.jsonl").is_file(),
                                reason=f"the shared mLAMA copy is not at {REAL} (set LIME_TOOLKIT_SHARED_DATA)")

TEMPLATES = {
    "en": {"P19": "[X] was born in [Y] .", "P36": "The capital of [X] is [Y] .", "P54": "[X] plays for [Y] ."},
    "de": {"P19": "[X] wurde in [Y] geboren .", "P36": "Die Hauptstadt von [X] ist [Y] .", "P54": "[X] spielt für [Y] ."},
    "fr": {"P19": "[X] est né à [Y] .", "P36": "La capitale de [X] est [Y] .", "P54": "[X] joue pour [Y] ."},
}
CITIES = {  # obj_uri -> label per language (some multi-word)
    "Q60": {"en": "New York City", "de": "New York", "fr": "New York"},
    "Q64": {"en": "Berlin", "de": "Berlin", "fr": "Berlin"},
    "Q90": {"en": "Paris", "de": "Paris", "fr": "Paris"},
    "Q220": {"en": "Rome", "de": "Rom", "fr": "Rome"},
    "Q1492": {"en": "Barcelona", "de": "Barcelona", "fr": "Barcelone"},
    "Q84": {"en": "London", "de": "London", "fr": "Londres"},
}
COUNTRIES = {"Q183": ("Germany", "Deutschland", "Allemagne", "Q64"), "Q142": ("France", "Frankreich", "France", "Q90"),
             "Q38": ("Italy", "Italien", "Italie", "Q220"), "Q145": ("United Kingdom", "Vereinigtes Königreich",
                                                                     "Royaume-Uni", "Q84")}
LANG_INDEX = {"en": 0, "de": 1, "fr": 2}
N_PEOPLE = 40


def people_facts(lang: str) -> list[dict]:
    """P19 facts for 40 people (German lacks every fifth person); person i is born in city i % 6."""
    cities = sorted(CITIES)
    rows = []
    for i in range(N_PEOPLE):
        if lang == "de" and i % 5 == 4:
            continue
        city = cities[i % len(cities)]
        rows.append({"sub_uri": f"Q{1000 + i}", "obj_uri": city, "obj_label": CITIES[city][lang],
                     "sub_label": f"Person{i}", "lineid": i, "uuid": f"u-P19-{i}"})
    return rows


def capital_facts(lang: str) -> list[dict]:
    rows = []
    for lineid, (country, (*labels, capital)) in enumerate(sorted(COUNTRIES.items())):
        rows.append({"sub_uri": country, "obj_uri": capital, "obj_label": CITIES[capital][lang],
                     "sub_label": labels[LANG_INDEX[lang]], "lineid": lineid, "uuid": f"u-P36-{lineid}"})
    return rows


def write_mlama_fixture(root: Path, langs=("de", "en", "fr")) -> Path:
    """``root/mlama1.1/<lang>/``: templates for P19, P36, P54 (P54 without a facts file)."""
    for lang in langs:
        folder = root / "mlama1.1" / lang
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "templates.jsonl", "w", encoding="utf-8") as fh:
            for rel, template in TEMPLATES[lang].items():
                fh.write(json.dumps({"relation": rel, "template": template}, ensure_ascii=False) + "\n")
        for rel, rows in (("P19", people_facts(lang)), ("P36", capital_facts(lang))):
            with open(folder / f"{rel}.jsonl", "w", encoding="utf-8") as fh:
                for row in reversed(rows):  # files out of order: the dataset sorts by lineid
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return root


def dataset(data_dir, tmp_path, **kw) -> MlamaDataset:
    """The whole release (``preset: full``, as before the core preset existed) unless ``extra`` says."""
    extra = {"preset": "full", **kw.pop("extra", {})}
    return MlamaDataset(DatasetOptions(data_dir=data_dir, cache_dir=tmp_path / "cache", extra=extra, **kw))


def tokenizer_for(ds: MlamaDataset):
    from lime_toolkit.toolbox.wordpiece import train_wordpiece
    from lime_toolkit_plugins.mlama.base_model import fact_examples

    texts = [ex.text.replace(TARGET_SLOT, str(ex.target)) for ex in fact_examples(ds, ds.languages)]
    texts += [label for labels in CITIES.values() for label in labels.values()]
    return train_wordpiece(texts, 400)


@pytest.fixture
def mini(tmp_path) -> Path:
    return write_mlama_fixture(tmp_path / "data")


def test_layout_languages_and_counts(mini, tmp_path):
    ds = dataset(mini, tmp_path)
    assert ds.task == MASKED_LM
    assert ds.languages == ["de", "en", "fr"]  # alphabetical (the release's directory order)
    assert dataset(mini / "mlama1.1", tmp_path).languages == ["de", "en", "fr"]  # either folder works
    assert dataset(mini, tmp_path, languages=["fr", "en"]).languages == ["fr", "en"]  # given order
    counts = ds.describe()
    assert counts["en"]["all"] == N_PEOPLE + 4 and counts["de"]["all"] == N_PEOPLE - 8 + 4
    assert all(sum(v[s] for s in SPLITS) == v["all"] for v in counts.values())
    # P54 has a template but no facts file: skipped
    assert {c.meta["relation"] for s in SPLITS for c in ds.edit_cases(s)} == {"P19", "P36"}


def test_split_is_leak_free_at_the_subject_level(mini, tmp_path):
    ds = dataset(mini, tmp_path)
    subjects = {s: {c.meta["sub_uri"] for c in ds.edit_cases(s)} for s in SPLITS}
    assert not (subjects["train"] & subjects["dev"] or subjects["train"] & subjects["test"]
                or subjects["dev"] & subjects["test"])
    sizes = ds.split_sizes()
    assert sum(sizes[s]["facts"] for s in SPLITS) == N_PEOPLE + 4  # nothing dropped
    assert sizes["train"]["facts"] > sizes["dev"]["facts"] and sizes["train"]["facts"] > sizes["test"]["facts"]
    # the split does not depend on the language selection
    en_only = dataset(mini, tmp_path, languages=["en"])
    assert {c.id for c in en_only.edit_cases("test")} == {c.id for c in ds.edit_cases("test")}


def test_cases_are_sorted_parallel_and_ask_for_one_entity(mini, tmp_path):
    ds = dataset(mini, tmp_path)
    for split in SPLITS:
        cases = ds.edit_cases(split)
        keys = [(c.meta["relation"], c.meta["lineid"]) for c in cases]
        assert keys == sorted(keys)
        for case in cases:
            new = case.meta["new_obj_uri"]
            assert new != case.meta["true_obj_uri"]
            for lang, ex in case.inputs.items():
                assert ex.id == case.id and ex.lang == lang
                assert ex.target == CITIES[new][lang]  # the same entity in every language
                assert ex.target != case.meta["true_object"][lang]
                assert ex.text.count(TARGET_SLOT) == 1 and "[X]" not in ex.text
    person4 = next(c for s in SPLITS for c in ds.edit_cases(s) if c.id == "u-P19-4")
    assert set(person4.inputs) == {"en", "fr"}  # German lacks this fact
    assert person4.inputs["en"].text == "Person4 was born in [Y] ."
    again = dataset(mini, tmp_path)
    assert [c.inputs for c in again.edit_cases("train")] == [c.inputs for c in ds.edit_cases("train")]


def test_mask_counts_follow_word_pieces(mini, tmp_path):
    ds = dataset(mini, tmp_path)
    tokenizer = tokenizer_for(ds)
    ds.bind_tokenizer(tokenizer)
    cases = ds.edit_cases("train")
    examples = [ex for c in cases for ex in c.inputs.values()]
    batch = encode_examples(tokenizer, examples, MASKED_LM)
    for i, ex in enumerate(examples):
        n = int((batch.rows == i).sum())
        assert n == len(tokenizer(ex.target, add_special_tokens=False)["input_ids"])
    assert any(len(tokenizer(ex.target, add_special_tokens=False)["input_ids"]) > 1 for ex in examples)
    # locality inputs: k masks, k from the language's object lengths under this tokenizer
    pool = ds.locality_pool("train")
    for lang, items in pool.items():
        lengths = set(ds.object_lengths(lang))
        assert items and all(ex.target is None and ex.n_masks in lengths for ex in items)
        enc = encode_examples(tokenizer, items, MASKED_LM)
        assert [int((enc.rows == i).sum()) for i in range(len(items))] == [ex.n_masks for ex in items]
    assert ds.object_lengths("en").count(3) or ds.object_lengths("en").count(2)  # "New York City"


def test_tokenizer_free_length_estimate():
    assert estimate_pieces("Berlin") == 1
    assert estimate_pieces("New York City") == 3
    assert estimate_pieces("Saint-Denis") == 3
    assert estimate_pieces("迪拜酋长国") == 5


def test_a_sentence_counts_only_when_every_mask_is_right(mini, tmp_path):
    ds = dataset(mini, tmp_path)
    tokenizer = tokenizer_for(ds)
    case = next(c for c in ds.edit_cases("train") + ds.edit_cases("dev") + ds.edit_cases("test")
                if len(tokenizer(c.inputs["en"].target, add_special_tokens=False)["input_ids"]) > 1)
    examples = [case.inputs["en"], next(c for c in ds.edit_cases("train") if c.id != case.id).inputs["en"]]
    batch = encode_examples(tokenizer, examples, MASKED_LM)
    flags = torch.ones_like(batch.labels, dtype=torch.bool)
    assert per_example(flags, batch.rows, 2) == [True, True]
    first = (batch.rows == 0).nonzero(as_tuple=True)[0]
    flags[first[-1]] = False  # one of the multi-piece target's masks wrong
    assert per_example(flags, batch.rows, 2) == [False, True]


def test_limit_is_stable_and_bounds_pool(mini, tmp_path):
    a = dataset(mini, tmp_path, limit=5)
    cases = a.edit_cases("train")
    assert len(cases) == 5
    assert [c.id for c in dataset(mini, tmp_path, limit=5).edit_cases("train")] == [c.id for c in cases]
    ids = {c.id for c in cases}
    assert all(ex.id in ids for items in a.locality_pool("train").values() for ex in items)


def test_parsed_languages_are_cached(mini, tmp_path):
    dataset(mini, tmp_path).describe()
    assert len(list((tmp_path / "cache" / "mlama" / "parsed").glob("*.json"))) == 3


def test_the_linked_languages_are_one_cached_file_read_alone(mini, tmp_path, monkeypatch):
    from lime_toolkit_plugins.mlama import reader

    first = dataset(mini, tmp_path)
    cases, pool = first.edit_cases("test"), first.locality_pool("test")
    assert len(list((tmp_path / "cache" / "mlama" / "linked").glob("*.json"))) == 1

    def no_parse(*args, **kwargs):
        raise AssertionError("the cached path parsed a language")
    monkeypatch.setattr(reader, "parse_language", no_parse)
    monkeypatch.setattr(reader.LanguageData, "from_json", no_parse)  # nor read a per-language cache
    again = dataset(mini, tmp_path)
    assert again.edit_cases("test") == cases and again.locality_pool("test") == pool
    assert again.index["order"] == first.index["order"] and again.index["labels"] == first.index["labels"]
    assert again.index["objects"] == first.index["objects"]
    monkeypatch.undo()
    with open(mini / "mlama1.1" / "fr" / "P36.jsonl", "a", encoding="utf-8") as fh:  # a changed file: a new key
        fh.write(json.dumps({"sub_uri": "Q9", "obj_uri": "Q90", "obj_label": "Nouvelle", "sub_label": "Pays",
                             "lineid": 999, "uuid": "fr-only-999"}) + "\n")
    changed = dataset(mini, tmp_path)
    assert "fr-only-999" in changed.index["labels"]["fr"]
    assert len(list((tmp_path / "cache" / "mlama" / "linked").glob("*.json"))) == 2


def test_malformed_row_names_file_and_line(mini, tmp_path):
    path = mini / "mlama1.1" / "fr" / "P36.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[1])
    del row["obj_label"]
    lines[1] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"fr/P36\.jsonl:2: malformed mLAMA row: missing obj_label"):
        dataset(mini, tmp_path).describe()
    lines[1] = "[1, 2"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"fr/P36\.jsonl:2: malformed mLAMA row: not JSON"):
        dataset(mini, tmp_path, languages=["fr"]).edit_cases("train")


def test_missing_directory_language_and_facts(mini, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        dataset(tmp_path / "nowhere", tmp_path)
    with pytest.raises(UserError, match="no --data-dir"):
        dataset(None, tmp_path)
    with pytest.raises(UserError, match=r"no language\(s\) xx in .*available: de, en, fr"):
        dataset(mini, tmp_path, languages=["en", "xx"]).languages
    empty = mini / "mlama1.1" / "eo"
    empty.mkdir()
    (empty / "templates.jsonl").write_text(json.dumps({"relation": "P19", "template": "[X] naskiĝis en [Y] ."}) + "\n",
                                           encoding="utf-8")
    with pytest.raises(UserError, match="'eo' .* has no facts"):
        dataset(mini, tmp_path, languages=["eo"]).edit_cases("train")


def test_default_model_says_how_to_prepare(mini, tmp_path):
    with pytest.raises(UserError, match="prepare-base --dataset mlama"):
        dataset(mini, tmp_path).default_model()


def test_prepare_base_builds_reuses_and_serves_a_language_subset(mini, tmp_path):
    tiny = {"vocab_size": "300", "hidden_size": "16", "intermediate_size": "32", "max_epochs": "2",
            "batch_size": "16", "recall_sample": "20"}
    lines: list[str] = []
    ds = dataset(mini, tmp_path, languages=["en", "de"], extra=tiny)
    out = ds.prepare_base_model(progress=lines.append)
    assert out == ds.model_dir() and (out / "config.json").is_file()
    info = json.loads((out / "recall.json").read_text(encoding="utf-8"))
    assert list(info["recall"]) == ["en", "de"] and info["epochs"] == 2
    assert info["key"] == json.loads(json.dumps(ds.model_key()))  # as JSON: tuples are lists
    assert all(0 <= r <= 1 for r in info["recall"].values())
    assert ds.default_model() == str(out)
    assert ds.prepare_base_model(progress=lines.append) == out and lines[-1].endswith(f"already prepared: {out}")
    assert dataset(mini, tmp_path, languages=["de"], extra=tiny).default_model() == str(out)
    with pytest.raises(UserError, match=r"cover only en,de, not all of en, fr"):
        dataset(mini, tmp_path, languages=["en", "fr"], extra=tiny).default_model()


# -- the real shared copy -------------------------------------------------------------------------


@pytest.mark.realdata
@needs_real
def test_real_mlama_languages_counts_and_leak_free_split(tmp_path):
    ds = MlamaDataset(DatasetOptions(data_dir=REAL, languages=["en", "af", "zh"], cache_dir=tmp_path,
                                     extra={"preset": "full"}))
    assert len(ds.available_languages()) == 53
    counts = ds.describe()
    assert counts["en"]["all"] == 37498 and counts["af"]["all"] == 7353
    seen: dict[str, str] = {}
    for split in SPLITS:
        for case in ds.edit_cases(split):
            assert seen.setdefault(case.meta["sub_uri"], split) == split
            assert len({ex.id for ex in case.inputs.values()}) == 1
    sizes = ds.split_sizes()
    total = sum(sizes[s]["facts"] for s in SPLITS)
    assert 0.75 < sizes["train"]["facts"] / total < 0.85
