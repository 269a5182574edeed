"""Metrics, evaluation reports, figures, the training log, and the evaluate / edit / report /
compare commands on the toy world (a tiny random masked LM saved to disk, edited by a test-local
factor editor that takes one large gradient step)."""
from __future__ import annotations

import json
import random
from pathlib import Path
from statistics import mean, stdev

import pytest
import torch
from click.testing import CliRunner

from lime_toolkit import hookimpl
from lime_toolkit.cli.app import cli
from lime_toolkit.editor_api import FactorEditor
from lime_toolkit.mask_api import MaskSetup
from lime_toolkit.metrics import EditRecord, harmonic, summarise
from lime_toolkit.plugin_manager import plugin_registered
from lime_toolkit.report.tables import paper_table, to_markdown
from lime_toolkit.results import eval_document, language_summaries, mean_result
from lime_toolkit.runs.train_log import JsonlLogger, Tee, logged_monitor, read_train_log
from lime_toolkit.testing import ToyDataset, save_tiny_masked_lm

# -- metrics -------------------------------------------------------------------------------------

def test_harmonic_hand_computed():
    assert harmonic(0.0, 0.0) == 0.0  # acc + con = 0
    assert harmonic(1.0, 0.0) == 0.0
    assert harmonic(0.5, 0.5) == pytest.approx(0.5)
    assert harmonic(0.6, 0.9) == pytest.approx(2 * 0.6 * 0.9 / 1.5)


