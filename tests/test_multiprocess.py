"""Multi-process training is the same training: ``accelerate launch --multi_gpu --num_processes 2``
with ``--device cpu`` (two CPU processes over gloo)
with ``accumulate: a`` gives the editor and masks that one process gives with ``accumulate: 2a``.

Why it holds (lime_toolkit/training.py): micro-step i of a step is drawn from (seed, step, i) with
i = process index * a + micro, so the 2a edits of a step are the same; the hard-concrete gates'
noise is drawn from a generator seeded the same way; each process backpropagates loss / a for its a
edits and the gradients are summed over processes and divided by 2: (1/2a) * sum over all 2a edits,
exactly one process's (1/(2a)) * sum. Only float rounding differs: the summation order, and the
batched meta-training pass (``train.batched``), which pads a step's inputs to the longest of its
edits (2a edits in one process, a in each of two), and Adam's normalised steps (at the test's lr
0.01) carry that rounding to 1e-5 of the weights.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = r'''
import sys
from lime_toolkit.plugin_manager import get_plugin_manager
from lime_toolkit.testing import ToyPlugin

get_plugin_manager().register(ToyPlugin(), "toy")
from lime_toolkit.cli.app import cli
cli.main(args=sys.argv[1:], prog_name="lime-toolkit")
'''


def train(root: Path, out: Path, processes: int, accumulate: int) -> subprocess.CompletedProcess:
    path = [str(Path(__file__).resolve().parents[1])] + [p for p in sys.path if p and Path(p).is_dir()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "OMP_NUM_THREADS": "1"}
    args = ["train", "--dataset", "toy", "--model", str(root / "model"), "--device", "cpu", "--quiet",
            "--out", str(out), "--max-steps", "4", "--set", "train.val_every=4", "--set", "train.val_edits=2",
            "--set", f"train.accumulate={accumulate}", "--set", "eval.max_edits=1",
            "--set", "editor_options.mend.lr=0.01", "--set", "train.mask_lr=0.05"]
    # `accelerate launch --cpu --num_processes 2` starts ONE process unless MPI is set up (Accelerate's
    # simple launcher); --multi_gpu starts them through torchrun, and --device cpu makes them talk
    # over gloo (lime_toolkit.devices.process_state).
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command = (launch if processes > 1 else [sys.executable]) + [str(root / "train.py"), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_two_processes_train_the_same_editor_as_one_with_double_accumulation(tmp_path):
    from safetensors.torch import load_file

    from lime_toolkit.checkpoint import EDITOR_FILE
    from lime_toolkit.testing import save_tiny_masked_lm

    save_tiny_masked_lm(tmp_path / "model")
    (tmp_path / "train.py").write_text(SCRIPT)
    two = train(tmp_path, tmp_path / "two", processes=2, accumulate=1)
    train(tmp_path, tmp_path / "one", processes=1, accumulate=2)
    a = load_file(str(tmp_path / "two" / "checkpoints" / "last" / EDITOR_FILE))
    b = load_file(str(tmp_path / "one" / "checkpoints" / "last" / EDITOR_FILE))
    init = load_file(str(tmp_path / "one" / "checkpoints" / "init" / EDITOR_FILE))
    assert a.keys() == b.keys() and any(k.startswith("masks.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
    assert any(not torch.equal(b[k], init[k]) for k in b)  # the editor did train
    # the main process alone writes the log and speaks
    log = (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()
    assert sum('"event": "step"' in line for line in log) == 4
    assert two.stdout.count("metrics written to") == 1


def test_a_cpu_launch_that_started_one_process_is_told():
    from lime_toolkit.devices import lone_launch_note

    lone = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert "--multi_gpu --num_processes N" in lone_launch_note(lone)
    assert lone_launch_note({**lone, "WORLD_SIZE": "2"}) is None  # really launched
    assert lone_launch_note({}) is None  # a plain run
