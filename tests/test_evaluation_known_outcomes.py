"""Evaluation against a scripted editor whose every outcome is known in advance.

The base model is a lookup table: the prediction at every [MASK] of "<subject> <verb> in [MASK] ."
is the argmax of ``table[subject, verb]`` (the verb tells the language). The scripted editor writes
chosen rows of the table, so which parallel inputs take the target and which unrelated inputs keep
their prediction is decided here, and the records, matrices and macro averages that the evaluation
reports can be written down by hand.
"""
from __future__ import annotations

from statistics import mean
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lime_toolkit.data import MASKED_LM, TARGET_SLOT, EditCase, Example
from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import EditorSetup, FullEditor
from lime_toolkit.encoding import encode_examples, per_example
from lime_toolkit.evaluation import EvalSettings, check_edit, edit_and_check, evaluate
from lime_toolkit.metrics import harmonic
from lime_toolkit.testing import TOY_OBJECT_FORMS, TOY_OBJECTS, TOY_SUBJECTS, TOY_TEMPLATES, tiny_masked_lm

LANGS = ["en", "de"]
VERB = {"en": "lives", "de": "wohnt"}


class LookupLM(nn.Module):
    """Logits at every position = table[input_ids[:, 1], input_ids[:, 2]] (subject, verb)."""

    base_model_prefix = "lookup"

    def __init__(self, vocab: int):
        super().__init__()
        self.config = SimpleNamespace(model_type="lookup")  # no declared family: the plain forward
        self.table = nn.Parameter(torch.zeros(vocab, vocab, vocab), requires_grad=False)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        rows = self.table[input_ids[:, 1], input_ids[:, 2]]
        return SimpleNamespace(logits=rows[:, None, :].expand(-1, input_ids.shape[1], -1))


class World:
    def __init__(self):
        _, self.tok = tiny_masked_lm()
        self.id = self.tok.convert_tokens_to_ids
        self.model = LookupLM(len(self.tok))
        # The unedited model answers "paris" in every language for every subject: wrong for the edits
        # below, and a prediction the locality checks must compare against, right or wrong.
        with torch.no_grad():
            for s in TOY_SUBJECTS:
                for lang in LANGS:
                    self.model.table[self.id(s), self.id(VERB[lang]), self.id(TOY_OBJECT_FORMS[lang]["paris"])] = 5.0
        self.cases = [EditCase(s, {l: Example(s, l, TOY_TEMPLATES[l].replace("[X]", s),
                                              TOY_OBJECT_FORMS[l][TOY_OBJECTS[1 + i % 3]]) for l in LANGS})
                      for i, s in enumerate(TOY_SUBJECTS)]
        self.pool = {l: [Example(s, l, TOY_TEMPLATES[l].replace("[X]", s), None, n_masks=1) for s in TOY_SUBJECTS]
                     for l in LANGS}

    def system(self, script) -> EditingSystem:
        editor = Scripted(EditorSetup(self.model, {"table": tuple(self.model.table.shape[:2])}, LANGS), self, script)
        return EditingSystem(self.model, ["table"], editor, None)


class Scripted(FullEditor):
    """Writes the edit's target into the table for the languages ``script[edit lang]["takes"]``,
    and, when ``script[edit lang]["breaks"]``, changes every other subject's answer in every
    language (to "lima"). Records the parameters each edit started from."""

    trainable = False

    def __init__(self, setup, world, script):
        super().__init__(setup)
        self.world, self.script, self.started_from = world, script, []

    def edit(self, params, ctx):
        self.started_from.append(params["table"].clone())
        ids = ctx.batch.inputs["input_ids"][0]
        subject = int(ids[1])
        assert int(ids[2]) == self.world.id(VERB[ctx.lang])  # the edit input is in the edit language
        case = next(c for c in self.world.cases if self.world.id(c.id) == subject)
        table = params["table"].clone()
        for lang in self.script[ctx.lang]["takes"]:
            table[subject, self.world.id(VERB[lang])] = 0.0
            table[subject, self.world.id(VERB[lang]), self.world.id(case.inputs[lang].target)] = 9.0
        if self.script[ctx.lang]["breaks"]:
            for other in TOY_SUBJECTS:
                if self.world.id(other) != subject:
                    table[self.world.id(other), :, self.world.id("lima")] = 7.0
        return {"table": table}