def test_summarise_hand_computed():
    records = [
        EditRecord("en", [("en", True), ("de", False)], [("en", True), ("de", True), ("en", False), ("de", True)]),
        EditRecord("en", [("de", True)], [("en", True)]),
        EditRecord("de", [("en", False)], [("de", False)]),  # acc = con = 0 for de
    ]
    m = summarise(records, ["en", "de", "fr"], ["en", "de"])
    # en: acc 2/3, con 4/5; de: acc 0, con 0 -> succ 0; fr: no edits, left out of the macro average
    intervals = {l: m["per_language"][l].pop("interval") for l in ("en", "de")}
    assert m["per_language"]["en"] == pytest.approx({"acc": 2 / 3, "con": 4 / 5, "succ": harmonic(2 / 3, 4 / 5),
                                                     "edits": 2})
    assert m["per_language"]["de"] == {"acc": 0.0, "con": 0.0, "succ": 0.0, "edits": 1}
    # one edit that failed everything: no resample can do better
    assert intervals["de"] == {"acc": [0.0, 0.0], "con": [0.0, 0.0], "succ": [0.0, 0.0]}
    # en's two edits: resamples are {1st, 1st}, {1st, 2nd}, {2nd, 2nd} -> acc 1/2, 2/3 or 1
    assert intervals["en"]["acc"][0] == pytest.approx(0.5) and intervals["en"]["acc"][1] == pytest.approx(1.0)
    lo, hi = m["interval"]["acc"]
    assert lo <= m["acc"] <= hi and lo == pytest.approx(0.25) and hi == pytest.approx(0.5)
    assert "fr" not in m["per_language"] and m["languages_without_edits"] == ["fr"]
    assert m["acc"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["con"] == pytest.approx((4 / 5 + 0) / 2)
    assert m["succ"] == pytest.approx(harmonic(1 / 3, 2 / 5))
    per_edit = [harmonic(1 / 2, 3 / 4), harmonic(1.0, 1.0), harmonic(0.0, 0.0)]
    assert m["succ_per_edit"] == pytest.approx(mean(per_edit))
    assert m["succ_per_edit"] != pytest.approx(m["succ"])  # the two definitions differ
    assert m["acc_matrix"] == {"en": {"en": 1.0, "de": 0.5}, "de": {"en": 0.0}, "fr": {}}
    assert m["con_matrix"]["en"] == pytest.approx({"en": 2 / 3, "de": 1.0})
    assert m["edits"] == 3


def test_summarise_all_fail_gives_zero_succ():
    m = summarise([EditRecord("en", [("en", False)], [("en", False)])], ["en"], ["en"])
    assert (m["acc"], m["con"], m["succ"], m["succ_per_edit"]) == (0.0, 0.0, 0.0, 0.0)


def random_records(seed: int, langs=("en", "de", "fr"), n=40) -> list[EditRecord]:
    rng = random.Random(seed)
    return [EditRecord(rng.choice(langs), [(rng.choice(langs), rng.random() < 0.7)],
                       [(rng.choice(langs), rng.random() < 0.9) for _ in range(4)]) for _ in range(n)]


def test_matrix_and_macro_averages_agree():
    langs = ["en", "de", "fr"]
    records = random_records(1)
    m = summarise(records, langs, langs)
    for metric in ("acc", "con"):
        kind = "updates" if metric == "acc" else "retains"
        for le in m["per_language"]:
            counts = {l: sum(1 for r in records if r.edit_lang == le for x, _ in getattr(r, kind) if x == l)
                      for l in langs}
            row = m[f"{metric}_matrix"][le]
            pooled = sum(counts[l] * row[l] for l in row) / sum(counts.values())
            assert pooled == pytest.approx(m["per_language"][le][metric])
        assert m[metric] == pytest.approx(mean(v[metric] for v in m["per_language"].values()))
    s = language_summaries(m, langs)
    for l, v in s["per_eval_language"].items():
        column = [row[l] for row in m["acc_matrix"].values() if l in row]
        assert v["acc"]["mean"] == pytest.approx(mean(column))
        assert v["acc"]["spread"] == pytest.approx(max(column) - min(column))
    succs = [v["succ"] for v in m["per_language"].values()]
    assert s["across_edit_languages"]["succ"]["spread"] == pytest.approx(max(succs) - min(succs))


def test_mean_over_seeds_and_document():
    langs = ["en", "de", "fr"]
    results = {s: summarise(random_records(s), langs, langs) for s in (0, 1)}
    doc = eval_document(results, {"edit_langs": langs, "eval_langs": langs})
    assert doc["acc"] == pytest.approx(mean(r["acc"] for r in results.values()))
    assert doc["std"]["succ"] == pytest.approx(stdev(r["succ"] for r in results.values()))
    assert doc["acc_matrix"]["en"]["de"] == pytest.approx(mean(r["acc_matrix"]["en"]["de"] for r in results.values()))
    assert mean_result([results[0]]) is results[0]
    assert set(doc["per_seed"]) == {"0", "1"} and doc["setting"]["seeds"] == [0, 1]


def test_paper_table_mean_and_std():
    def metrics(seed, acc, masks="l0", train="all"):
        return {"acc": acc, "con": 0.9, "succ": harmonic(acc, 0.9), "succ_per_edit": 0.5,
                "setting": {"dataset": "demo", "editor": "mend", "masks": masks, "train_langs": train, "seed": seed,
                            "split": "test", "edit_langs": ["en", "de"], "eval_langs": ["en", "de"]}}

    rows = paper_table([metrics(0, 0.8), metrics(1, 0.9), metrics(2, 1.0), metrics(0, 0.5, "none", "en")])
    assert len(rows) == 2
    assert rows[0]["acc"]["mean"] == pytest.approx(0.9) and rows[0]["acc"]["std"] == pytest.approx(0.1)
    assert rows[0]["seeds"] == [0, 1, 2] and rows[0]["evaluation"] == "all -> all"
    assert rows[1]["acc"] == {"mean": 0.5, "std": 0.0, "n": 1, "interval": None}
    half = 4.303 * 0.1 / 3 ** 0.5  # Student's t, 2 degrees of freedom
    assert rows[0]["acc"]["interval"] == pytest.approx([0.9 - half, 1.0])  # clipped to a rate's range
    md = to_markdown(rows)
    assert "90.00 ± 10.00 [65.2, 100.0]" in md and "en only" in md and md.count("\n") == 4


# -- figures ---------------------------------------------------------------------------------------

def _check_written(paths):
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].stat().st_size > 1000 and b"<svg" in paths[1].read_bytes()[:2000]


def test_figures_written(tmp_path):
    from lime_toolkit.report import figures

    langs = ["en", "de", "fr"]
    a, b = summarise(random_records(2), langs, langs), summarise(random_records(3), langs, langs)
    _check_written(figures.succ_distribution([("run a", a), ("run b", b)], tmp_path / "succ"))
    _check_written(figures.matrix_heatmap(a["acc_matrix"], tmp_path / "acc", "acc"))
    log = [{"event": "step", "step": s, "loss": 1 / s, "rel": 2 / s, "loc": 0.1, "mask": 0.5} for s in range(1, 30)]
    log += [{"event": "validation", "step": 10, "acc": 0.5, "con": 0.9, "succ": 0.64, "improved": True}]
    _check_written(figures.training_curves(log, tmp_path / "curves", smooth=5))
    vectors = {l: torch.randn(300).numpy() for l in langs}
    _check_written(figures.mask_similarity_heatmap(vectors, tmp_path / "masks"))


