"""Help texts take their defaults from ``defaults.yaml``: change a default there and ``--help`` says so."""
from __future__ import annotations

from click.testing import CliRunner

from lime_toolkit.cli import common
from lime_toolkit.cli.app import cli
from lime_toolkit.config import defaults


def help_of(*command) -> str:
    result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_help_texts_show_the_configured_defaults():
    d = defaults()
    text = help_of("train")
    assert f"Editor plugin name (default {d['editor']})" in text
    assert f"Mask strategy name (default {d['masks']};" in text
    assert f"Optimiser steps (default {d['train']['max_steps']})" in text
    text = help_of("evaluate")
    assert f"Unrelated inputs checked per edit (default {d['eval']['n_retain']})" in text


def test_configured_reads_a_changed_default(monkeypatch):
    monkeypatch.setattr(common, "_defaults", lambda: {"train": {"max_steps": 1234}, "model": None})
    assert common.configured("train.max_steps") == "1234"
    assert common.configured("model") == "null"