@pytest.fixture()
def world() -> World:
    return World()


# en edits reach both languages but break every unrelated input; de edits reach only de and keep them
SCRIPT = {"en": {"takes": ["en", "de"], "breaks": True}, "de": {"takes": ["de"], "breaks": False}}


def test_records_of_single_edits(world):
    system = world.system(SCRIPT)
    anna, boris = world.cases[0], world.cases[1]
    retains = [world.pool["en"][2], world.pool["de"][3]]
    record = edit_and_check(system, world.tok, MASKED_LM, anna, "en", [anna.inputs["en"], anna.inputs["de"]], retains)
    assert (record.edit_lang, record.updates, record.retains) == ("en", [("en", True), ("de", True)],
                                                                  [("en", False), ("de", False)])
    record = edit_and_check(system, world.tok, MASKED_LM, boris, "de", [boris.inputs["en"], boris.inputs["de"]], retains)
    assert (record.edit_lang, record.updates, record.retains) == ("de", [("en", False), ("de", True)],
                                                                  [("en", True), ("de", True)])


def test_evaluation_summary_matches_the_script(world):
    system = world.system(SCRIPT).train()
    edits = []
    m = evaluate(system, world.tok, MASKED_LM, world.cases, world.pool,
                 EvalSettings(LANGS, LANGS, n_update=0, n_retain=4, seed=3, intervals=False),
                 on_edit=lambda: edits.append(1))
    n = len(TOY_SUBJECTS)
    assert m["edits"] == len(edits) == 2 * n and system.training  # the system's mode is given back
    assert m["acc_matrix"] == {"en": {"en": 1.0, "de": 1.0}, "de": {"en": 0.0, "de": 1.0}}
    assert m["con_matrix"] == {"en": {"en": 0.0, "de": 0.0}, "de": {"en": 1.0, "de": 1.0}}
    assert m["per_language"] == {"en": {"acc": 1.0, "con": 0.0, "succ": 0.0, "edits": n},
                                 "de": {"acc": 0.5, "con": 1.0, "succ": harmonic(0.5, 1.0), "edits": n}}
    assert (m["acc"], m["con"]) == (0.75, 0.5) and m["succ"] == pytest.approx(harmonic(0.75, 0.5)) == 0.6
    assert m["succ_per_edit"] == pytest.approx(mean([0.0] * n + [2 / 3] * n))
    # every edit started from the unedited table: edits do not accumulate
    assert all(torch.equal(t, world.model.table) for t in system.editor.started_from)
    assert len(system.editor.started_from) == 2 * n


def test_eval_languages_limit_the_checks_and_max_edits_the_edits(world):
    system = world.system(SCRIPT)
    m = evaluate(system, world.tok, MASKED_LM, world.cases, world.pool,
                 EvalSettings(["en"], ["de"], n_update=0, n_retain=3, max_edits=5, seed=0, intervals=False))
    assert m["edits"] == 5 and m["per_language"]["en"]["edits"] == 5
    assert m["acc_matrix"] == {"en": {"de": 1.0}} and m["con_matrix"] == {"en": {"de": 0.0}}
    # one update input per edit in a random eval language: still one per edit, and parallel
    m = evaluate(world.system(SCRIPT), world.tok, MASKED_LM, world.cases, world.pool,
                 EvalSettings(["de"], LANGS, n_update=1, n_retain=1, seed=0, intervals=False))
    row = m["acc_matrix"]["de"]
    assert set(row) == {"en", "de"} and row["en"] == 0.0 and row["de"] == 1.0
    assert m["per_language"]["de"]["acc"] == pytest.approx(mean(
        [1.0 if lang == "de" else 0.0 for lang in _update_langs(world, "de", seed=0)]))