def test_mask_similarity_top_dimensions():
    from lime_toolkit.report import figures
    from lime_toolkit_plugins.masks.strategies import L0Masks

    torch.manual_seed(0)
    masks = L0Masks(MaskSetup({"w": (60, 40)}, ["en", "de"], {}))
    vectors = figures.language_mask_vectors(masks, ["en", "de"], ["w"])
    assert vectors["en"].shape == (100,)  # in + out values concatenated
    v = {"en": vectors["en"].copy(), "de": vectors["de"].copy()}
    v["en"][7] = 50.0  # en's top-1% dimension (1 of 100)
    v["de"][7] = -50.0
    langs, sim = figures.mask_similarity(v, fraction=0.01, select="value")
    assert figures.top_dimensions(v["en"], 0.01).tolist() == [7]
    assert sim[0, 0] == pytest.approx(1.0) and sim[0, 1] == pytest.approx(-1.0)  # 1-d restriction: sign
    _, full = figures.mask_similarity(v, fraction=None)
    assert full == pytest.approx(full.T) and full[0, 1] < 0
    assert figures.language_mask_vectors(None, ["en"]) == {}


# -- training log ----------------------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.events = []

    def on_step(self, step, terms, steps_per_s):
        self.events.append(("step", step))

    def on_validation(self, step, metrics, improved):
        self.events.append(("val", step))

    def on_edit(self):
        self.events.append(("edit",))


def test_train_log_tee_and_resume(tmp_path):
    inner = Recorder()
    monitor = logged_monitor(tmp_path, inner)
    for step in range(1, 5):
        monitor.on_step(step, {"loss": torch.tensor(1.0 / step), "rel": 2.0}, 3.0)
    monitor.on_validation(4, {"acc": 0.5, "con": 1.0, "succ": 2 / 3, "per_language": {}}, True)
    monitor.on_edit()
    assert inner.events[-2:] == [("val", 4), ("edit",)]
    records = read_train_log(tmp_path)
    assert [r["event"] for r in records] == ["step"] * 4 + ["validation"]
    assert records[1]["loss"] == pytest.approx(0.5) and records[-1]["succ"] == pytest.approx(2 / 3)
    assert "per_language" not in records[-1]
    # resume from a checkpoint at step 2: later lines are dropped, new ones appended
    from lime_toolkit.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "checkpoints" / "last", torch.nn.Linear(2, 2), {"step": 2})
    resumed = logged_monitor(tmp_path, Recorder())
    assert isinstance(resumed, Tee)
    resumed.on_step(3, {"loss": 9.0}, 1.0)
    assert [(r["event"], r["step"]) for r in read_train_log(tmp_path)] == [("step", 1), ("step", 2), ("step", 3)]
    JsonlLogger(tmp_path / "train_log.jsonl")  # a fresh run starts an empty log
    assert read_train_log(tmp_path) == []


# -- commands on the toy world ------------------------------------------------------------------------

class OneBigStep(FactorEditor):
    """W' = W − 300·∇W: strong enough to make any toy edit in its own language."""

    trainable = False

    def transform(self, name, x, delta, ctx):
        return x, delta

    def step_size(self, name):
        return 300.0


class ToyPlugin:
    @hookimpl
    def register_datasets(self, register):
        register("toy", ToyDataset, "toy facts")

    @hookimpl
    def register_editors(self, register):
        register("one-big-step", OneBigStep, "identity transform, step 300")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    save_tiny_masked_lm(root / "model")
    with plugin_registered(ToyPlugin(), "test-evaluation-reports"):
        yield root


