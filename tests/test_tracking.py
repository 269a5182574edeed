"""``train --log-with``: Accelerate's trackers next to train_log.jsonl (lime_toolkit.runs.tracking)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lime_toolkit.cli.app import cli
from lime_toolkit.plugin_manager import plugin_registered
from lime_toolkit.runs.tracking import flat_config, parse_log_with
from lime_toolkit.testing import ToyPlugin, save_tiny_masked_lm


def test_tensorboard_gets_every_step_and_validation(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'lime-toolkit[tracking]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    save_tiny_masked_lm(tmp_path / "model")
    run = tmp_path / "run"
    with plugin_registered(ToyPlugin(), "test-tracking"):
        done = CliRunner().invoke(cli, [str(a) for a in (
            "train", "--dataset", "toy", "--model", tmp_path / "model", "--device", "cpu", "--max-steps", "3",
            "--set", "train.val_every=2", "--set", "train.accumulate=1", "--log-with", "tensorboard",
            "--out", run, "--quiet")])
    assert done.exit_code == 0, done.output
    events = sorted((run / "tracking").rglob("events.out.tfevents.*"))
    assert events
    scalars = {}
    for path in events:
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if r["event"] == "step"]
    assert [s for s, _ in scalars["train/loss"]] == [1, 2, 3]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    assert [s for s, _ in scalars["val/succ"]] == [2, 3]  # every val_every steps and at the end


def test_log_with_errors_are_one_line(monkeypatch):
    from lime_toolkit.errors import UserError

    assert parse_log_with(None) == [] and parse_log_with(" ") == []
    with pytest.raises(UserError, match="unknown tracker 'tensorbored'; Accelerate supports: tensorboard, wandb"):
        parse_log_with("tensorbored")
    import accelerate.tracking

    monkeypatch.setattr(accelerate.tracking, "is_tensorboard_available", lambda: False)
    with pytest.raises(UserError, match=r"--log-with tensorboard: the tracker is not installed; pip install tensorboard"):
        parse_log_with("tensorboard")
    result = CliRunner().invoke(cli, ["train", "--log-with", "tensorboard"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "pip install tensorboard" in result.output


def test_the_config_is_flattened_for_trackers():
    assert flat_config({"a": 1, "b": {"c": None, "d": [1, 2], "e": {"f": "x"}}}) == {
        "a": 1, "b.c": "null", "b.d": "[1, 2]", "b.e.f": "x"}