def _update_langs(world, edit_lang, seed):
    """Which update language each edit checked, read back through a recording editor."""
    import lime_toolkit.evaluation as evaluation

    seen = []

    original = evaluation.check_edit

    def spy(model, tokenizer, task, params, updates, retains):
        seen.extend(u.lang for u in updates)
        return original(model, tokenizer, task, params, updates, retains)

    evaluation.check_edit = spy
    try:
        evaluate(world.system(SCRIPT), world.tok, MASKED_LM, world.cases, world.pool,
                 EvalSettings([edit_lang], LANGS, n_update=1, n_retain=1, seed=seed, intervals=False))
    finally:
        evaluation.check_edit = original
    assert len(seen) == len(world.cases)
    return seen


def test_con_compares_with_the_unedited_models_prediction_not_with_the_truth(world):
    """The unedited model answers "paris" for everyone, which is false for most subjects. An edit
    that leaves that wrong answer alone keeps it (con counts it); one that "fixes" an unrelated
    subject to its true object changes the prediction and does not keep it."""
    anna = world.cases[0]
    edit = encode_examples(world.tok, [anna.inputs["en"]], MASKED_LM)
    unrelated = world.pool["en"][1]  # boris, predicted "paris" before any edit
    untouched = {"table": world.model.table.detach().clone()}
    fixed = untouched["table"].clone()
    fixed[world.id("boris"), world.id("lives"), world.id("oslo")] = 9.0  # say, the truth
    took, kept = check_edit(world.model, world.tok, MASKED_LM, untouched, [anna.inputs["en"]], [unrelated])
    assert (took, kept) == ([False], [True])
    took, kept = check_edit(world.model, world.tok, MASKED_LM, {"table": fixed}, [anna.inputs["en"]], [unrelated])
    assert (took, kept) == ([False], [False])
    assert edit.labels.tolist() == [world.id("rome")]


def test_an_example_counts_only_when_every_position_is_right():
    flags = torch.tensor([True, False, True, True, False])
    rows = torch.tensor([0, 0, 1, 1, 2])
    assert per_example(flags, rows, 4) == [False, True, False, True]  # example 3 has no position: vacuous


def test_multi_token_targets_count_only_when_every_piece_is_predicted(world):
    two = Example("anna", "en", f"anna lives in {TARGET_SLOT} .", "rome oslo")  # 2 mask positions
    table = world.model.table.detach().clone()
    table[world.id("anna"), world.id("lives")] = 0.0
    table[world.id("anna"), world.id("lives"), world.id("rome")] = 9.0  # both positions say "rome"
    took, _ = check_edit(world.model, world.tok, MASKED_LM, {"table": table}, [two], [])
    assert took == [False]
    one = Example("anna", "en", f"anna lives in {TARGET_SLOT} .", "rome")
    took, _ = check_edit(world.model, world.tok, MASKED_LM, {"table": table}, [one], [])
    assert took == [True]


# -- edges of the loop (mutation-testing survivors, docs/testing.md) -------------------------------------

def test_cases_without_an_eval_language_are_skipped_not_the_rest(world):
    """A case with no input in any eval language is passed over; the cases after it still count."""
    only_en = EditCase("anna", {"en": world.cases[0].inputs["en"]})
    cases = [only_en] + world.cases[1:]
    m = evaluate(world.system(SCRIPT), world.tok, MASKED_LM, cases, world.pool,
                 EvalSettings(["en"], ["de"], n_update=0, n_retain=1, seed=0, intervals=False))
    assert m["edits"] == len(world.cases) - 1 and m["acc_matrix"] == {"en": {"de": 1.0}}


