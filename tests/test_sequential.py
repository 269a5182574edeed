"""Sequential and batch editing (lime_toolkit.runs.sequential) on the tiny random model and toy facts.

One sequential edit is the single-edit evaluation; sequential edits start from the weights the
previous ones produced; a batch's update is the sum of its edits' updates, each under its own
language's masks; a full editor (FT) carries its finetuned weights on."""
from __future__ import annotations

import json
import random

import pytest
import torch
from click.testing import CliRunner

from lime_toolkit.architectures import editable_parameters
from lime_toolkit.cli.app import cli
from lime_toolkit.data import MASKED_LM
from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import EditorSetup, FactorEditor, FullEditor
from lime_toolkit.encoding import encode_examples
from lime_toolkit.errors import UserError
from lime_toolkit.evaluation import EvalSettings, edit_and_check
from lime_toolkit.factors import edit_loss
from lime_toolkit.mask_api import MaskSetup
from lime_toolkit.metrics import summarise
from lime_toolkit.plugin_manager import plugin_registered
from lime_toolkit.runs.sequential import check_counts, edit_step, plan_edits, sequential_evaluate, sequential_name, stage_points
from lime_toolkit.sampler import draw_unrelated
from lime_toolkit.testing import ToyDataset, ToyPlugin, save_tiny_masked_lm, tiny_masked_lm
from lime_toolkit_plugins.masks.strategies import L0Masks
from lime_toolkit_plugins.mend.editor import MendEditor

LANGS = ["en", "de"]


class PlainGradient(FactorEditor):
    """Identity transform, fixed step: an edit is one gradient-descent step of size 0.5."""

    def transform(self, name, x, delta, ctx):
        return x, delta

    def step_size(self, name):
        return 0.5


class AddOne(FullEditor):
    """A full editor whose edit adds 1 to every weight it is given and records its batches."""

    trainable = False

    def __init__(self, setup):
        super().__init__(setup)
        self.batches = []

    def edit(self, params, ctx):
        self.batches.append(ctx.batch)
        return {n: t + 1 for n, t in params.items()}


def world(editor="plain", masks=False):
    model, tok = tiny_masked_lm()
    names = editable_parameters(model, last_n_layers=2)
    shapes = {n: tuple(dict(model.named_parameters())[n].shape) for n in names}
    setup = EditorSetup(model, shapes, LANGS, {"rank": 8})
    torch.manual_seed(1)
    if editor == "mend":
        ed = MendEditor(setup)
        with torch.no_grad():  # away from the identity start, so the transform matters
            for p in ed.networks.parameters():
                p.add_(0.05 * torch.randn_like(p))
    elif editor == "full":
        ed = AddOne(setup)
    elif editor == "ke":
        from lime_toolkit_plugins.ke.editor import KnowledgeEditor

        ed = KnowledgeEditor(EditorSetup(model, shapes, LANGS, {"hidden": 8, "mlp_hidden": 8}))
    elif editor == "et":
        from lime_toolkit_plugins.et.editor import EditableTrainingEditor

        ed = EditableTrainingEditor(EditorSetup(model, shapes, LANGS, {}))
    else:
        ed = PlainGradient(setup)
    mask = L0Masks(MaskSetup(shapes, LANGS, {"log_alpha_init_std": 2.0})) if masks else None
    system = EditingSystem(model, names, ed, mask).eval()
    return system, tok, ToyDataset()


def settings(seed=0, **kw):
    return EvalSettings(LANGS, LANGS, n_update=0, n_retain=3, seed=seed, intervals=False, **kw)


def grads_at(system, tok, example, params):
    """Autograd's gradient of one edit's loss at ``params``."""
    leaves = {n: t.detach().clone().requires_grad_() for n, t in params.items()}
    batch = encode_examples(tok, [example], MASKED_LM)
    return dict(zip(leaves, torch.autograd.grad(edit_loss(system.model, batch, leaves), list(leaves.values()))))


def test_one_sequential_edit_is_the_single_edit_evaluation():
    system, tok, data = world("mend", masks=True)
    cases, pool = data.edit_cases("test"), data.locality_pool("test")
    out = sequential_evaluate(system, tok, MASKED_LM, cases, pool, settings(), n_edits=1)
    (case_id, lang), = out["order"]
    case = next(c for c in cases if c.id == case_id)
    # the same parallel and unrelated inputs evaluation.evaluate draws for that edit
    rng = random.Random(f"0:{lang}:{case.id}")
    retains = [draw_unrelated(rng, pool, LANGS, case.id) for _ in range(3)]
    record = edit_and_check(system, tok, MASKED_LM, case, lang, [case.inputs[l] for l in LANGS], retains)
    assert out["final"] == summarise([record], LANGS, LANGS, intervals=False)
    assert [s["edits"] for s in out["stages"]] == [1] and out["stages"][0]["succ"] == out["final"]["succ"]
    # and the edited weights are exactly the single edit's (a batch of one is one edit)
    base = {n: t.detach() for n, t in system.base_params().items()}
    after = edit_step(system, tok, MASKED_LM, [(case.inputs[lang], lang)], base)
    with torch.no_grad():
        single = system.edit(encode_examples(tok, [case.inputs[lang]], MASKED_LM), lang)
    assert all(torch.equal(after[n], single[n]) for n in single)


