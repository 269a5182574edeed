"""Mistakes in what a user typed end a command with exactly one line, ``Error: ...``, and exit
status 2 (docs/cli.md), checked as one line: no traceback, no wrapped or multi-line message.

Runs on the toy world (a tiny random model saved to this module's temporary directory and the toy
dataset registered in-process), so no demo model is needed.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lime_toolkit.cli.app import cli
from lime_toolkit.plugin_manager import plugin_registered
from lime_toolkit.testing import ToyPlugin, save_tiny_masked_lm


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-errors")
    save_tiny_masked_lm(root / "model")
    with plugin_registered(ToyPlugin(), "test-cli-errors"):
        yield root


def one_line_error(args) -> str:
    """Run the command; it must fail with status 2 and print exactly one line, the error."""
    result = CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "60"})  # narrow: no wrapping
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, repr(result.output)
    return result.output.strip()


@pytest.mark.parametrize("args, message", [
    (["--editor", "nope"], "unknown editor 'nope'; installed: et, ft, ke, mend"),
    (["--masks", "nope"], "unknown mask strategy 'nope'; installed: l0, none"),
    (["--dataset", "nope"], "unknown dataset 'nope'; installed:"),
    (["--model", "./no/such/dir"], "model directory './no/such/dir' does not exist"),
    (["--editor", "ft", "--masks", "l0"], "editor 'ft' implements the whole edit stage and cannot use masks 'l0'"),
    (["--train-langs", "en,xx"], "unknown language(s) xx; this dataset has: en, de"),
    (["--set", "train.max_stepz=3"], "unknown config key 'train.max_stepz'"),
    (["--set", "train.max_steps"], "--set expects KEY=VALUE"),
])
def test_train_input_errors_are_one_line(toy, tmp_path, args, message):
    base = ["train", "--dataset", "toy", "--model", toy / "model", "--device", "cpu", "--max-steps", "1",
            "--out", tmp_path / "run", "--quiet"]
    assert message in one_line_error(base + args)


def test_config_file_errors_are_one_line(toy, tmp_path):
    assert "does not exist" in one_line_error(["train", "--config", tmp_path / "missing.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    assert "is not valid YAML" in one_line_error(["train", "--config", bad])
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    assert "must hold a mapping" in one_line_error(["train", "--config", listed])


def test_a_different_run_in_the_same_directory_is_refused_in_one_line(toy, tmp_path):
    """Self-contained: the first run is made here, not borrowed from another test."""
    out = tmp_path / "run"
    base = ["train", "--dataset", "toy", "--model", toy / "model", "--device", "cpu", "--editor", "ft",
            "--masks", "none", "--out", out, "--quiet"]
    done = CliRunner().invoke(cli, [str(a) for a in base])
    assert done.exit_code == 0, done.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["setting"]["editor"] == "ft" and metrics["edits"] == 4  # 2 test edits x 2 languages
    before = (out / "metrics.json").read_bytes()
    error = one_line_error(base + ["--seed", "1"])
    assert f"'{out}' holds a run with a different configuration" in error
    assert (out / "metrics.json").read_bytes() == before  # nothing overwritten


def test_grid_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "grid.yaml"
    bad.write_text("editors: [mend\n")
    assert "is not valid YAML" in one_line_error(["grid", "--grid", bad, "--out", tmp_path / "runs"])
    bad.write_text("- mend\n")
    assert "must hold a mapping" in one_line_error(["grid", "--grid", bad, "--out", tmp_path / "runs"])
    bad.write_text("editorz: [mend]\n")
    assert "unknown key 'editorz'; did you mean 'editors'" in one_line_error(["grid", "--grid", bad, "--out", tmp_path / "runs"])
    assert "give exactly one of" in one_line_error(["grid", "--out", tmp_path / "runs"])


def test_dataset_errors_are_one_line(tmp_path):
    assert "does not exist" in one_line_error(["data", "describe", "--dataset", "xnli", "--data-dir",
                                               tmp_path / "nowhere"])
    assert "does not exist" in one_line_error(["data", "describe", "--dataset", "mlama", "--data-dir",
                                               tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    assert "no XNLI data found" in one_line_error(["data", "describe", "--dataset", "xnli", "--data-dir",
                                                   tmp_path / "empty"])


def test_run_directory_errors_are_one_line(tmp_path):
    assert "is not a run directory" in one_line_error(["evaluate", tmp_path])
    assert "is not a run directory" in one_line_error(["edit", tmp_path, "--input", "a [MASK] .", "--target", "b",
                                                       "--lang", "en"])
