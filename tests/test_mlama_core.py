"""The mlama ``core`` preset (the default): its world (languages, scripts, closed-set relations,
facts present in every language), the leak-free edits (the unedited model never already predicts
the target; the target has the true object's piece count in every language), the ``full`` preset
one option away, and ``prepare-base --json``.

World tests read the real shared copy (../shared/data/mlama or $LIME_TOOLKIT_SHARED_DATA/mlama)
and skip with a reason when it is absent.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from test_mlama import REAL, needs_real, write_mlama_fixture

from lime_toolkit.dataset_api import DatasetOptions
from lime_toolkit.errors import UserError
from lime_toolkit.toolbox.prepared import read_report
from lime_toolkit_plugins.mlama.dataset import MlamaDataset
from lime_toolkit_plugins.mlama.preset import CORE_LANGUAGES, CORE_RELATIONS, MIN_OBJECT_FACTS, SCRIPTS
from lime_toolkit_plugins.mlama.settings import MlamaSettings


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlama-core-cache")  # the parsed languages are shared by the tests


def core(cache: Path, **kw) -> MlamaDataset:
    return MlamaDataset(DatasetOptions(data_dir=REAL, cache_dir=cache, **kw))


@pytest.mark.realdata
@needs_real
def test_core_is_the_default_world_of_eight_languages_and_closed_set_relations(cache):
    ds = core(cache)
    assert ds.settings.preset == "core" and ds.languages == list(CORE_LANGUAGES)
    assert len(ds.languages) >= 8 and len({SCRIPTS[l] for l in ds.languages}) >= 3
    index = ds.index
    facts = [index["facts"][u] for u in index["order"]]
    assert 500 <= len(facts) <= 2000
    assert {f.relation for f in facts} <= set(CORE_RELATIONS)
    for lang in ds.languages:  # every fact in every language
        assert set(index["labels"][lang]) == set(index["order"])
    for rel in {f.relation for f in facts}:
        objects = {f.obj_uri for f in facts if f.relation == rel}
        assert len(objects) >= 2  # a counterfactual exists
        for lang in ds.languages:  # one label per object, no two objects alike
            labels = index["objects"][lang][rel]
            assert set(labels) == objects and len(set(labels.values())) == len(objects)
    questions = Counter((l, ds.prompt(l, f)) for f in facts for l in ds.languages)
    assert max(questions.values()) == 1  # no question has two answers
    # a closed set: every object answers several facts of the release's eight-language part
    per_object = Counter((f.relation, f.obj_uri) for f in facts)
    assert sum(n >= MIN_OBJECT_FACTS for n in per_object.values()) > len(per_object) / 2
    subset = core(cache, languages=["ja", "en"])  # --langs picks languages, not another world
    assert subset.languages == ["ja", "en"] and subset.index["order"] == index["order"]
    assert subset.describe()["ja"]["all"] == len(facts)


@pytest.mark.realdata
@needs_real
def test_core_rejects_languages_outside_it_and_full_is_one_option_away(cache):
    with pytest.raises(UserError, match=r"core preset has languages .* not hi; .*--set dataset_options.preset=full"):
        core(cache, languages=["en", "hi"]).languages
    full = core(cache, languages=["en", "hi"], extra={"preset": "full"})
    assert full.languages == ["en", "hi"] and len(full.index["order"]) > 30000
    with pytest.raises(UserError, match="unknown mlama preset 'big'"):
        core(cache, extra={"preset": "big"})


def test_full_keys_its_models_as_before_the_presets():
    before = {"model_languages", "vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
              "max_epochs", "max_minutes", "batch_size", "learning_rate", "random_mask_prob", "recall_sample",
              "builder_version"}
    full, _ = MlamaSettings.from_extra({"preset": "full"})
    assert set(full.model_dict()) == before and full.hidden_size == 64 and full.num_layers == 2
    core_settings, _ = MlamaSettings.from_extra({})
    assert core_settings.preset == "core" and core_settings.model_dict()["preset"] == "core"


def test_core_needs_its_languages_in_the_data(tmp_path):
    mini = write_mlama_fixture(tmp_path / "data")
    ds = MlamaDataset(DatasetOptions(data_dir=mini, cache_dir=tmp_path / "cache"))
    with pytest.raises(UserError, match=r"core preset needs languages .* lacks es, ru, zh, ar, ja; set dataset_options."
                                        r"preset=full \(--set dataset_options.preset=full\)"):
        ds.describe()


def random_predictor(ds: MlamaDataset, tokenizer):
    """The run's predictor (argmax per mask, decoded) on a random model over ``tokenizer``."""
    from lime_toolkit.data import MASKED_LM
    from lime_toolkit.encoding import encode_examples
    from lime_toolkit.models import decode_predictions, position_logits
    from lime_toolkit.toolbox.masked_lm import new_masked_lm

    torch.manual_seed(0)
    model = new_masked_lm(tokenizer, ds.settings).eval()

    def predict(examples):
        out = []
        for i in range(0, len(examples), 256):
            batch = encode_examples(tokenizer, examples[i:i + 256], MASKED_LM)
            with torch.no_grad():
                out += decode_predictions(tokenizer, batch, position_logits(model, batch).argmax(-1))
        return out

    return predict