@pytest.mark.parametrize("editor", ["mend", "ke", "et"])
@pytest.mark.parametrize("masks", [False, True])
def test_every_factor_editor_edits_in_sequence_and_in_batches(editor, masks):
    """A batch of one is the single edit; a batch of two is the sum of the two updates on the same
    weights; sequential edits run (ET from its own trained copy of the weights)."""
    system, tok, data = world(editor, masks)
    cases = data.edit_cases("train")
    edits = [(cases[0].inputs["en"], "en"), (cases[1].inputs["de"], "de")]
    base = {n: t.detach() for n, t in system.base_params().items()}
    with torch.no_grad():
        singles = [system.edit(encode_examples(tok, [ex], MASKED_LM), lang) for ex, lang in edits]
    one = edit_step(system, tok, MASKED_LM, edits[:1], base)
    both = edit_step(system, tok, MASKED_LM, edits, base)
    for n in base:
        assert torch.equal(one[n], singles[0][n])
        torch.testing.assert_close(both[n], singles[0][n] + singles[1][n] - base[n], atol=1e-6, rtol=1e-5)
    out = sequential_evaluate(system, tok, MASKED_LM, cases, data.locality_pool("train"), settings(), n_edits=3)
    assert [s["edits"] for s in out["stages"]] == [1, 2, 3] and out["final"]["edits"] == 3


def test_sequential_edits_start_from_the_previous_edits_weights():
    system, tok, data = world()
    cases = data.edit_cases("train")
    e1, e2 = (cases[0].inputs["en"], "en"), (cases[1].inputs["de"], "de")
    base = {n: t.detach() for n, t in system.base_params().items()}
    w1 = edit_step(system, tok, MASKED_LM, [e1], base)
    w2 = edit_step(system, tok, MASKED_LM, [e2], w1)
    g1 = grads_at(system, tok, e1[0], base)
    g2 = grads_at(system, tok, e2[0], w1)  # the second gradient is taken on the edited model
    for n in base:
        torch.testing.assert_close(w2[n], base[n] - 0.5 * g1[n] - 0.5 * g2[n], atol=1e-6, rtol=1e-5)
    fresh = grads_at(system, tok, e2[0], base)
    assert any(not torch.allclose(g2[n], fresh[n]) for n in base)


def test_a_batch_update_is_the_sum_of_its_edits_updates_each_under_its_own_masks():
    system, tok, data = world("mend", masks=True)
    cases = data.edit_cases("train")
    edits = [(cases[0].inputs["en"], "en"), (cases[1].inputs["de"], "de"), (cases[2].inputs["en"], "en")]
    base = {n: t.detach() for n, t in system.base_params().items()}
    batch = edit_step(system, tok, MASKED_LM, edits, base)
    with torch.no_grad():
        singles = [system.edit(encode_examples(tok, [ex], MASKED_LM), lang) for ex, lang in edits]
    for n in base:
        summed = base[n] - sum(base[n] - s[n] for s in singles)
        torch.testing.assert_close(batch[n], summed, atol=1e-6, rtol=1e-5)
    # the de edit under the en masks would be another update: the masks are per edit
    with torch.no_grad():
        wrong = system.edit(encode_examples(tok, [edits[1][0]], MASKED_LM), "en")
    assert any(not torch.allclose(wrong[n], singles[1][n]) for n in base)


def test_plain_gradient_batch_is_one_step_on_the_summed_gradients():
    system, tok, data = world()
    cases = data.edit_cases("train")
    edits = [(cases[0].inputs["en"], "en"), (cases[3].inputs["de"], "de")]
    base = {n: t.detach() for n, t in system.base_params().items()}
    batch = edit_step(system, tok, MASKED_LM, edits, base)
    g = [grads_at(system, tok, ex, base) for ex, _ in edits]
    for n in base:
        torch.testing.assert_close(batch[n], base[n] - 0.5 * (g[0][n] + g[1][n]), atol=1e-6, rtol=1e-5)


def test_a_full_editor_carries_its_weights_on_and_gets_a_batch_at_once():
    system, tok, data = world("full")
    base = {n: t.detach() for n, t in system.base_params().items()}
    out = sequential_evaluate(system, tok, MASKED_LM, data.edit_cases("train"), data.locality_pool("train"),
                              settings(), n_edits=3, batch_edits=2)
    assert [len(b.examples) for b in system.editor.batches] == [2, 1]
    assert [(s["edits"], s["steps"]) for s in out["stages"]] == [(2, 1), (3, 2)]  # stages 1 and 3 reached
    step = edit_step(system, tok, MASKED_LM, [(data.edit_cases("train")[0].inputs["en"], "en")], base)
    assert all(torch.equal(step[n], base[n] + 1) for n in base)


