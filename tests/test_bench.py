"""``lime-toolkit bench``: the command runs end to end (``--quick``: the tiny test model) and writes
the documented JSON with sane values. Never a wall-clock threshold: the machine decides those."""
from __future__ import annotations

import json
import math

from click.testing import CliRunner

from lime_toolkit.cli.app import cli
from lime_toolkit.cli.bench import bench_table, prep_line
from lime_toolkit.runs.bench import bench_defaults, preparation_part
from lime_toolkit.runs.bench_timing import JSON_KEYS


def positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_quick_bench_writes_the_documented_json(tmp_path):
    path = tmp_path / "b.json"
    result = CliRunner().invoke(cli, ["bench", "--quick", "--json", str(path), "--device", "cpu", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    doc = json.loads(path.read_text())
    assert doc["quick"] is True and doc["device"] == "cpu"
    assert doc["mbert_size"] is None and doc["mlama_prep"] is None
    assert doc["skipped"] == {"mbert_size": "--quick", "mlama_prep": "--quick"}
    demo = doc["demo"]
    for key in JSON_KEYS:
        assert positive(demo[key]), (key, demo[key])
    for key in ("fwd_s", "fwd_bwd_s", "edit_s", "step_s", "eval_loop_edits_per_s", "micro_step_inputs_fwd_bwd_s",
                "micro_step_inputs_fwd_bwd_block_s"):
        assert positive(demo[key]), (key, demo[key])
    # the ratios are the quotients of the times they name
    assert math.isclose(demo["edit_over_fwd"], demo["edit_s"] / demo["fwd_s"])
    assert math.isclose(demo["edit_over_fwd_bwd"], demo["edit_s"] / demo["fwd_bwd_s"])
    assert math.isclose(demo["step_over_fwd_bwd"], demo["step_s"] / 4 / demo["micro_step_inputs_fwd_bwd_s"])
    assert math.isclose(demo["step_over_fwd_bwd_block"],
                        demo["step_s"] / 4 / demo["micro_step_inputs_fwd_bwd_block_s"])
    assert math.isclose(demo["eval_batched_speedup"], demo["eval_edits_per_s"] / demo["eval_loop_edits_per_s"])
    # the demo's MEND trains its step's edits in one pass: that step is timed too, and counted in the peak
    for key in ("step_loop_in_turn_s", "step_batched_s", "peak_memory_step_batched_mb"):
        assert positive(demo[key]), (key, demo[key])
    assert math.isclose(demo["step_batched_speedup"], demo["step_loop_in_turn_s"] / demo["step_batched_s"])
    assert demo["peak_memory_mb"] >= demo["peak_memory_step_batched_mb"]
    assert demo["eval_identical"] is True and demo["eval_batch_size"] == 4
    assert demo["eval_edits"] == {"loop": 4, "batched": 16}
    assert demo["parameters"] > 0 and demo["peak_memory_mb"] > 10  # a Python process with torch, at least
    assert "plain forward" in result.output and "batched / one at a time" in result.output
    assert "edits in one pass (train.batched)" in result.output
    assert "mlama preparation: skipped (--quick)" in result.output


def test_missing_preparation_data_is_skipped_with_a_clear_reason(tmp_path):
    said = []
    prep, reason = preparation_part("mlama", tmp_path / "nowhere", "test", said.append)
    assert prep is None and f"no mlama data at '{tmp_path / 'nowhere'}'" in reason and "--prep-data-dir" in reason
    assert said == [f"mlama preparation skipped: {reason}"]
    doc = {"prep_dataset": "mlama", "mlama_prep": None, "skipped": {"mlama_prep": reason}}
    assert prep_line(doc) == f"mlama preparation: skipped ({reason})"
    (tmp_path / "empty").mkdir()  # a folder without the dataset's files: the dataset's own message
    prep, reason = preparation_part("mlama", tmp_path / "empty", "test", said.append)
    assert prep is None and reason.startswith(f"no mlama data at '{tmp_path / 'empty'}' (")


def test_the_prepared_dataset_comes_from_configuration_not_the_code():
    import inspect

    import lime_toolkit.cli.bench as cli_bench
    import lime_toolkit.runs.bench as bench
    import lime_toolkit.runs.bench_timing as timing

    assert bench_defaults()["prep"]["dataset"] == "mlama"
    for module in (bench, timing, cli_bench):
        assert "mlama" not in inspect.getsource(module).lower()


def test_preparation_is_timed_through_the_dataset_api(tmp_path):
    """Any registered dataset: the toy one needs no files."""
    from lime_toolkit.runs.bench import dataset_preparation

    said = []
    prep = dataset_preparation("demo", tmp_path, "test", said.append)
    assert prep["cold_s"] > 0 and prep["cached_s"] > 0 and prep["languages"] > 0 and prep["test_edits"] > 0
    assert prep_line({"prep_dataset": "demo", "demo_prep": prep, "skipped": {}}).startswith("demo preparation of ")


def test_the_table_has_a_column_per_measured_model():
    row = {"parameters": 2e6, "fwd_s": 0.1, "fwd_bwd_s": 0.3, "edit_s": 0.05, "edit_over_fwd": 0.5,
           "edit_over_fwd_bwd": 0.1667, "step_s": 1.0, "step_over_fwd_bwd": 1.1, "eval_loop_edits_per_s": 2.0,
           "eval_edits_per_s": 12.0, "eval_batch_size": 16, "eval_batched_speedup": 6.0, "eval_identical": True,
           "peak_memory_mb": 900.0}
    table = bench_table({"device": "cpu", "torch_threads": 2, "demo": row, "mbert_size": {**row, "parameters": 1.78e8}})
    assert [c.header.split("\n")[0] for c in table.columns] == ["what", "demo", "mBERT-size"]
    assert "(178.0 M parameters)" in table.columns[2].header
    only_demo = bench_table({"device": "cpu", "torch_threads": 2, "demo": row, "mbert_size": None})
    assert len(only_demo.columns) == 2
