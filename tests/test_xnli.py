"""The xnli dataset: sources (jsonl, XNLI-1.0 TSV, hub fail-fast), parallelism, labels, the
premise-group split, test edits from the base model's errors, errors that name file and line.

Small fixtures are written into tmp_path; the real shared copy (../shared/data/xnli, or
$LIME_TOOLKIT_SHARED_DATA/xnli) is used when present and skipped with a reason otherwise.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lime_toolkit.data import CLASSIFICATION, SPLITS
from lime_toolkit.dataset_api import DatasetOptions
from lime_toolkit.errors import UserError
from lime_toolkit_plugins.xnli.dataset import XnliDataset
from lime_toolkit_plugins.xnli.reader import LABELS


def shared_data() -> Path:
    env = os.environ.get("LIME_TOOLKIT_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


REAL = shared_data() / "xnli"
needs_real = pytest.mark.skipif(not (REAL / "en" / "dev.jsonl").is_file(),
                                reason=f"the shared XNLI copy is not at {REAL} (set LIME_TOOLKIT_SHARED_DATA)")

PREMISES = {
    "en": ["The cat sat on the mat.", "It rained all day.", "She bought a new car.", "They won the game.",
           "He reads every night.", "The shop closed early."],
    "de": ["Die Katze saß auf der Matte.", "Es regnete den ganzen Tag.", "Sie kaufte ein neues Auto.",
           "Sie gewannen das Spiel.", "Er liest jeden Abend.", "Der Laden schloss früh."],
}
HYPOTHESES = {"en": ["An animal is resting.", "Nothing happened.", "Something is true."],
              "de": ["Ein Tier ruht.", "Nichts geschah.", "Etwas stimmt."]}


def write_jsonl_fixture(root: Path, langs=("de", "en"), splits=("dev",)) -> Path:
    """6 premises x 3 hypotheses per language, labels cycling entailment/neutral/contradiction."""
    for lang in langs:
        (root / lang).mkdir(parents=True, exist_ok=True)
        for split in splits:
            with open(root / lang / f"{split}.jsonl", "w", encoding="utf-8") as fh:
                for p, premise in enumerate(PREMISES[lang]):
                    for h, hypothesis in enumerate(HYPOTHESES[lang]):
                        idx = 3 * p + h
                        fh.write(json.dumps({"idx": idx, "premise": f"{premise} ({split})", "hypothesis": hypothesis,
                                             "label": LABELS[(p + h) % 3]}, ensure_ascii=False) + "\n")
    return root


TSV_HEADER = ["language", "gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse",
              "sentence2_parse", "sentence1", "sentence2", "promptID", "pairID", "genre", "label1", "label2", "label3",
              "label4", "label5", "sentence1_tokenized", "sentence2_tokenized", "match"]


def write_tsv_fixture(root: Path) -> Path:
    """The XNLI-1.0 layout: one row per language and pair; texts hold quote characters."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n_premises in (("dev", 4), ("test", 2)):
        lines = ["\t".join(TSV_HEADER)]
        for lang in ("en", "de"):
            for p in range(n_premises):
                for h in range(3):
                    pair = f"{split}{3 * p + h}"
                    premise = f'{PREMISES[lang][p]} He said "yes" ({split})'
                    fields = {c: "x" for c in TSV_HEADER}
                    fields.update(language=lang, gold_label=LABELS[(p + h) % 3], sentence1=premise,
                                  sentence2=f'"{HYPOTHESES[lang][h]}', promptID=str(p), pairID=pair, match="True")
                    lines.append("\t".join(fields[c] for c in TSV_HEADER))
        (root / f"xnli.{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def dataset(data_dir, tmp_path, **kw) -> XnliDataset:
    extra = kw.pop("extra", {})
    return XnliDataset(DatasetOptions(data_dir=data_dir, cache_dir=tmp_path / "cache", extra=extra, **kw))


def const_predictor(label: int):
    return lambda examples: [label] * len(examples)


# -- jsonl fixture --------------------------------------------------------------------------------


def test_jsonl_languages_labels_and_parallel_cases(tmp_path):
    ds = dataset(write_jsonl_fixture(tmp_path / "x"), tmp_path)
    assert ds.task == CLASSIFICATION and ds.num_labels == 3
    assert ds.languages == ["en", "de"]  # the paper's order, not the directory's
    assert ds.describe() == {"en": {"dev": 18}, "de": {"dev": 18}}
    seen = set()
    for split in SPLITS:
        for case in ds.edit_cases(split, predict=const_predictor(0)):
            assert case.id not in seen
            seen.add(case.id)
            assert set(case.inputs) <= {"en", "de"}
            targets = {ex.target for ex in case.inputs.values()}
            assert len(targets) == 1 and targets <= {0, 1, 2}
            assert all(ex.id == case.id and isinstance(ex.text, tuple) and len(ex.text) == 2
                       for ex in case.inputs.values())
    # the German input of a case is the German version of the same pair
    case = ds.edit_cases("train")[0]
    pid = int(case.id.split("-")[1])
    assert case.inputs["de"].text[0].startswith(PREMISES["de"][pid // 3])
    assert case.inputs["en"].text[0].startswith(PREMISES["en"][pid // 3])


def test_gold_labels_map_to_hugging_face_ids(tmp_path):
    ds = dataset(write_jsonl_fixture(tmp_path / "x"), tmp_path)
    rows = ds.table.rows["dev"]["en"]
    assert [rows[str(i)][2] for i in range(3)] == [0, 1, 2]  # entailment, neutral, contradiction
    cases = ds.edit_cases("test", predict=const_predictor(-1))  # wrong everywhere
    for case in cases:
        idx = int(case.id.split("-")[1])
        assert case.meta["gold"] == (idx // 3 + idx % 3) % 3
        assert all(ex.target == case.meta["gold"] for ex in case.inputs.values())


def test_split_keeps_premise_groups_together(tmp_path):
    ds = dataset(write_jsonl_fixture(tmp_path / "x"), tmp_path)
    premise_of = {}
    for split in SPLITS:
        for case in ds.edit_cases(split, predict=const_predictor(0)):
            premise_of.setdefault(case.inputs["en"].text[0], set()).add(split)
    assert all(len(s) == 1 for s in premise_of.values())
    sizes = ds.split_sizes()
    assert sum(sizes.values()) == 18 and all(v % 3 == 0 for v in sizes.values())
    assert all(sizes[s] > 0 for s in SPLITS)
    # the split does not move with the language selection
    de_only = dataset(tmp_path / "x", tmp_path, languages=["de"])
    assert [c.id for c in de_only.edit_cases("train")] == [c.id for c in ds.edit_cases("train")]


def test_test_edits_are_base_model_errors_per_language(tmp_path):
    ds = dataset(write_jsonl_fixture(tmp_path / "x"), tmp_path)

    def wrong_in_german(examples):  # right in English, wrong in German
        return [ds.table.rows["dev"][ex.lang][ex.id.split("-", 1)[1]][2] if ex.lang == "en" else
                (ds.table.rows["dev"][ex.lang][ex.id.split("-", 1)[1]][2] + 1) % 3 for ex in examples]

    cases = ds.edit_cases("test", predict=wrong_in_german)
    assert cases and len(cases) == ds.split_sizes()["test"]
    for case in cases:
        assert case.meta["wrong_in"] == ["de"] and case.meta["edit_langs"] == ["de"]
        assert set(case.inputs) == {"en", "de"}  # every language carries the gold label for updates
        if hasattr(case, "edit_langs"):
            assert tuple(case.edit_langs) == ("de",)
    assert ds.edit_cases("test", predict=lambda exs: [ds.table.rows["dev"][e.lang][e.id.split("-", 1)[1]][2]
                                                      for e in exs]) == []
    with pytest.raises(UserError, match="predict"):
        ds.edit_cases("test")


def test_random_edit_labels_seeded_and_exclude_current(tmp_path):
    data = write_jsonl_fixture(tmp_path / "x")
    a = [c.inputs["en"].target for c in dataset(data, tmp_path, seed=1).edit_cases("train")]
    b = [c.inputs["en"].target for c in dataset(data, tmp_path, seed=1).edit_cases("train")]
    assert a == b
    ds = dataset(data, tmp_path, extra={"exclude_current": "true"})
    for case in ds.edit_cases("train", predict=const_predictor(2)):
        assert case.inputs["en"].target != 2
    with pytest.raises(UserError, match="exclude_current"):
        ds.edit_cases("train")


def test_locality_pool_and_limit(tmp_path):
    data = write_jsonl_fixture(tmp_path / "x")
    ds = dataset(data, tmp_path, limit=2)
    cases = ds.edit_cases("train")
    assert len(cases) == 2
    assert [c.id for c in dataset(data, tmp_path, limit=2).edit_cases("train")] == [c.id for c in cases]
    pool = ds.locality_pool("train")
    assert set(pool) == {"en", "de"} and all(len(v) == 2 for v in pool.values())
    assert all(ex.target is None for v in pool.values() for ex in v)


def test_pairs_encode_as_text_pairs(tmp_path):
    from lime_toolkit.encoding import encode_examples
    from lime_toolkit.toolbox.wordpiece import train_wordpiece

    ds = dataset(write_jsonl_fixture(tmp_path / "x"), tmp_path)
    tokenizer = train_wordpiece([t for lang in PREMISES for t in PREMISES[lang] + HYPOTHESES[lang]], 300,
                                lowercase=True)
    case = ds.edit_cases("train")[0]
    batch = encode_examples(tokenizer, list(case.inputs.values()), CLASSIFICATION)
    assert batch.labels.tolist() == [ex.target for ex in case.inputs.values()]
    assert (batch.inputs["token_type_ids"].sum(1) > 0).all()  # the hypothesis is the second segment


def test_parsed_table_is_cached(tmp_path):
    data = write_jsonl_fixture(tmp_path / "x")
    dataset(data, tmp_path).describe()
    cached = list((tmp_path / "cache" / "xnli" / "parsed").glob("*.json"))
    assert len(cached) == 1
    # a changed file is read again
    with open(data / "en" / "dev.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"idx": 99, "premise": "p", "hypothesis": "h", "label": "neutral"}) + "\n")
    assert dataset(data, tmp_path).describe()["en"]["dev"] == 19


# -- TSV release ----------------------------------------------------------------------------------


def test_tsv_release_with_dev_and_test(tmp_path):
    ds = dataset(write_tsv_fixture(tmp_path / "XNLI-1.0"), tmp_path)
    assert ds.source == "tsv"
    assert ds.languages == ["en", "de"]
    assert ds.describe() == {"en": {"dev": 12, "test": 6}, "de": {"dev": 12, "test": 6}}
    # quotes inside the text survive (no csv quoting)
    row = ds.table.rows["dev"]["en"]["dev0"]
    assert row[0].endswith('He said "yes" (dev)') and row[1].startswith('"')
    # dev -> train/dev, the test file -> test
    sizes = ds.split_sizes()
    assert sizes["test"] == 6 and sizes["train"] + sizes["dev"] == 12
    cases = ds.edit_cases("test", predict=const_predictor(-1))
    assert all(c.id.startswith("test-") and c.inputs["en"].text[0].endswith("(test)") for c in cases)
    # the data dir may also be the folder above XNLI-1.0
    assert dataset(tmp_path, tmp_path).source == "tsv"


def test_tsv_malformed_row_names_file_and_line(tmp_path):
    root = write_tsv_fixture(tmp_path / "XNLI-1.0")
    path = root / "xnli.dev.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].rsplit("\t", 2)[0]  # two fields short
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"xnli\.dev\.tsv:4: malformed"):
        dataset(root, tmp_path).describe()


# -- errors ---------------------------------------------------------------------------------------


def test_malformed_jsonl_rows_name_file_and_line(tmp_path):
    data = write_jsonl_fixture(tmp_path / "x")
    path = data / "de" / "dev.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = json.dumps({"idx": 2, "premise": "p", "hypothesis": "h", "label": "maybe"})
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"de/dev\.jsonl:3: malformed XNLI row: label 'maybe'"):
        dataset(data, tmp_path).describe()
    lines[2] = "{not json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"de/dev\.jsonl:3: malformed XNLI row: not JSON"):
        dataset(data, tmp_path).describe()


def test_missing_directory_and_language(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        dataset(tmp_path / "nowhere", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no XNLI data found"):
        dataset(tmp_path / "empty", tmp_path)
    ds = dataset(write_jsonl_fixture(tmp_path / "x"), tmp_path, languages=["en", "fr"])
    with pytest.raises(UserError, match=r"no language\(s\) fr .*available: en, de"):
        ds.languages


def test_hub_offline_fails_fast_with_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    ds = dataset(None, tmp_path, languages=["en"])
    assert ds.source == "hf"
    with pytest.raises(UserError) as err:
        ds.languages
    message = str(err.value)
    assert "HF_HUB_OFFLINE" in message and "--data-dir" in message and "\n" not in message


def test_default_model_says_how_to_prepare(tmp_path):
    ds = dataset(write_jsonl_fixture(tmp_path / "x"), tmp_path)
    with pytest.raises(UserError, match="prepare-base --dataset xnli"):
        ds.default_model()


TINY = {"vocab_size": "300", "hidden_size": "16", "num_heads": "2", "intermediate_size": "32", "epochs": "2"}


def test_prepare_base_builds_reuses_and_serves_a_language_subset(tmp_path):
    data = write_jsonl_fixture(tmp_path / "x")
    lines: list[str] = []
    ds = dataset(data, tmp_path, extra=TINY)
    out = ds.prepare_base_model(progress=lines.append)
    assert out == ds.model_dir() and (out / "config.json").is_file()
    info = json.loads((out / "accuracy.json").read_text(encoding="utf-8"))
    assert list(info["accuracy"]) == ["en", "de"] and info["epochs_run"] == 2
    assert info["key"] == json.loads(json.dumps(ds.model_key()))  # as JSON: tuples are lists
    assert ds.default_model() == str(out)
    assert ds.prepare_base_model(progress=lines.append) == out and lines[-1].endswith(f"already prepared: {out}")
    # a run on a subset of the languages is served by the model built on all of them, not one with
    # other settings
    assert dataset(data, tmp_path, languages=["de"], extra=TINY).default_model() == str(out)
    # and a run with another seed (the seed varies the editor, not the base model)
    assert dataset(data, tmp_path, extra=TINY, seed=1).default_model() == str(out)
    with pytest.raises(UserError, match="prepare-base --dataset xnli"):
        dataset(data, tmp_path, languages=["de"], extra={**TINY, "train_langs": "all"}).default_model()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="is not a prepared xnli base model"):
        ds.prepare_base_model(tmp_path / "junk", progress=lines.append)


# -- the real shared copy -------------------------------------------------------------------------


@pytest.mark.realdata
@needs_real
def test_real_xnli_counts_parallelism_and_split(tmp_path):
    ds = XnliDataset(DatasetOptions(data_dir=REAL, cache_dir=tmp_path))
    counts = ds.describe()
    assert list(counts) == ["en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"]
    assert all(v == {"dev": 2490} for v in counts.values())
    sizes = ds.split_sizes()
    assert sum(sizes.values()) == 2490 and all(v % 3 == 0 for v in sizes.values())
    groups = {s: {ds._group_of("dev", pid) for pid in ds.items(s)[1]} for s in SPLITS}
    assert not (groups["train"] & groups["dev"]) and not (groups["train"] & groups["test"]) \
        and not (groups["dev"] & groups["test"])
    case = ds.edit_cases("dev")[0]
    assert len(case.inputs) == 15 and len({ex.target for ex in case.inputs.values()}) == 1
    tests = ds.edit_cases("test", predict=const_predictor(0))
    assert all(c.meta["gold"] != 0 and c.meta["edit_langs"] == list(counts) for c in tests)


# -- the shared tiny encoder and the paths for a user's own encoder ---------------------------------


def test_alignment_loss_prefers_parallel_states():
    import torch

    from lime_toolkit.toolbox.parallel import contrastive_alignment as alignment_loss

    pair_of = torch.tensor([0, 0, 1, 1, 2, 2])
    base = torch.eye(3, 8)
    parallel = base.repeat_interleave(2, dim=0)  # each pair's two languages: the same state
    crossed = base[torch.tensor([0, 1, 1, 2, 2, 0])]  # each state looks like another pair's
    assert alignment_loss(parallel, pair_of, 0.1) < 0.01 < 1.0 < alignment_loss(crossed, pair_of, 0.1)
    assert alignment_loss(base, torch.arange(3), 0.1) == 0  # no state has a translation


def test_parallel_pairs_batches_cover_every_pair_in_chosen_languages(tmp_path):
    import torch

    from lime_toolkit.toolbox.wordpiece import train_wordpiece
    from lime_toolkit_plugins.xnli.pretrain import ParallelPairs

    tok = train_wordpiece(PREMISES["en"] + PREMISES["de"] + HYPOTHESES["en"] + HYPOTHESES["de"], 200, lowercase=True)
    pairs = [{"en": (p, HYPOTHESES["en"][0]), "de": (q, HYPOTHESES["de"][0])} for p, q in zip(PREMISES["en"], PREMISES["de"])]
    pairs.append({"en": ("Only English.", "Yes.")})
    data = ParallelPairs(tok, pairs, ["en", "de"], 64)
    assert data.table.shape == (7, 2) and data.table[6, 1] == -1 and len(data.rows) == 13
    blocks = data.batches(3, 2, torch.Generator().manual_seed(0))
    seen = sorted(int(r) for b in blocks for r in b.reshape(-1) if r >= 0)
    assert seen == list(range(13))
    inputs = data.inputs(blocks[0].reshape(-1))
    assert inputs["input_ids"].shape == inputs["token_type_ids"].shape
    assert int(inputs["token_type_ids"].max()) == 1  # premise and hypothesis segments, as the classifier sees them


# hidden 16 is too small to leave the collapsed start (every [CLS] state alike) in a few steps
PRE = {**TINY, "hidden_size": "32", "intermediate_size": "64", "pretrain_epochs": "80", "pretrain_lr": "5e-3",
       "align_pairs": "3", "align_langs": "2"}


def deterministic_wordpiece(texts, size, *, lowercase=False):
    """The toolbox's own vocabulary learner (ties broken alphabetically) in place of the tokenizers
    library's trainer (ties in hash-map order), so that a test's model is the same on every run."""
    from lime_toolkit.toolbox.wordpiece import bert_tokenizer, bert_words, learn_vocabulary

    return bert_tokenizer(learn_vocabulary(bert_words(texts, lowercase=lowercase), size), lowercase=lowercase)


def test_pretraining_aligns_the_languages_and_train_langs_all(tmp_path, monkeypatch):
    """With the alignment objective, parallel pairs retrieve each other; the masked LM alone on the
    same budget does not. ``train_langs: all`` fine-tunes on every language."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lime_toolkit_plugins.xnli import base_model
    from lime_toolkit_plugins.xnli.base_model import _parallel_pairs
    from lime_toolkit_plugins.xnli.pretrain import retrieval

    monkeypatch.setattr(base_model, "train_wordpiece", deterministic_wordpiece)

    data = write_jsonl_fixture(tmp_path / "x", splits=("dev",))
    found = {}
    for name, extra in (("aligned", {**PRE, "align_weight": "1"}),
                        ("mlm", {**PRE, "align_weight": "0", "finetune_align_weight": "0"})):
        ds = dataset(data, tmp_path, extra=extra)
        lines: list[str] = []
        out = ds.prepare_base_model(progress=lines.append)
        assert any(line.startswith("pre-training epoch 80/80") for line in lines)
        assert "retrieval" in json.loads((out / "accuracy.json").read_text(encoding="utf-8"))
        model, tok = AutoModelForSequenceClassification.from_pretrained(out), AutoTokenizer.from_pretrained(out)
        found[name] = retrieval(model.bert, _parallel_pairs(ds, ["train", "dev", "test"], ["en", "de"], tok))["de"]
    assert found["aligned"] >= 0.6 and found["aligned"] >= found["mlm"] + 0.3, found
    ds = dataset(data, tmp_path, extra={**TINY, "pretrain_epochs": "1", "train_langs": "all"})
    info = json.loads((ds.prepare_base_model(progress=lambda _: None) / "accuracy.json").read_text(encoding="utf-8"))
    en_only = dataset(data, tmp_path, extra=TINY).split_sizes()["train"]
    assert info["train_langs"] == ["en", "de"] and info["n_train"] == 2 * en_only


def test_train_langs_outside_the_data_is_a_user_error(tmp_path):
    ds = dataset(write_jsonl_fixture(tmp_path / "x"), tmp_path, extra={**TINY, "train_langs": "en,fr"})
    with pytest.raises(UserError, match="train_langs fr not in the data"):
        ds.prepare_base_model(progress=lambda _: None)


def save_random_encoder(path: Path, hidden: int = 24) -> Path:
    """A randomly initialised small BERT masked LM with its tokenizer, saved like mBERT on disk."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from lime_toolkit.toolbox.wordpiece import train_wordpiece

    tok = train_wordpiece([t for per in (PREMISES, HYPOTHESES) for texts in per.values() for t in texts], 300)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=128, pad_token_id=tok.pad_token_id)
    BertForMaskedLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_base_model_directory_is_fine_tuned_as_given(tmp_path):
    """``base_model: DIR`` (the paper's path with mBERT on disk) fine-tunes that encoder and its
    tokenizer: no tiny tokenizer, no pre-training, no alignment."""
    from transformers import AutoConfig

    encoder = save_random_encoder(tmp_path / "encoder")
    lines: list[str] = []
    ds = dataset(write_jsonl_fixture(tmp_path / "x"), tmp_path, extra={"base_model": str(encoder), "epochs": "1"})
    out = ds.prepare_base_model(progress=lines.append)
    info = json.loads((out / "accuracy.json").read_text(encoding="utf-8"))
    assert info["base_model"] == str(encoder) and "retrieval" not in info and "pretrain_steps" not in info
    assert not any("pre-training" in line or "WordPiece" in line for line in lines)
    config = AutoConfig.from_pretrained(out)
    assert config.hidden_size == 24 and config.vocab_size == AutoConfig.from_pretrained(encoder).vocab_size
    assert config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}


@pytest.mark.slow
def test_train_with_a_model_directory(tmp_path, monkeypatch):
    """``--model DIR`` runs the whole job on a user's classifier directory, untouched by the dataset."""
    import yaml
    from click.testing import CliRunner

    from lime_toolkit.cli.app import cli

    monkeypatch.setenv("LIME_TOOLKIT_CACHE", str(tmp_path / "cache"))
    encoder = save_random_encoder(tmp_path / "encoder")
    data = write_jsonl_fixture(tmp_path / "x")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "--dataset", "xnli", "--data-dir", str(data), "--model", str(encoder), "--device", "cpu",
        "--max-steps", "2", "--set", "train.val_every=1", "--set", "train.val_edits=2",
        "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["model"] == str(encoder)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"acc", "con", "succ", "baselines"} <= set(metrics)


def test_same_seed_same_base_model(tmp_path, monkeypatch):
    """Given the same vocabulary, pre-training, alignment and fine-tuning draw only from seeded
    generators. (The tokenizers library's WordPiece trainer itself breaks ties in hash-map order,
    see docs/datasets.md, so the vocabulary is learned once here.)"""
    import torch
    from safetensors.torch import load_file

    from lime_toolkit_plugins.xnli import base_model

    learn, learned = base_model.train_wordpiece, {}

    def once(texts, size, **kw):
        if "tok" not in learned:
            learned["tok"] = learn(texts, size, **kw)
        return learned["tok"]

    monkeypatch.setattr(base_model, "train_wordpiece", once)
    data = write_jsonl_fixture(tmp_path / "x")
    extra = {**TINY, "pretrain_epochs": "2", "align_pairs": "3", "align_langs": "2"}
    outs = [XnliDataset(DatasetOptions(data_dir=data, cache_dir=tmp_path / f"cache{i}", extra=extra))
            .prepare_base_model(progress=lambda _: None) for i in range(2)]
    first, second = (load_file(out / "model.safetensors") for out in outs)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