def test_stages_check_every_edit_so_far_against_the_unedited_model():
    system, tok, data = world()
    cases, pool = data.edit_cases("train"), data.locality_pool("train")
    out = sequential_evaluate(system, tok, MASKED_LM, cases, pool, settings(), n_edits=2)
    assert [s["edits"] for s in out["stages"]] == [1, 2]
    assert out["final"]["edits"] == 2 and sum(v["edits"] for v in out["stages"][1]["per_language"].values()) == 2
    plan = plan_edits(cases, pool, settings(), 2, "train")
    ids = {e.case.id for e in plan}
    assert all(r.id not in ids for e in plan for r in e.retains)  # no unrelated input is an edited item
    assert len({e.case.id for e in plan}) == 2  # each case edited once


def test_the_order_is_seeded():
    _, _, data = world()
    cases, pool = data.edit_cases("train"), data.locality_pool("train")
    order = lambda seed: [(e.case.id, e.lang) for e in plan_edits(cases, pool, settings(seed), 3, "train")]  # noqa: E731
    assert order(0) == order(0)
    assert len({tuple(order(s)) for s in range(6)}) > 1


def test_bad_counts_are_one_line_errors():
    assert stage_points(100) == [1, 2, 5, 10, 20, 50, 100] and stage_points(7) == [1, 2, 5, 7]
    assert check_counts(None, 4) == (4, 4) and check_counts(10, None) == (10, 1) and check_counts(10, 5) == (10, 5)
    assert sequential_name(100, 1) == "_seq100" and sequential_name(100, 10) == "_seq100_b10"
    with pytest.raises(UserError, match="--sequential must be at least 1"):
        check_counts(0, None)
    with pytest.raises(UserError, match="--batch-edits must be at least 1"):
        check_counts(5, 0)
    with pytest.raises(UserError, match="--batch-edits 6 is larger than --sequential 5"):
        check_counts(5, 6)
    _, _, data = world()
    cases, pool = data.edit_cases("test"), data.locality_pool("test")  # 2 cases x 2 edit languages
    with pytest.raises(UserError, match="has 4 edits in the edit languages"):
        plan_edits(cases, pool, settings(), 5)
    with pytest.raises(UserError, match="edits every item of the test split"):
        plan_edits(cases, pool, settings(), 2)


def test_every_case_comes_once_before_any_comes_again_and_unrelated_inputs_fall_back():
    _, _, data = world()
    cases, other = data.edit_cases("test"), data.locality_pool("dev")
    for seed in range(4):
        plan = plan_edits(cases, data.locality_pool("test"), settings(seed), 4, fallback_pool=other)
        assert len({e.case.id for e in plan[:2]}) == 2 and len({(e.case.id, e.lang) for e in plan}) == 4
        assert all(r.id in {ex.id for ex in other["en"]} for e in plan for r in e.retains)


# -- the command line --------------------------------------------------------------------------------

def test_evaluate_sequential_and_batch_from_the_command_line(tmp_path):
    """An ft run on the toy world: the JSON has the stages, the markdown their table, the report the
    curves; a bad count is one line."""
    save_tiny_masked_lm(tmp_path / "model")
    run = tmp_path / "run"
    with plugin_registered(ToyPlugin(), "test-sequential"):
        invoke = lambda *args: CliRunner().invoke(cli, [str(a) for a in args])  # noqa: E731
        done = invoke("train", "--dataset", "toy", "--model", tmp_path / "model", "--device", "cpu", "--editor", "ft",
                      "--masks", "none", "--set", "editor_options.ft.max_steps=3", "--out", run, "--quiet")
        assert done.exit_code == 0, done.output
        bad = invoke("evaluate", run, "--sequential", "0")
        assert bad.exit_code == 2 and bad.output == "Error: --sequential must be at least 1 (got 0)\n"
        bad = invoke("evaluate", run, "--sequential", "2", "--batch-edits", "3")
        assert bad.exit_code == 2 and "--batch-edits 3 is larger than --sequential 2" in bad.output
        done = invoke("evaluate", run, "--sequential", "3", "--batch-edits", "2", "--n-retain", "2", "--quiet")
        assert done.exit_code == 0, done.output
        doc = json.loads((run / "eval" / "test_all-to-all_u0_r2_seq3_b2.json").read_text())
        assert doc["setting"]["sequential"] == 3 and doc["setting"]["batch_edits"] == 2
        assert doc["setting"]["retain_split"] == "dev"  # 3 edits cover both test items
        assert [(s["edits"], s["steps"]) for s in doc["sequential"]["stages"]] == [(2, 1), (3, 2)]
        assert doc["edits"] == 3 and doc["succ"] == doc["sequential"]["stages"][-1]["succ"]
        assert "| 3 | 2 |" in (run / "eval" / "test_all-to-all_u0_r2_seq3_b2.md").read_text()
        report = invoke("report", run, "--out", tmp_path / "report.html")
        assert report.exit_code == 0, report.output
        assert "Sequential and batch editing" in (tmp_path / "report.html").read_text()
