"""Exact resume: the checkpoint holds every random state and the sampler position, so a run killed
with SIGKILL and resumed repeats the uninterrupted run's numbers; PYTHONHASHSEED changes nothing.

The slow tests train MEND with LiME masks on the toy world (a 2-layer, 32-wide BERT) in
subprocesses that kill themselves with SIGKILL at a chosen moment.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lime_toolkit.checkpoint import EDITOR_FILE, STATE_FILE, load_checkpoint, recover, save_checkpoint, verify
from lime_toolkit.errors import UserError

# -- in-process: what a checkpoint holds and how a damaged or half-swapped one is handled --------------


def module():
    torch.manual_seed(1)
    return nn.Linear(3, 2)


def test_checkpoint_restores_every_random_state(tmp_path):
    m = module()
    optimizer = torch.optim.Adam(m.parameters(), lr=0.1)
    m(torch.ones(3)).sum().backward()
    optimizer.step()
    random.seed(5), np.random.seed(6), torch.manual_seed(7)
    random.random(), np.random.rand(), torch.rand(2)  # move every generator off its seed
    save_checkpoint(tmp_path / "last", m, {"step": 4}, optimizer, rng=True)
    expected = (random.random(), np.random.rand(), torch.rand(3), np.random.randn())
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    fresh = module()
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.1)
    state = load_checkpoint(tmp_path / "last", fresh, fresh_opt, rng=True)
    got = (random.random(), np.random.rand(), torch.rand(3), np.random.randn())
    assert state["step"] == 4 and got[0] == expected[0] and got[1] == expected[1] and got[3] == expected[3]
    assert torch.equal(got[2], expected[2])
    assert torch.equal(fresh.weight, m.weight)
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    # torch's state travels as a uint8 tensor in safetensors, the rest as JSON: nothing is pickled
    from safetensors.torch import load_file

    assert load_file(str(tmp_path / "last" / "rng.safetensors"))["torch_cpu"].dtype == torch.uint8
    assert "python" in json.loads((tmp_path / "last" / STATE_FILE).read_text())["rng"]


def test_saving_keeps_the_previous_checkpoint_and_damage_is_named(tmp_path):
    m = module()
    for step in (1, 2):
        save_checkpoint(tmp_path / "last", m, {"step": step}, previous="previous")
    assert verify(tmp_path / "last")["step"] == 2 and verify(tmp_path / "previous")["step"] == 1
    with open(tmp_path / "last" / EDITOR_FILE, "r+b") as fh:  # flip one byte of the tensor data
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 1]))
    with pytest.raises(UserError, match=r"is damaged \(editor.safetensors does not match its checksum\); to "
                                        r"resume from the previous checkpoint, replace it with"):
        load_checkpoint(tmp_path / "last", module())
    (tmp_path / "last" / STATE_FILE).write_text("{not json")
    with pytest.raises(UserError, match="state.json is not valid JSON"):
        load_checkpoint(tmp_path / "last", module())


def test_recover_finishes_an_interrupted_swap(tmp_path):
    m = module()
    root = tmp_path / "checkpoints"
    save_checkpoint(root / "last", m, {"step": 1}, previous="previous")
    save_checkpoint(root / "last", m, {"step": 2}, previous="previous")
    # killed after moving last aside, before the new one was renamed into place
    os.replace(root / "last", root / "last.new")
    recover(root, {"last": "previous"})
    assert verify(root / "last")["step"] == 2 and verify(root / "previous")["step"] == 1
    # killed after building the new checkpoint, before any rename: the complete new one wins
    save_checkpoint(root / "best", m, {"step": 2})
    save_checkpoint(tmp_path / "built", m, {"step": 3})
    os.rename(tmp_path / "built", root / "best.new")
    recover(root)
    assert verify(root / "best")["step"] == 3 and not list(root.glob("*.new")) and not list(root.glob("*.old"))
    # a half-built staging directory (no state.json) is discarded, the checkpoint stays
    (root / "last.new").mkdir()
    recover(root, {"last": "previous"})
    assert verify(root / "last")["step"] == 2 and not (root / "last.new").exists()


# -- subprocesses: SIGKILL and resume, PYTHONHASHSEED ----------------------------------------------------

SCRIPT = r'''
import os, signal, sys
from pathlib import Path
from lime_toolkit.plugin_manager import get_plugin_manager
from lime_toolkit.testing import ToyPlugin

get_plugin_manager().register(ToyPlugin(), "toy")
mode, _, at = os.environ.get("KILL", "").partition(":")
if mode == "step":  # killed between two checkpoints, right after step `at` was logged
    from lime_toolkit.runs import train_log
    logged = train_log.JsonlLogger.on_step
    def on_step(self, step, terms, steps_per_s):
        logged(self, step, terms, steps_per_s)
        if step == int(at):
            os.kill(os.getpid(), signal.SIGKILL)
    train_log.JsonlLogger.on_step = on_step
elif mode == "swap":  # killed inside the save of checkpoints/last at step `at`, between the two renames
    from lime_toolkit import checkpoint
    swap = checkpoint._swap_in
    def swap_in(staged, directory, previous):
        if directory.name == "last" and '"step": %s,' % at in (staged / "state.json").read_text():
            os.replace(directory, directory.with_name(previous))
            os.kill(os.getpid(), signal.SIGKILL)
        swap(staged, directory, previous)
    checkpoint._swap_in = swap_in
from lime_toolkit.cli.app import cli
cli.main(args=sys.argv[1:], prog_name="lime-toolkit")
'''


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from lime_toolkit.testing import save_tiny_masked_lm

    root = tmp_path_factory.mktemp("resume")
    save_tiny_masked_lm(root / "model")
    (root / "train.py").write_text(SCRIPT)
    return root


def train(world: Path, out: Path, kill: str = "", hashseed: str = "0") -> int:
    """Train the toy world into ``out`` in a fresh process; returns its exit status."""
    path = [str(Path(__file__).resolve().parents[1])] + [p for p in sys.path if p and Path(p).is_dir()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONHASHSEED": hashseed, "KILL": kill,
           "OMP_NUM_THREADS": "1"}
    args = ["train", "--dataset", "toy", "--model", str(world / "model"), "--device", "cpu", "--quiet",
            "--out", str(out), "--max-steps", "8", "--set", "train.val_every=3", "--set", "train.val_edits=2",
            "--set", "train.accumulate=2", "--set", "eval.max_edits=2", "--set", "editor_options.mend.lr=0.01"]
    done = subprocess.run([sys.executable, str(world / "train.py"), *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode in (0, -9), done.stderr[-2000:]
    return done.returncode


def outcome(out: Path):
    """The validation history, every step's losses, the final metrics and the last checkpoint's
    tensors: everything but wall-clock times."""
    from safetensors.torch import load_file

    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    for record in log:
        record.pop("time"), record.pop("steps_per_s", None)
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("wall_time_s")
    tensors = load_file(str(out / "checkpoints" / "last" / EDITOR_FILE))
    return log, metrics, tensors


def same(a, b) -> bool:
    return (a[0] == b[0] and a[1] == b[1] and a[2].keys() == b[2].keys()
            and all(torch.equal(a[2][k], b[2][k]) for k in a[2]))


@pytest.mark.slow
def test_killed_runs_resume_exactly(world, tmp_path):
    assert train(world, tmp_path / "whole") == 0
    whole = outcome(tmp_path / "whole")
    validations = [r for r in whole[0] if r["event"] == "validation"]
    assert [r["step"] for r in validations] == [3, 6, 8]
    steps = [r["loss"] for r in whole[0] if r["event"] == "step"]
    assert len(steps) == 8 and len(set(steps)) == 8  # the losses vary: comparing them can catch a divergence

    # SIGKILL after the step-3 checkpoint, between it and the next (step 5 was done and logged)
    assert train(world, tmp_path / "between", kill="step:5") == -9
    assert json.loads((tmp_path / "between" / "checkpoints" / "last" / STATE_FILE).read_text())["step"] == 3
    assert train(world, tmp_path / "between") == 0
    assert same(outcome(tmp_path / "between"), whole)

    # SIGKILL in the middle of writing the step-6 checkpoint (old last moved aside, new not yet in place)
    assert train(world, tmp_path / "swap", kill="swap:6") == -9
    assert not (tmp_path / "swap" / "checkpoints" / "last").exists()
    assert train(world, tmp_path / "swap") == 0
    assert same(outcome(tmp_path / "swap"), whole)


@pytest.mark.slow
def test_pythonhashseed_does_not_change_the_numbers(world, tmp_path):
    assert train(world, tmp_path / "a", hashseed="0") == 0
    assert train(world, tmp_path / "b", hashseed="4242") == 0
    assert same(outcome(tmp_path / "a"), outcome(tmp_path / "b"))