@pytest.mark.realdata
@needs_real
def test_core_edits_are_leak_free_for_the_prepared_tokenizer(cache):
    """Every object is one token of the core tokenizer, and no target is what the unedited model
    (here: an untrained one, whose answers are objects by chance) predicts in any language."""
    from lime_toolkit_plugins.mlama.core_edits import same_label
    from lime_toolkit_plugins.mlama.core_model import core_examples, core_tokenizer

    ds = core(cache, extra={"vocab_size": 800})
    tokenizer = core_tokenizer(ds, core_examples(ds)[0])
    ds.bind_tokenizer(tokenizer)
    labels = {label for lang in ds.languages for objs in ds.index["objects"][lang].values() for label in objs.values()}
    assert all(len(tokenizer(label, add_special_tokens=False)["input_ids"]) == 1 for label in labels)
    predict = random_predictor(ds, tokenizer)
    predicted_any = 0
    cases = ds.edit_cases("dev", predict=predict)
    assert len(cases) > 0.9 * len(ds.items("dev"))
    for case in cases:
        predicted_any += bool(case.meta["predicted_obj_uris"])
        assert set(case.inputs) == set(ds.languages)
        assert case.meta["new_obj_uri"] not in case.meta["predicted_obj_uris"]
        assert case.meta["new_obj_uri"] != case.meta["true_obj_uri"]
        assert all({l: ex.target for l, ex in case.inputs.items()} != alt for alt in case.alternatives)
    answers = predict([replace(ex, target=c.meta["true_object"][l]) for c in cases for l, ex in c.inputs.items()])
    targets = [ex.target for c in cases for ex in c.inputs.values()]
    assert not any(same_label(a, t) for a, t in zip(answers, targets))  # never already predicted
    assert predicted_any > 0  # the random model does name objects: the exclusion was exercised


@pytest.mark.realdata
@needs_real
def test_core_targets_keep_the_true_objects_piece_count_in_every_language(cache):
    """With a tokenizer that splits labels (as mBERT's does: Chinese labels into characters), the
    mask count reveals nothing: a language where no counterfactual has the true object's count is
    left out of the case rather than asked with a telling number of masks."""
    from lime_toolkit.data import TARGET_SLOT
    from lime_toolkit.toolbox.wordpiece import train_wordpiece
    from lime_toolkit_plugins.mlama.core_model import core_examples

    ds = core(cache)
    native, _ = core_examples(ds)
    tokenizer = train_wordpiece((ex.text.replace(TARGET_SLOT, ex.target) for ex in native), 2000)
    ds.bind_tokenizer(tokenizer)

    def pieces(label: str) -> int:
        return len(tokenizer(label, add_special_tokens=False)["input_ids"])

    cases = ds.edit_cases("test")
    assert len(cases) > 0.8 * len(ds.items("test"))
    counts, dropped = Counter(), 0
    for case in cases:
        assert set(case.inputs) | set(case.meta.get("dropped_languages", [])) == set(ds.languages)
        dropped += "dropped_languages" in case.meta
        for lang, ex in case.inputs.items():
            assert pieces(ex.target) == pieces(case.meta["true_object"][lang])
            counts[pieces(ex.target)] += 1
        for alt in case.alternatives:
            assert all(pieces(alt[l]) == pieces(case.meta["true_object"][l]) for l in case.inputs)
    assert len(counts) > 1 and dropped > 0  # labels of several lengths: the constraint did bind


def test_read_report_finds_recall_or_accuracy(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "accuracy.json").write_text(json.dumps({"accuracy": {"en": 0.7}, "train_seconds": 12.5}))
    assert read_report(tmp_path / "a") == ({"en": 0.7}, 12.5)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "recall.json").write_text(json.dumps({"recall": {"de": 1, "en": 0.5}, "build_seconds": 3}))
    assert read_report(tmp_path / "b") == ({"de": 1.0, "en": 0.5}, 3.0)
    assert read_report(tmp_path) is None


