"""A third-party plugin, pip-installed into a fresh virtual environment, works like a built-in.

The venv sees the system site-packages (torch and friends are not installed again); the toolkit is
installed into it from this checkout and the example distribution from ``examples/``, both with
``--no-deps --no-build-isolation`` and no package index. Every command runs through the venv's own
``lime-toolkit`` console script. Budget: under two minutes (about 25 s once the demo's small model
is in the cache, which ``LIME_TOOLKIT_CACHE`` can point at).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "lime-toolkit-rescale"
DIST, VERSION, PLUGIN = "lime-toolkit-rescale", "0.1.0", "rescale"
HOOKS = ["register_commands", "register_datasets", "register_editors", "register_mask_strategies"]
# Small settings: the demo's small preset, 4 optimiser steps of one edit each, 3 test edits per language.
CONFIG = """\
device: cpu
dataset_options: {preset: small}
train: {accumulate: 1, val_every: 2, val_edits: 2, patience: 0}
eval: {max_edits: 3, n_retain: 2}
"""


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / (name + (".exe" if os.name == "nt" else ""))


def _run(cmd, env, cwd, ok=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def _start(cmd, env, cwd) -> subprocess.Popen:
    return subprocess.Popen([str(c) for c in cmd], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait(proc: subprocess.Popen) -> bool:
    stdout, stderr = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(proc.args)} exited {proc.returncode}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    return True


def _make_venv(venv: Path, env: dict) -> Path:
    """A venv over the system site-packages; returns its python. Uses the system pip when the venv
    can import it (fast), else bootstraps one with ensurepip."""
    try:
        import venv as _venv  # noqa: F401
    except ImportError:
        pytest.skip("the 'venv' module is not available in this Python")
    proc = _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], env, venv.parent, ok=False)
    if proc.returncode != 0:
        pytest.skip(f"'python -m venv' is not available here: {proc.stderr.strip()[-300:]}")
    python = _bin(venv, "python")
    if _run([python, "-c", "import pip"], env, venv.parent, ok=False).returncode != 0:
        proc = _run([python, "-m", "ensurepip", "--default-pip"], env, venv.parent, ok=False)
        if proc.returncode != 0:
            pytest.skip(f"the venv has no pip and ensurepip is not available: {proc.stderr.strip()[-300:]}")
    return python


def _plugins(lime_toolkit: Path, env, cwd) -> dict[str, dict]:
    rows = json.loads(_run([lime_toolkit, "list-plugins", "--json"], env, cwd).stdout)
    return {row["name"]: row for row in rows}


def test_example_plugin_installs_trains_and_uninstalls_in_a_fresh_venv(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", HF_HUB_OFFLINE="1",
               PYTHONNOUSERSITE="1", NO_COLOR="1", COLUMNS="200")
    env.setdefault("LIME_TOOLKIT_CACHE", str(tmp_path / "cache"))  # CI and developers may share one
    venv = tmp_path / "venv"
    python = _make_venv(venv, env)
    pip = [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet"]

    # The toolkit from this checkout, into the venv (the system's editable install stays outside it).
    _run(pip + ["-e", REPO], env, tmp_path)
    # The example from a copy, so that building it leaves nothing behind in the checkout.
    source = tmp_path / "lime-toolkit-rescale"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    _run(pip + [source], env, tmp_path)
    lime_toolkit = _bin(venv, "lime-toolkit")
    assert lime_toolkit.is_file(), "installing the toolkit into the venv gave it no lime-toolkit script"
    where = _run([python, "-c", "import lime_toolkit, lime_rescale; print(lime_toolkit.__file__); "
                  "print(lime_rescale.__file__)"], env, tmp_path).stdout.split()
    assert Path(where[0]).resolve().is_relative_to(REPO), where  # this checkout's toolkit ...
    assert Path(where[1]).resolve().is_relative_to(venv.resolve()), where  # ... and the installed example

    # The longest step, training, runs while the other commands are checked.
    config = tmp_path / "small.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    train = _start([lime_toolkit, "train", "--config", config, "--editor", "rescale", "--masks", "l0",
                    "--max-steps", "4", "--out", out, "--quiet"], env, tmp_path)
    try:
        # Listed with its distribution, version, API version, hooks and components.
        row = _plugins(lime_toolkit, env, tmp_path)[PLUGIN]
        assert (row["distribution"], row["version"], row["api_version"], row["status"]) == (DIST, VERSION, "1", "ok"), row
        assert (row["editors"], row["datasets"], row["masks"], row["hooks"]) == (["rescale"], ["tiny-facts"], ["shared"], HOOKS)

        # Its subcommand and its dataset.
        info = json.loads(_run([lime_toolkit, "rescale-info", "--json"], env, tmp_path).stdout)
        assert info == {"editors": ["rescale"], "datasets": ["tiny-facts"], "masks": ["shared"]}
        counts = json.loads(_run([lime_toolkit, "data", "describe", "--dataset", "tiny-facts", "--json"], env, tmp_path).stdout)
        assert counts == {lang: {"train": 5, "dev": 2, "test": 2} for lang in ("en", "de", "fr")}

        # Its editor trains cross-lingually with the core's L0 masks on the demo, with no code for either.
        _wait(train)
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["setting"]["editor"] == "rescale" and metrics["setting"]["masks"] == "l0", metrics["setting"]
        assert set(metrics["per_language"]) and 0.0 <= metrics["succ"] <= 1.0
    finally:
        if train.poll() is None:  # a failed check above: do not leave the run behind
            train.kill()
            train.communicate()

    # Uninstalled: gone from the list and from the command line.
    _run([python, "-m", "pip", "uninstall", "-y", "--quiet", DIST], env, tmp_path)
    assert PLUGIN not in _plugins(lime_toolkit, env, tmp_path)
    gone = _run([lime_toolkit, "rescale-info"], env, tmp_path, ok=False)
    assert gone.returncode == 2 and "No such command" in gone.stderr, textwrap.shorten(gone.stderr, 300)
