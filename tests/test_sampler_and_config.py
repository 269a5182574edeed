"""The cross-lingual sampler's draws, edit-layer selection and command-line settings."""
from __future__ import annotations

import pytest

from lime_toolkit.cli.common import parse_settings
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
    from lime_toolkit.cli.common import resolve_config

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


def test_every_default_key_has_a_spec_and_the_defaults_pass_it():
    from lime_toolkit.config import defaults, validate
    from lime_toolkit.config_schema import SCHEMA

    def keys(d, prefix=""):
        return {prefix + k for k in d} | {x for k, v in d.items() if isinstance(v, dict) and k in SCHEMA_SECTIONS
                                          for x in keys(v, prefix + k + ".")}

    SCHEMA_SECTIONS = {k for k, v in SCHEMA.items() if isinstance(v, dict)}
    assert keys(defaults()) == keys(SCHEMA)
    assert validate(defaults()) == defaults()


def test_config_values_are_checked_once_with_one_line_naming_key_value_and_range(tmp_path):
    from lime_toolkit.config_schema import NULL

    with pytest.raises(UserError, match=r"^train.max_steps: -5 is not allowed; expected an integer >= 1 \(from the "
                                        r"command line\)$"):
        load_config(None, parse_settings(["train.max_steps=-5"]))
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  lr: -1\n")
    with pytest.raises(UserError, match=r"^train.lr: -1 is not allowed; expected a number > 0 or null \(in config file"):
        load_config(path)
    # the file's bad value overridden on the command line is fine: the merged result is what is checked
    assert load_config(path, parse_settings(["train.lr=1e-3"]))["train"]["lr"] == 1e-3
    with pytest.raises(UserError, match="did you mean 'eval.max_edits'"):
        load_config(None, {"eval.max_edit": 3})
    # YAML 1.1 reads 1e-4 as a string: a number key takes it as the number
    path.write_text("train:\n  lr: 1e-4\n")
    assert load_config(path)["train"]["lr"] == 1e-4
    # --set KEY=null: null where allowed; inside option sections the key goes (the component's default)
    assert parse_settings(["train.lr=null"]) == {"train.lr": NULL}
    path.write_text("train: {lr: 0.5}\neditor_options: {mend: {rank: 8}}\n")
    config = load_config(path, parse_settings(["train.lr=null", "editor_options.mend.rank=null",
                                               "editor_options.ke.lr=null"]))
    assert config["train"]["lr"] is None and "rank" not in config["editor_options"]["mend"]
    assert config["editor_options"]["ke"] == {}  # the demo default removed: KE's own default lr applies
    with pytest.raises(UserError, match="train.val_every: null is not allowed; expected an integer >= 1"):
        load_config(None, parse_settings(["train.val_every=null"]))


def test_component_options_are_checked_against_their_specs():
    from lime_toolkit.plugin_manager import get_plugin_manager
    from lime_toolkit.runs.build import check_component_options

    pm = get_plugin_manager()
    check_component_options(load_config(), pm)
    with pytest.raises(UserError, match=r"^mask_options.l0.eps: 0.7 is not allowed; expected a number > 0 and < 0.5$"):
        check_component_options(load_config(None, {"mask_options.l0.eps": 0.7}), pm)
    with pytest.raises(UserError, match="did you mean 'editor_options.ft.max_steps'"):
        check_component_options(load_config(None, {"editor_options.ft.max_step": 3}), pm)
    # plain keys reach every editor; only the chosen one's specs apply to them
    check_component_options(load_config(None, {"editor_options.hidden": 8}), pm)
    with pytest.raises(UserError, match="editor_options.hidden: 0 is not allowed"):
        check_component_options(load_config(None, {"editor_options.hidden": 0, "editor": "ke"}), pm)


def test_example_configs_and_grids_are_valid():
    from pathlib import Path

    from lime_toolkit.plugin_manager import get_plugin_manager
    from lime_toolkit.runs.build import check_component_options
    from lime_toolkit.runs.grid import base_config, check_runs, expand, grid_spec

    root = Path(__file__).resolve().parents[1] / "examples" / "configs"
    for path in sorted(root.glob("*.yaml")):
        if "editors" in path.read_text():
            spec = grid_spec(None, str(path))
            runs = expand(spec, base_config(None, spec, {}), [0], Path("x"), {"ft"})
            check_runs(runs)
            configs = [r.config for r in runs]
        else:
            configs = [load_config(path)]
        for config in configs:
            check_component_options(config, get_plugin_manager())
