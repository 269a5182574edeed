"""Two options of the fourth diagnosis round (docs/diagnosis.md): ``eval.edit_scale`` multiplies
every edit's update at evaluation (a probe of whether edits are too weak or too strong), and
``train.hard_targets`` makes each training edit take the hardest of k drawn targets."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from test_batched_evaluation import SETTINGS, World

from lime_toolkit.cli.common import parse_settings
from lime_toolkit.config import load_config
from lime_toolkit.data import EditCase, Example
from lime_toolkit.editing import EditingSystem, scaled_edits
from lime_toolkit.encoding import encode_examples
from lime_toolkit.errors import UserError
from lime_toolkit.evaluation import evaluate
from lime_toolkit.runs.evaluate import setting_name
from lime_toolkit.sampler import CrossLingualSampler, LanguageRoles
from lime_toolkit_plugins.ft.editor import FinetuneEditor


@pytest.fixture(scope="module")
def world():
    return World()


def edit_batch(world):
    case = world.cases[0]
    return encode_examples(world.tok, [case.inputs["en"]], "masked-lm")


def test_a_scaled_edit_is_the_edit_times_the_scale(world):
    system = EditingSystem(world.model, world.names, world.mend(10.0), world.l0()).eval()
    base = system.base_params()
    with torch.no_grad():
        plain = system.edit(edit_batch(world), "en")
        with scaled_edits(system, 2.5):
            scaled = system.edit(edit_batch(world), "en")
    assert system.edit_scale == 1.0  # restored on leaving
    for name in base:
        assert (plain[name] - base[name]).abs().max() > 0
        torch.testing.assert_close(scaled[name] - base[name], 2.5 * (plain[name] - base[name]))


def test_a_full_editors_change_is_scaled_too(world):
    system = EditingSystem(world.model, world.names, FinetuneEditor(world.setup(lr=1e-2, max_steps=3)), None)
    base = system.base_params()
    plain = system.edit(edit_batch(world), "en")
    with scaled_edits(system, 0.5):
        half = system.edit(edit_batch(world), "en")
    for name in base:
        torch.testing.assert_close(half[name] - base[name], 0.5 * (plain[name] - base[name]))


def test_scaled_evaluation_is_the_same_batched_and_in_a_loop_and_differs_from_the_plain_one(world):
    system = EditingSystem(world.model, world.names, world.mend(10.0), world.l0())
    plain = evaluate(system, world.tok, "masked-lm", world.cases, world.pool, SETTINGS)
    scaled = [evaluate(system, world.tok, "masked-lm", world.cases, world.pool,
                       dataclasses.replace(SETTINGS, edit_scale=3.0, batch_size=size)) for size in (1, 7)]
    assert scaled[0] == scaled[1]
    assert (scaled[0]["acc"], scaled[0]["con"]) != (plain["acc"], plain["con"])
    assert system.edit_scale == 1.0


def test_edit_scale_is_a_checked_config_key_and_names_the_setting():
    assert load_config(None)["eval"]["edit_scale"] == 1.0
    assert load_config(None, parse_settings(["eval.edit_scale=1.5"]))["eval"]["edit_scale"] == 1.5
    with pytest.raises(UserError, match="eval.edit_scale"):
        load_config(None, parse_settings(["eval.edit_scale=0"]))
    assert setting_name("test", "all", "all", 0) == "test_all-to-all_u0"
    assert setting_name("test", "all", "all", 0, 4, 1.5) == "test_all-to-all_u0_x1.5"


LANGS = ["en", "de"]


def case_with_alternatives() -> EditCase:
    alts = tuple({l: f"{l}-alt{k}" for l in LANGS} for k in range(5))
    return EditCase("c0", {l: Example("c0", l, f"{l} item 0 [Y]", f"{l}-new0") for l in LANGS}, alternatives=alts)


def make_sampler(**kw) -> CrossLingualSampler:
    pool = {l: [Example(f"c{i}", l, f"{l} item {i} [Y]", None, 1) for i in range(4)] for l in LANGS}
    return CrossLingualSampler([case_with_alternatives()], pool, LanguageRoles.parse("all", LANGS), n_retain=2,
                               seed=3, n_update=0, **kw)


def hardness(case: EditCase) -> float:
    """alt3 is the hardest target, the case's own the easiest."""
    target = str(case.inputs["en"].target)
    return {"en-new0": -1.0}.get(target, 10.0 if target == "en-alt3" else float(target[-1]))


def test_hard_targets_take_the_hardest_of_k_drawn_targets():
    every = make_sampler(hard_targets=6, difficulty=hardness)  # k >= the 6 target sets: always the hardest
    assert {every.draw(step).edit.target for step in range(30)} == {"en-alt3", "de-alt3"}
    two = make_sampler(hard_targets=2, difficulty=hardness)
    drawn = [two.draw(step) for step in range(200)]
    assert all(d.updates[0].target.split("-")[1] == d.edit.target.split("-")[1] for d in drawn)  # still parallel
    # the hardest of two distinct draws is never the easiest target (the case's own)
    assert "new0" not in {d.edit.target.split("-")[1] for d in drawn}
    assert {d.edit.target.split("-")[1] for d in drawn} == {"alt0", "alt1", "alt2", "alt3", "alt4"}


def test_one_hard_target_or_no_scorer_keeps_the_uniform_draws():
    plain = make_sampler()
    for other in (make_sampler(hard_targets=1, difficulty=hardness), make_sampler(hard_targets=3)):
        assert [other.draw(step) for step in range(50)] == [plain.draw(step) for step in range(50)]
    with pytest.raises(UserError, match="train.hard_targets"):
        load_config(None, parse_settings(["train.hard_targets=0"]))


def test_loss_power_scales_each_edit_by_its_loss_in_the_loop_and_in_batches(world):
    import math

    from lime_toolkit.factors import edit_loss

    system = EditingSystem(world.model, world.names, world.mend(10.0), world.l0()).eval()
    base = system.base_params()
    with torch.no_grad():
        plain = system.edit(edit_batch(world), "en")
        loss = float(edit_loss(world.model, edit_batch(world), {}))
        system.loss_power = 0.5
        try:
            powered = system.edit(edit_batch(world), "en")
            uniform = math.log(world.model.get_output_embeddings().out_features)
            assert system.uniform_loss() == pytest.approx(uniform)
            for name in base:
                torch.testing.assert_close(powered[name] - base[name],
                                           (loss / uniform) ** 0.5 * (plain[name] - base[name]))
            loop = world.records(system, 1)
            assert world.records(system, 5) == loop
        finally:
            system.loss_power = 0.0
    assert load_config(None, parse_settings(["edit.loss_power=1"]))["edit"]["loss_power"] == 1
    with pytest.raises(UserError, match="edit.loss_power"):
        load_config(None, parse_settings(["edit.loss_power=-1"]))