def test_no_edit_at_all_is_one_clear_error_and_the_mode_comes_back(world):
    from lime_toolkit.errors import UserError

    system = world.system(SCRIPT).train()
    with pytest.raises(UserError) as err:
        evaluate(system, world.tok, MASKED_LM, [], world.pool, EvalSettings(LANGS, LANGS, intervals=False))
    assert str(err.value) == "no edits to evaluate: the split has no cases in the chosen edit languages"
    assert system.training
    system.eval()
    evaluate(system, world.tok, MASKED_LM, world.cases, world.pool,
             EvalSettings(["de"], LANGS, n_retain=1, max_edits=2, intervals=False))
    assert not system.training  # an evaluating system stays evaluating


def test_max_edits_is_a_seeded_sample_in_the_splits_order(world):
    """The edits kept by ``max_edits`` depend on the seed and the language, come in the split's
    order, and are the same on every run with one seed."""
    def chosen(edit_lang, seed, max_edits=4):
        seen = []
        system = world.system(SCRIPT)
        original = system.editor.edit

        def spy(params, ctx):
            seen.append(int(ctx.batch.inputs["input_ids"][0][1]))
            return original(params, ctx)

        system.editor.edit = spy
        evaluate(system, world.tok, MASKED_LM, world.cases, world.pool,
                 EvalSettings([edit_lang], LANGS, n_update=0, n_retain=1, max_edits=max_edits, seed=seed,
                              intervals=False))
        return seen

    order = [world.id(c.id) for c in world.cases]
    first = chosen("en", 0)
    assert len(first) == 4 and first == sorted(first, key=order.index) and first == chosen("en", 0)
    assert len({tuple(chosen("en", s)) for s in range(6)}) > 1  # the seed decides
    assert len({tuple(chosen(lang, 0)) for lang in LANGS}) > 1 or len(
        {tuple(chosen(lang, 1)) for lang in LANGS}) > 1  # and the language
    assert chosen("en", 0, max_edits=len(world.cases)) == order  # all of them: the split itself


def test_n_update_of_every_eval_language_is_the_same_as_zero(world):
    """Asking for as many update inputs as there are eval languages is "all of them": the same
    update and retain inputs for every edit as n_update=0 (no random draw spent on choosing)."""
    import lime_toolkit.evaluation as evaluation

    def inputs(n_update):
        seen = []
        original = evaluation.check_edit

        def spy(model, tokenizer, task, params, updates, retains):
            seen.append(([(u.id, u.lang) for u in updates], [(r.id, r.lang) for r in retains]))
            return original(model, tokenizer, task, params, updates, retains)

        evaluation.check_edit = spy
        try:
            evaluate(world.system(SCRIPT), world.tok, MASKED_LM, world.cases, world.pool,
                     EvalSettings(LANGS, LANGS, n_update=n_update, n_retain=3, seed=5, intervals=False))
        finally:
            evaluation.check_edit = original
        return seen

    every = inputs(0)
    assert all([lang for _, lang in updates] == LANGS for updates, _ in every)
    assert inputs(len(LANGS)) == every


def test_intervals_only_when_asked(world):
    def run(**kw):
        return evaluate(world.system(SCRIPT), world.tok, MASKED_LM, world.cases, world.pool,
                        EvalSettings(LANGS, LANGS, n_update=0, n_retain=2, seed=1, **kw))

    with_ci, without = run(), run(intervals=False)
    assert without["interval"] == {} and all("interval" not in v for v in without["per_language"].values())
    # en edits always take and never keep: their intervals are single points
    assert with_ci["per_language"]["en"]["interval"]["acc"] == pytest.approx((1.0, 1.0))
    assert with_ci["per_language"]["en"]["interval"]["con"] == pytest.approx((0.0, 0.0))
    assert set(with_ci["interval"]) == {"acc", "con", "succ"}
