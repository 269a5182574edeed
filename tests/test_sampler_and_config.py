"""The cross-lingual sampler's draws, edit-layer selection and command-line settings."""
from __future__ import annotations

import pytest

from lime_toolkit.cli import parse_settings
from lime_toolkit.config import load_config
from lime_toolkit.data import EditCase, Example
from lime_toolkit.errors import UserError
from lime_toolkit.metrics import EditRecord, bootstrap_intervals
from lime_toolkit.sampler import CrossLingualSampler, LanguageRoles

LANGS = ["en", "de", "zh"]


def case(i: int, alternatives=()) -> EditCase:
    return EditCase(f"c{i}", {l: Example(f"c{i}", l, f"{l} item {i} [Y]", f"{l}-new{i}") for l in LANGS},
                    alternatives=tuple(alternatives))


def pool() -> dict[str, list[Example]]:
    return {l: [Example(f"c{i}", l, f"{l} item {i} [Y]", None, 1) for i in range(6)] for l in LANGS}


def sampler(cases, **kw) -> CrossLingualSampler:
    return CrossLingualSampler(cases, pool(), LanguageRoles.parse("all", LANGS), n_retain=3, seed=7, **kw)


def test_update_inputs_are_parallel_distinct_and_deterministic():
    cases = [case(i) for i in range(6)]
    for n_update, expected in ((1, 1), (2, 2), (0, 3), (9, 3)):
        s = sampler(cases, n_update=n_update)
        for step in range(20):
            draw = s.draw(step, 1)
            langs = [u.lang for u in draw.updates]
            assert len(langs) == expected == len(set(langs))
            assert all(u.id == draw.edit.id == draw.case.id for u in draw.updates)
            assert all(r.id != draw.case.id for r in draw.retain)
            assert draw == s.draw(step, 1)  # the same (seed, step, micro-step): the same draw
            assert draw.update is draw.updates[0]


def test_alternative_targets_are_drawn_and_evaluation_keeps_the_own():
    alts = [{l: f"{l}-alt{k}" for l in LANGS} for k in range(3)]
    s = sampler([case(0, alts)])
    seen = {s.draw(step).edit.target for step in range(200)}
    assert seen == {"en-new0", "de-new0", "zh-new0"} | {f"{l}-alt{k}" for l in LANGS for k in range(3)}
    draw = next(s.draw(step) for step in range(200) if "alt" in str(s.draw(step).edit.target))
    # the edit and its update inputs carry the same alternative (parallel targets stay parallel)
    k = draw.edit.target.split("alt")[1]
    assert all(u.target == f"{u.lang}-alt{k}" for u in draw.updates)
    assert case(0, alts).with_targets(alts[1]).inputs["de"].target == "de-alt1"


def test_set_parses_yaml_values_and_rejects_bad_items():
    got = parse_settings(["train.max_steps=500", "edit.layers=[1, 2]", "editor_options.mend.lr=2e-4", "x.y=abc"])
    assert got == {"train.max_steps": 500, "edit.layers": [1, 2], "editor_options.mend.lr": 2e-4, "x.y": "abc"}
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_settings(["train.max_steps"])
    with pytest.raises(UserError, match="unknown config key"):
        load_config(None, parse_settings(["train.max_stepz=3"]))
    assert load_config(None, parse_settings(["train.max_steps=7"]))["train"]["max_steps"] == 7
    from lime_toolkit.cli import resolve_config

    # an unset flag (--max-steps not given) leaves --set's value alone; a given flag wins
    assert resolve_config(None, max_steps=None, settings=("train.max_steps=7",))["train"]["max_steps"] == 7
    assert resolve_config(None, max_steps=9, settings=("train.max_steps=7",))["train"]["max_steps"] == 9


def test_edit_layers_select_mlp_weights_and_reject_out_of_range():
    from transformers import BertConfig, BertForMaskedLM

    from lime_toolkit.architectures import editable_parameters

    model = BertForMaskedLM(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=4, num_attention_heads=2,
                                       intermediate_size=16))
    names = editable_parameters(model, layers=[1, -1])
    assert names == [f"bert.encoder.layer.{i}.{w}.dense.weight" for i in (1, 3) for w in ("intermediate", "output")]
    assert editable_parameters(model, last_n_layers=2) == editable_parameters(model, layers=[2, 3])
    with pytest.raises(UserError, match="4 layers"):
        editable_parameters(model, layers=[4])


def test_bootstrap_intervals_cover_the_estimate_and_are_seeded():
    records = [EditRecord("en", [("de", i % 3 != 0)], [("de", True)]) for i in range(30)]
    records += [EditRecord("de", [("en", i % 2 == 0)], [("en", i % 5 != 0)]) for i in range(30)]
    macro, per_lang = bootstrap_intervals(records, ["en", "de"])
    assert macro == bootstrap_intervals(records, ["en", "de"])[0]
    acc = (20 / 30 + 15 / 30) / 2
    assert macro["acc"][0] < acc < macro["acc"][1] and macro["acc"][1] - macro["acc"][0] < 0.3
    assert per_lang["en"]["con"] == [1.0, 1.0]  # every retain check of en kept: no resample differs
    assert bootstrap_intervals([], ["en"]) == ({}, {})
    from lime_toolkit.metrics import summarise

    quick = summarise(records, ["en", "de"], ["en", "de"], intervals=False)  # what validation asks for
    assert quick["interval"] == {} and "interval" not in quick["per_language"]["en"]
    assert summarise(records, ["en", "de"], ["en", "de"])["interval"] == macro