def test_prepare_base_json_writes_the_figure_per_language(tmp_path, monkeypatch):
    from lime_toolkit.cli.app import cli

    mini = write_mlama_fixture(tmp_path / "data")
    monkeypatch.setenv("LIME_TOOLKIT_CACHE", str(tmp_path / "cache"))
    tiny = ["preset=full", "vocab_size=300", "hidden_size=16", "intermediate_size=32", "max_epochs=1",
            "batch_size=16", "recall_sample=20"]
    args = ["prepare-base", "--dataset", "mlama", "--data-dir", str(mini), "--langs", "en,de",
            "--json", str(tmp_path / "report.json")]
    for item in tiny:
        args += ["--set", f"dataset_options.{item}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert set(report) == {"languages", "build_s"} and list(report["languages"]) == ["en", "de"]
    assert all(0 <= v <= 1 for v in report["languages"].values()) and report["build_s"] >= 0
    model = Path(result.output.strip().splitlines()[-1])
    info = json.loads((model / "recall.json").read_text(encoding="utf-8"))
    assert report["languages"] == info["recall"]


def test_prepare_base_json_reads_xnli_accuracy(tmp_path, monkeypatch):
    """The same --json for a classification dataset: its accuracy per language."""
    from test_xnli import TINY, write_jsonl_fixture

    from lime_toolkit.cli.app import cli

    data = write_jsonl_fixture(tmp_path / "x")
    monkeypatch.setenv("LIME_TOOLKIT_CACHE", str(tmp_path / "cache"))
    args = ["prepare-base", "--dataset", "xnli", "--data-dir", str(data), "--json", str(tmp_path / "report.json")]
    for key, value in TINY.items():
        args += ["--set", f"dataset_options.{key}={value}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert set(report) == {"languages", "build_s"} and set(report["languages"]) == {"de", "en"}
    assert all(0 <= v <= 1 for v in report["languages"].values()) and report["build_s"] >= 0


@pytest.mark.realdata
@needs_real
def test_core_model_builds_and_reports_recall_per_language(cache):
    """A tiny budget: the build runs end to end, saves the tokenizer whose objects are one token each,
    writes recall over every fact per language, and is found as the run's default model."""
    from lime_toolkit.toolbox.prepared import is_prepared

    tiny = {"vocab_size": 600, "hidden_size": 16, "num_heads": 2, "intermediate_size": 32, "num_layers": 2,
            "max_epochs": 1, "batch_size": 256}
    ds = core(cache, languages=["en", "zh"], extra=tiny)
    lines: list[str] = []
    out = ds.prepare_base_model(progress=lines.append)
    assert is_prepared(out, "recall.json") and out == ds.model_dir()
    info = json.loads((out / "recall.json").read_text(encoding="utf-8"))
    assert list(info["recall"]) == ["en", "zh"] and info["n_facts"] == len(ds.index["order"])
    assert info["epochs"] == 1 and info["key"]["preset"] == "core"
    assert read_report(out) == (info["recall"], info["build_seconds"])
    assert ds.default_model() == str(out)
    assert lines[0].startswith("mlama core world:") and lines[-1] == f"saved the mlama base model to {out}"


@pytest.mark.slow
@pytest.mark.realdata
@needs_real
def test_train_with_a_model_directory(tmp_path, monkeypatch):
    """``--model DIR`` (a user's own masked LM, as mBERT on disk) runs the core world unchanged: the
    same dataset code and protocol, with that model's tokenizer deciding the piece counts. Here a
    randomly initialised small BERT with a WordPiece vocabulary of its own, saved to a directory."""
    import yaml
    from transformers import BertConfig, BertForMaskedLM

    from lime_toolkit.cli.app import cli
    from lime_toolkit.data import TARGET_SLOT
    from lime_toolkit.toolbox.wordpiece import train_wordpiece
    from lime_toolkit_plugins.mlama.core_model import core_examples

    monkeypatch.setenv("LIME_TOOLKIT_CACHE", str(tmp_path / "cache"))
    native, _ = core_examples(core(tmp_path / "cache"))
    tokenizer = train_wordpiece((ex.text.replace(TARGET_SLOT, ex.target) for ex in native), 3000)
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64))
    user_model = tmp_path / "my-bert"
    model.save_pretrained(user_model)
    tokenizer.save_pretrained(user_model)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "--dataset", "mlama", "--data-dir", str(REAL), "--model", str(user_model), "--device", "cpu",
        "--max-steps", "2", "--set", "train.val_every=1", "--set", "train.val_edits=2",
        "--set", "eval.max_edits=2", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["model"] == str(user_model)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["per_language"]) == set(CORE_LANGUAGES)
    assert not list((tmp_path / "cache").glob("mlama/*/model"))  # no base model of the dataset's was built