def table_rows(output: str) -> list[list[str]]:
    """The body rows of a rich table printed by a command, as lists of cell texts."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines() if line.startswith("│")]


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def trained_run(toy):
    out = toy / "run"
    invoke("train", "--editor", "one-big-step", "--masks", "none", "--dataset", "toy", "--model", toy / "model",
           "--device", "cpu", "--out", out, "--quiet")
    assert (out / "metrics.json").is_file() and (out / "config.yaml").is_file()
    return out


@pytest.fixture()
def run_dir(trained_run, tmp_path):
    """A copy of the trained run for one test: what a test writes there no other test sees."""
    import shutil

    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def test_evaluate_command_writes_documents(tmp_path, run_dir):
    path = tmp_path / "table1.json"
    output = invoke("evaluate", run_dir, "--edit-langs", "en", "--eval-langs", "all", "--n-update", "0",
                    "--seeds", "0,1", "--json", path)
    doc = json.loads(path.read_text())
    for key in ("acc", "con", "succ", "succ_per_edit"):
        assert 0.0 <= doc[key] <= 1.0
    assert list(doc["acc_matrix"]) == ["en"] and set(doc["acc_matrix"]["en"]) == {"en", "de"}
    assert doc["acc_matrix"]["en"]["en"] == 1.0  # the strong editor makes every edit in its own language
    assert all(0.0 <= v <= 1.0 for m in ("acc_matrix", "con_matrix") for row in doc[m].values() for v in row.values())
    assert doc["setting"]["seeds"] == [0, 1] and doc["setting"]["n_update"] == 0
    for ext in ("json", "csv", "md"):
        assert (run_dir / "eval" / f"test_en-to-all_u0.{ext}").stat().st_size > 0
    assert "macro average" in output and "succ_per_edit" in output
    # the default setting reproduces what train wrote to metrics.json
    invoke("evaluate", run_dir, "--json", tmp_path / "default.json")
    again, metrics = json.loads((tmp_path / "default.json").read_text()), json.loads((run_dir / "metrics.json").read_text())
    assert {k: again[k] for k in ("acc", "con", "succ", "acc_matrix")} == {k: metrics[k] for k in
                                                                          ("acc", "con", "succ", "acc_matrix")}
    # one edit at a time (--batch-size 1) gives the same document as the default batches
    invoke("evaluate", run_dir, "--batch-size", "1", "--json", tmp_path / "loop.json")
    loop = json.loads((tmp_path / "loop.json").read_text())
    keys = ("acc", "con", "succ", "succ_per_edit", "acc_matrix", "con_matrix", "per_edit_language", "edits")
    assert {k: loop[k] for k in keys} == {k: again[k] for k in keys}


def test_evaluate_records_are_the_edits_behind_the_numbers(tmp_path, run_dir):
    """--records writes one line per edit; its outcomes recompute the document's matrices exactly."""
    path, doc_path = tmp_path / "edits.jsonl", tmp_path / "doc.json"
    invoke("evaluate", run_dir, "--records", path, "--json", doc_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    doc = json.loads(doc_path.read_text())
    assert len(rows) == doc["edits"] > 0 and {r["seed"] for r in rows} == {doc["setting"]["seeds"][0]}
    assert all(r["case"] and r["target"] and r["meta"] is not None for r in rows)
    for key, name in (("took", "acc_matrix"), ("kept", "con_matrix")):
        cells = {}
        for r in rows:
            for lang, ok in r[key]:
                cells.setdefault((r["edit_lang"], lang), []).append(ok)
        assert {le: {l: sum(v) / len(v) for (e, l), v in cells.items() if e == le} for le in doc[name]} == doc[name]
    refused = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--sequential", "2", "--records", str(path)])
    assert refused.exit_code != 0 and "--records" in refused.output and len(refused.output.strip().splitlines()) == 1


def test_edit_command_and_saved_model(toy, tmp_path, run_dir):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    saved = tmp_path / "edited"
    output = invoke("edit", run_dir, "--input", "gert lives in [MASK] .", "--target", "rome", "--lang", "en",
                    "--save", saved)
    rows = table_rows(output)
    assert rows[0][:4] == ["edit", "en", "gert lives in [MASK] .", "rome"] and rows[0][-1] == "took"
    assert rows[1][:4] == ["parallel", "de", "gert wohnt in [MASK] .", "romee"]  # the parallel item, its target
    assert [r[0] for r in rows[2:]] == ["unrelated"] * 3
    model = AutoModelForMaskedLM.from_pretrained(saved).eval()
    tokenizer = AutoTokenizer.from_pretrained(saved)
    enc = tokenizer("gert lives in [MASK] .", return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    at = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0]
    assert tokenizer.decode([int(logits[0, at].argmax())]).strip() == "rome"
    base = AutoModelForMaskedLM.from_pretrained(toy / "model").eval()
    with torch.no_grad():
        assert tokenizer.decode([int(base(**enc).logits[0, at].argmax())]).strip() != "rome"


def test_edit_unknown_item_says_so(run_dir):
    output = invoke("edit", run_dir, "--input", "[MASK] lives in paris .", "--target", "anna", "--lang", "en")
    assert "no parallel item found" in output


def test_report_and_compare(tmp_path, run_dir):
    output = invoke("report", run_dir)
    page = (run_dir / "report.html").read_text()
    assert output.strip().endswith("report.html")
    assert page.count("data:image/png;base64,") >= 3 and "<table>" in page
    assert 'src="http' not in page  # nothing to fetch: readable offline
    md = tmp_path / "table.md"
    invoke("compare", run_dir, run_dir, "--markdown", md, "--json", tmp_path / "table.json")
    rows = json.loads((tmp_path / "table.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(rows) == 1 and rows[0]["runs"] == 2 and rows[0]["succ"]["std"] == 0.0
    assert rows[0]["acc"]["mean"] == pytest.approx(metrics["acc"])
    assert "one-big-step" in md.read_text()
    # --eval compares an evaluation this test writes itself (en -> de only), not metrics.json
    invoke("evaluate", run_dir, "--edit-langs", "en", "--eval-langs", "de", "--n-update", "0",
           "--json", tmp_path / "en-de.json")
    evaluated = json.loads((tmp_path / "en-de.json").read_text())
    assert evaluated["acc"] != pytest.approx(metrics["acc"])  # a different number than metrics.json's
    invoke("compare", run_dir, "--eval", "test_en-to-de_u0", "--json", tmp_path / "eval.json")
    row = json.loads((tmp_path / "eval.json").read_text())[0]
    assert row["acc"]["mean"] == pytest.approx(evaluated["acc"]) and row["evaluation"] == "en -> de"
    with pytest.raises(AssertionError):  # an evaluation that was never written is an error, not a table
        invoke("compare", run_dir, "--eval", "test_all-to-all_u3")


def test_parse_user_input():
    from lime_toolkit.errors import UserError
    from lime_toolkit.runs.edit import parse_input

    assert parse_input("anna lives in [MASK] .", "masked-lm") == "anna lives in [Y] ."
    assert parse_input("anna lives in [MASK] [MASK][MASK] .", "masked-lm") == "anna lives in [Y] ."
    assert parse_input("anna lives in [Y] .", "masked-lm") == "anna lives in [Y] ."
    for bad in ("[MASK] lives in [MASK] .", "no slot here", "[MASK] and [Y]"):
        with pytest.raises(UserError):
            parse_input(bad, "masked-lm")
    assert parse_input("A man sleeps. ||| A person rests.", "classification") == ("A man sleeps.", "A person rests.")
    assert parse_input("just a text", "classification") == "just a text"


def test_diagnose_command_on_the_toy_world(toy, tmp_path):
    out = tmp_path / "diagnosis.json"
    text = invoke("diagnose", "--dataset", "toy", "--model", toy / "model", "--device", "cpu", "--masks", "none",
                  "--editor", "one-big-step", "--edits", "2", "--json", out)
    doc = json.loads(out.read_text())
    assert "en only" in text and "all languages" in text and "alpha" in text and "cos parallel" in text
    assert [row["layer"] for row in doc["layers"]] == [0, 1]  # the tiny model's two layers
    for row in doc["layers"]:
        assert set(row["retrieval"]) == {"de"} and 0.0 <= row["retrieval"]["de"] <= 1.0
        assert -1.0 <= row["cos_unrelated"] <= 1.0 and -1.0 <= row["cos_parallel"] <= 1.0
    edit, joint = doc["finetune"]
    assert edit["mode"] == "edit" and joint["mode"] == "joint" and edit["edits"] == joint["edits"] == 2
    # trained on the edit input alone, finetuning lands it; every share is a rate over the 2 edits
    assert edit["acc"]["en"] == 1.0 and edit["steps"] <= 100 and joint["steps"] <= 100
    assert all(v in (0.0, 0.5, 1.0) for r in (edit, joint) for v in r["acc"].values())
    assert [r["alpha"] for r in doc["gradient_step"]] == [0.01, 0.03, 0.1, 0.3, 1.0]


def test_evaluate_quiet_prints_only_the_results(tmp_path, run_dir):
    result = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--quiet", "--json", str(tmp_path / "q.json")],
                                catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no status line, no progress
    assert "macro average" in result.stdout and json.loads((tmp_path / "q.json").read_text())["edits"] > 0
