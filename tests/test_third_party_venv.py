"""A third-party plugin, pip-installed into a fresh virtual environment, works like a built-in.

The venv sees the site-packages of the Python running the tests, a venv's included (torch and
friends are not installed again); the toolkit is
installed into it from this checkout and the example distribution from ``examples/``, both with
``--no-deps --no-build-isolation`` and no package index. Every command runs through the venv's own
``lime-toolkit`` console script.

Training uses the example's own ``tiny-facts`` dataset with a tiny random BERT whose word-level
vocabulary the test builds from that dataset in a second and passes as ``--model``, so the test neither
depends on nor waits for the demo's pre-trained model (minutes to build on a cold cache). Budget:
under two minutes.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "lime-toolkit-rescale"
DIST, VERSION, PLUGIN = "lime-toolkit-rescale", "0.1.0", "rescale"
HOOKS = ["register_commands", "register_datasets", "register_editors", "register_mask_strategies"]
# Small settings: 4 optimiser steps of one edit each (the flags), one validation, 2 test edits per language.
CONFIG = """\
device: cpu
edit: {last_n_layers: 2}
train: {accumulate: 1, val_every: 4, val_edits: 1, patience: 0}
eval: {max_edits: 2, n_retain: 1}
"""


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / (name + (".exe" if os.name == "nt" else ""))


def _run(cmd, env, cwd, ok=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


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
    if sys.prefix != sys.base_prefix:
        # Run from inside a venv: `python -m venv --system-site-packages` builds over the *base*
        # interpreter's site-packages, not this venv's. A .pth file adds this environment's
        # site-packages (torch, transformers, a current setuptools ...) after the new venv's own.
        site_dir = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], env,
                             venv.parent).stdout.strip())
        outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
        (site_dir / "_outer_environment.pth").write_text("\n".join(outer) + "\n", encoding="utf-8")
    if _run([python, "-c", "import pip"], env, venv.parent, ok=False).returncode != 0:
        proc = _run([python, "-m", "ensurepip", "--default-pip"], env, venv.parent, ok=False)
        if proc.returncode != 0:
            pytest.skip(f"the venv has no pip and ensurepip is not available: {proc.stderr.strip()[-300:]}")
    return python


def _tiny_model(path: Path, monkeypatch) -> Path:
    """A random 2-layer BERT masked LM with a word-level tokenizer covering the example's tiny-facts,
    saved to ``path`` (built in this process, where torch is usually imported already)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    from lime_toolkit.data import SPLITS, TARGET_SLOT
    from lime_toolkit.dataset_api import DatasetOptions

    monkeypatch.syspath_prepend(str(EXAMPLE))  # the example's source, only for its vocabulary
    try:
        from lime_rescale.dataset import TinyFacts

        data = TinyFacts(DatasetOptions())
    finally:
        for name in [m for m in sys.modules if m == "lime_rescale" or m.startswith("lime_rescale.")]:
            del sys.modules[name]
    examples = [e for s in SPLITS for c in data.edit_cases(s) for e in c.inputs.values()]
    words = sorted({w for e in examples for w in e.text.replace(TARGET_SLOT, " ").split() + e.target.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                        sep_token="[SEP]", mask_token="[MASK]")
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    BertForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_example_plugin_installs_trains_and_uninstalls_in_a_fresh_venv(tmp_path, monkeypatch):
    try:
        installed = metadata.distribution(DIST).locate_file("")
    except metadata.PackageNotFoundError:
        installed = None
    assert installed is None, (f"{DIST} is installed in this Python ({installed}), so the venv would still see it "
                               f"after uninstalling it there: `pip uninstall {DIST}` first")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", HF_HUB_OFFLINE="1",
               PYTHONNOUSERSITE="1", NO_COLOR="1", COLUMNS="200")
    env["LIME_TOOLKIT_CACHE"] = str(tmp_path / "cache")  # nothing of the developer's cache is used
    # Not used here, and its module imports torch and transformers when loaded (about 7 s of CPU per
    # command): blocking it keeps the test well inside its budget.
    env["LIME_TOOLKIT_BLOCK_PLUGINS"] = "demo"
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

    # Listed with its distribution, version, API version, hooks and components.
    listed = json.loads(_run([lime_toolkit, "list-plugins", "--json"], env, tmp_path).stdout)
    row = {r["name"]: r for r in listed}[PLUGIN]
    assert (row["distribution"], row["version"], row["api_version"], row["status"]) == (DIST, VERSION, "1", "ok"), row
    assert (row["editors"], row["datasets"], row["masks"], row["hooks"]) == (["rescale"], ["tiny-facts"], ["shared"], HOOKS)

    # Its subcommand.
    info = json.loads(_run([lime_toolkit, "rescale-info", "--json"], env, tmp_path).stdout)
    assert info == {"editors": ["rescale"], "datasets": ["tiny-facts"], "masks": ["shared"]}

    # Its editor trains cross-lingually on its dataset with the core's L0 masks, with no code of its
    # own for the masks or the cross-lingual training.
    model, config, out = _tiny_model(tmp_path / "tiny-model", monkeypatch), tmp_path / "small.yaml", tmp_path / "run"
    config.write_text(CONFIG)
    _run([lime_toolkit, "train", "--config", config, "--dataset", "tiny-facts", "--model", model, "--editor", "rescale",
          "--masks", "l0", "--max-steps", "4", "--out", out, "--quiet"], env, tmp_path)
    metrics = json.loads((out / "metrics.json").read_text())
    setting = metrics["setting"]
    assert (setting["editor"], setting["masks"], setting["dataset"]) == ("rescale", "l0", "tiny-facts"), setting
    assert list(metrics["per_language"]) == ["en", "de", "fr"] and 0.0 <= metrics["succ"] <= 1.0

    # Uninstalled: gone from the list (and so are its components and its command).
    _run([python, "-m", "pip", "uninstall", "-y", "--quiet", DIST], env, tmp_path)
    listed = json.loads(_run([lime_toolkit, "list-plugins", "--json"], env, tmp_path).stdout)
    assert PLUGIN not in {r["name"] for r in listed}
    assert not {"rescale", "tiny-facts", "shared"} & {c for r in listed for k in ("editors", "datasets", "masks") for c in r[k]}
