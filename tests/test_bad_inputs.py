"""A catalog of bad inputs across every command and every file the toolkit reads.

Each case runs one command (in-process, through click's CliRunner) in a fresh workspace holding a
trained toy run, a model directory and a few other files, and asserts that:

* the exit status is non-zero and the command ended through the CLI's error path (no stray
  exception),
* the output is exactly one line, ``Error: ...``, with no traceback, and it says what the case is
  about (``expect``),
* nothing in the workspace changed: no file was written, modified or removed.

Runs go to the toy world (a 2-layer BERT, parallel en/de facts), so no case builds the demo model.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from lime_toolkit.cli.app import cli
from lime_toolkit.plugin_manager import plugin_registered
from lime_toolkit.testing import ToyPlugin, save_tiny_masked_lm

#: A quick MEND run on the toy world; the catalog's run directory is trained with these.
TRAIN = ["--set", "train.val_every=1", "--set", "train.val_edits=2", "--set", "eval.max_edits=2",
         "--set", "editor_options.mend.rank=8"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    save_tiny_masked_lm(root / "model")
    with plugin_registered(ToyPlugin(), "bad-inputs-toy"):
        result = CliRunner().invoke(cli, ["train", "--dataset", "toy", "--model", str(root / "model"), "--device",
                                          "cpu", "--out", str(root / "run"), "--quiet", "--max-steps", "2", *TRAIN])
        assert result.exit_code == 0, result.output
        yield root


def workspace(world: Path, ws: Path) -> None:
    """What every case starts from: a trained run, a model, a file, a folder of other things."""
    shutil.copytree(world / "run", ws / "run")
    shutil.copytree(world / "model", ws / "model")
    (ws / "file.txt").write_text("not a directory\n")
    (ws / "notes").mkdir()
    (ws / "notes" / "todo.md").write_text("- keep me\n")
    (ws / "empty").mkdir()


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if "__pycache__" in p.parts:
            continue
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


# -- helpers that set up or damage a workspace ------------------------------------------------------------

def write(rel: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return setup


def remove(rel: str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        path = ws / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return setup


def truncate(rel: str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        data = (ws / rel).read_bytes()
        (ws / rel).write_bytes(data[: len(data) // 2])
    return setup


def flip_last_byte(rel: str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        data = bytearray((ws / rel).read_bytes())
        data[-1] ^= 1
        (ws / rel).write_bytes(bytes(data))
    return setup


def edit_config(old: str, new: str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        path = ws / "run" / "config.yaml"
        text = path.read_text()
        assert old in text, text
        path.write_text(text.replace(old, new, 1))
    return setup


def both(*setups) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        for s in setups:
            s(ws)
    return setup


@dataclass
class Case:
    id: str
    args: list[str]
    expect: str
    setup: Callable[[Path], None] | None = None
    env: dict[str, str] = field(default_factory=dict)


TOY = ["--dataset", "toy", "--model", "{ws}/model", "--device", "cpu"]
RESUME = ["train", "--config", "{ws}/run/config.yaml", "--out", "{ws}/run", "--max-steps", "3", "--quiet"]
LATIN1 = "[X] \xe9t\xe9 [Y] .".encode("latin-1")
GRID_TOY = "base: {dataset: toy, model: '{ws}/model', device: cpu}\n"

CASES = [
    # -- train: values of the wrong type or out of range, from flags and --set ---------------------------
    Case("train-max-steps-negative", ["train", "--set", "train.max_steps=-5"],
         "train.max_steps: -5 is not allowed; expected an integer >= 1 (from the command line)"),
    Case("train-max-steps-flag-zero", ["train", "--max-steps", "0"], "train.max_steps: 0 is not allowed"),
    Case("train-lr-negative", ["train", "--set", "train.lr=-0.1"],
         "train.lr: -0.1 is not allowed; expected a number > 0 or null"),
    Case("train-lr-text", ["train", "--set", "train.lr=abc"], "train.lr: 'abc' is not allowed"),
    Case("train-lr-nan", ["train", "--set", "train.lr=.nan"], "train.lr: nan is not allowed"),
    Case("train-accumulate-float", ["train", "--set", "train.accumulate=1.5"],
         "train.accumulate: 1.5 is not allowed; expected an integer >= 1"),
    Case("train-patience-bool", ["train", "--set", "train.patience=true"], "train.patience: true is not allowed"),
    Case("train-clip-zero", ["train", "--set", "train.clip=0"], "train.clip: 0 is not allowed; expected a number > 0"),
    Case("train-weight-negative", ["train", "--set", "train.rel_weight=-1"],
         "train.rel_weight: -1 is not allowed; expected a number >= 0"),
    Case("train-val-every-zero", ["train", "--set", "train.val_every=0"], "train.val_every: 0 is not allowed"),
    Case("train-split-unknown", ["train", "--set", "eval.split=validation"],
         "eval.split: 'validation' is not allowed; expected one of train, dev, test"),
    Case("train-seed-negative", ["train", "--set", "seed=-1"], "seed: -1 is not allowed"),
    Case("train-seed-flag-text", ["train", "--seed", "abc"], "Invalid value for '--seed'"),
    Case("train-limit-zero", ["train", "--limit", "0"], "limit: 0 is not allowed; expected an integer >= 1 or null"),
    Case("train-section-not-mapping", ["train", "--set", "train=5"], "train: 5 is not allowed; expected a mapping"),
    Case("train-options-not-mapping", ["train", "--set", "editor_options=3"],
         "editor_options: 3 is not allowed; expected a mapping"),
    Case("train-layers-text", ["train", "--set", "edit.layers=abc"],
         "edit.layers: 'abc' is not allowed; expected a list of integers or null"),
    Case("train-last-n-layers-zero", ["train", "--set", "edit.last_n_layers=0"], "edit.last_n_layers: 0 is not allowed"),
    Case("train-langs-empty-list", ["train", "--set", "train.langs=[]"], "train.langs: [] is not allowed"),
    Case("train-eval-langs-comma", ["train", "--set", "eval.edit_langs=','"], "eval.edit_langs: ',' is not allowed"),
    Case("train-null-not-allowed", ["train", "--set", "train.max_steps=null"],
         "train.max_steps: null is not allowed; expected an integer >= 1"),
    # -- train: unknown keys and malformed --set items ------------------------------------------------------
    Case("set-unknown-key", ["train", "--set", "train.max_stepz=3"],
         "unknown config key 'train.max_stepz'; did you mean 'train.max_steps'?"),
    Case("set-key-in-wrong-section", ["train", "--set", "max_steps=3"],
         "unknown config key 'max_steps'; did you mean 'train.max_steps'?"),
    Case("set-no-value", ["train", "--set", "train.max_steps="], "has no value; give one, or null to reset the key"),
    Case("set-no-equals", ["train", "--set", "train.max_steps"], "--set expects KEY=VALUE"),
    Case("set-bad-yaml", ["train", "--set", "train.max_steps=[1"], "is not a valid value (YAML syntax)"),
    Case("set-empty-key-part", ["train", "--set", "train..max_steps=3"], "is not a config key"),
    # -- train: plugin options --------------------------------------------------------------------------------
    Case("option-out-of-range", ["train", *TOY, "--set", "editor_options.mend.rank=-3"],
         "editor_options.mend.rank: -3 is not allowed; expected an integer >= 1"),
    Case("option-unknown", ["train", *TOY, "--set", "editor_options.mend.rnak=3"],
         "unknown option 'editor_options.mend.rnak' of mend; did you mean 'editor_options.mend.rank'?"),
    Case("option-plain-key-bad", ["train", *TOY, "--set", "editor_options.lr=-1"],
         "editor_options.lr: -1 is not allowed"),
    Case("option-component-typo", ["train", *TOY, "--set", "editor_options.mned.rank=3"],
         "editor_options.mned: there is no editor 'mned'; did you mean 'mend'?"),
    Case("mask-option-out-of-range", ["train", *TOY, "--set", "mask_options.l0.beta=0"],
         "mask_options.l0.beta: 0 is not allowed; expected a number > 0"),
    Case("mask-option-choice", ["train", *TOY, "--set", "mask_options.l0.penalty_reduction=median"],
         "expected one of mean, sum"),
    # -- config files -------------------------------------------------------------------------------------------
    Case("config-missing", ["train", "--config", "{ws}/nope.yaml"], "config file '{ws}/nope.yaml' does not exist"),
    Case("config-bad-yaml", ["train", "--config", "{ws}/c.yaml"], "is not valid YAML at line",
         write("c.yaml", "train: [1, 2\nseed: 3\n")),
    Case("config-not-mapping", ["train", "--config", "{ws}/c.yaml"], "must hold a mapping of settings",
         write("c.yaml", "- a\n- b\n")),
    Case("config-not-utf8", ["train", "--config", "{ws}/c.yaml"], "is not UTF-8 text",
         write("c.yaml", b"model: \xe9t\xe9\n")),
    Case("config-unknown-key", ["train", "--config", "{ws}/c.yaml"],
         "unknown config key 'trian'; did you mean 'train'? (in config file", write("c.yaml", "trian: {max_steps: 3}\n")),
    Case("config-wrong-type", ["train", "--config", "{ws}/c.yaml"],
         "train.max_steps: 'ten' is not allowed; expected an integer >= 1 (in config file",
         write("c.yaml", "train: {max_steps: ten}\n")),
    Case("config-section-wrong-type", ["train", "--config", "{ws}/c.yaml"], "edit: 3 is not allowed",
         write("c.yaml", "edit: 3\n")),
    Case("config-is-directory", ["train", "--config", "{ws}/notes"], "Invalid value for '--config'"),
    # -- plugin names, languages, models, devices ---------------------------------------------------------------
    Case("editor-unknown", ["train", "--editor", "nope"], "unknown editor 'nope'; installed:"),
    Case("editor-typo", ["train", "--editor", "mned"], "did you mean 'mend'?"),
    Case("masks-unknown", ["train", "--masks", "nope"], "unknown mask strategy 'nope'; installed:"),
    Case("dataset-unknown", ["train", "--dataset", "nope"], "unknown dataset 'nope'; installed:"),
    Case("editor-cannot-use-masks", ["train", *TOY, "--editor", "ft", "--masks", "l0"], "cannot use masks 'l0'"),
    Case("train-langs-unknown", ["train", *TOY, "--train-langs", "en,xx", "--out", "{ws}/new"],
         "unknown language(s) xx"),
    Case("model-missing", ["train", "--dataset", "toy", "--model", "./no/such/dir"],
         "model directory './no/such/dir' does not exist"),
    Case("model-is-file", ["train", "--dataset", "toy", "--model", "{ws}/file.txt"], "is a file; pass --model"),
    Case("model-empty-dir", ["train", "--dataset", "toy", "--model", "{ws}/empty"],
         "holds no loadable model (no config.json)"),
    Case("model-damaged-config", ["train", "--dataset", "toy", "--model", "{ws}/model"], "holds no loadable model",
         write("model/config.json", "{")),
    Case("model-hub-offline", ["train", "--dataset", "toy", "--model", "no-such-org/no-such-model"],
         "is not in the local Hugging Face cache and HF_HUB_OFFLINE is set", env={"HF_HUB_OFFLINE": "1"}),
    Case("device-unknown", ["train", "--device", "gpu"],
         "device: 'gpu' is not allowed; expected auto, cpu, mps, cuda or cuda:N"),
    Case("device-bad-index", ["train", "--device", "cuda:x"], "device: 'cuda:x' is not allowed"),
    Case("device-absent", ["train", "--dataset", "toy", "--model", "{ws}/model", "--device", "cuda:7"],
         "device 'cuda:7'"),
    # -- run directories (--out) ---------------------------------------------------------------------------------
    Case("out-is-file", ["train", *TOY, "--out", "{ws}/file.txt"], "Directory '{ws}/file.txt' is a file"),
    Case("out-holds-other-files", ["train", *TOY, "--out", "{ws}/notes"],
         "already holds files that are not a lime-toolkit run (todo.md)"),
    Case("out-under-a-file", ["train", *TOY, "--out", "{ws}/file.txt/run"], "cannot be created: '{ws}/file.txt' is a file"),
    Case("out-different-run", ["train", *TOY, "--masks", "none", "--out", "{ws}/run", *TRAIN],
         "holds a run with a different configuration"),
    # -- resuming a damaged run ----------------------------------------------------------------------------------
    Case("resume-state-not-json", RESUME, "checkpoints/last' is damaged (state.json is not valid JSON",
         write("run/checkpoints/last/state.json", "{\"step\": 2,")),
    Case("resume-editor-truncated", RESUME, "editor.safetensors does not match its checksum); to resume from the "
         "previous checkpoint", truncate("run/checkpoints/last/editor.safetensors")),
    Case("resume-rng-missing", RESUME, "rng.safetensors is missing", remove("run/checkpoints/last/rng.safetensors")),
    Case("resume-state-missing", RESUME, "state.json is missing", remove("run/checkpoints/last/state.json")),
    Case("resume-best-damaged", RESUME, "checkpoints/best' is damaged",
         flip_last_byte("run/checkpoints/best/editor.safetensors")),
    Case("resume-config-bad-yaml", RESUME[:1] + RESUME[3:] + TOY,
         "run configuration '{ws}/run/config.yaml' is not valid YAML", write("run/config.yaml", "editor: [mend\n")),
    Case("resume-config-out-of-range", RESUME, "train.max_steps: -1 is not allowed",
         edit_config("max_steps: 2", "max_steps: -1")),
    # -- evaluate ---------------------------------------------------------------------------------------------------
    Case("evaluate-run-and-flags", ["evaluate", "{ws}/run", "--editor", "ft"],
         "a run directory brings its own configuration; drop --editor"),
    Case("evaluate-not-a-run", ["evaluate", "{ws}/empty"], "is not a run directory (no config.yaml)"),
    Case("evaluate-missing-dir", ["evaluate", "{ws}/nope"], "does not exist"),
    Case("evaluate-config-damaged", ["evaluate", "{ws}/run"], "is not valid YAML", write("run/config.yaml", "a: b: c\n")),
    Case("evaluate-config-out-of-range", ["evaluate", "{ws}/run"],
         "run configuration '{ws}/run/config.yaml' is damaged: train.max_steps: -1 is not allowed",
         edit_config("max_steps: 2", "max_steps: -1")),
    Case("evaluate-config-unknown-key", ["evaluate", "{ws}/run"], "unknown config key 'trian'",
         edit_config("train:", "trian:")),
    Case("evaluate-best-damaged", ["evaluate", "{ws}/run"], "delete it to fall back to the last checkpoint",
         flip_last_byte("run/checkpoints/best/editor.safetensors")),
    Case("evaluate-best-not-safetensors", ["evaluate", "{ws}/run"], "is damaged",
         both(write("run/checkpoints/best/editor.safetensors", b"garbage"), write("run/checkpoints/best/state.json",
                                                                                  '{"step": 1}'))),
    Case("evaluate-device-unknown", ["evaluate", "{ws}/run", "--device", "gpu"],
         "device: 'gpu' is not allowed; expected auto, cpu, mps, cuda or cuda:N (from the command line)"),
    Case("evaluate-max-edits-text", ["evaluate", "{ws}/run", "--max-edits", "abc"], "--max-edits must be a number or 'all'"),
    Case("evaluate-seeds-text", ["evaluate", "{ws}/run", "--seeds", "1,x"], "--seeds must be a comma list of integers"),
    Case("evaluate-seeds-negative", ["evaluate", "{ws}/run", "--seeds", "-1"], "--seeds must be a comma list of integers >= 0"),
    Case("evaluate-n-update-negative", ["evaluate", "{ws}/run", "--n-update", "-1"], "Invalid value for '--n-update'"),
    Case("evaluate-split-unknown", ["evaluate", "{ws}/run", "--split", "validation"], "Invalid value for '--split'"),
    Case("evaluate-edit-langs-unknown", ["evaluate", "{ws}/run", "--edit-langs", "xx"], "unknown language(s) xx"),
    Case("evaluate-json-under-file", ["evaluate", "{ws}/run", "--json", "{ws}/file.txt/out.json"],
         "--json '{ws}/file.txt/out.json' cannot be created"),
    Case("evaluate-json-is-dir", ["evaluate", "{ws}/run", "--json", "{ws}/notes"], "File '{ws}/notes' is a directory"),
    Case("evaluate-name-path", ["evaluate", "{ws}/run", "--name", "../x"], "--name '../x' must be a plain file stem"),
    Case("evaluate-no-last", ["evaluate", "{ws}/run", "--checkpoint", "last"], "has no last checkpoint",
         remove("run/checkpoints/last")),
    Case("evaluate-untrained-into-other-run", ["evaluate", *TOY, "--editor", "ft", "--masks", "none", "--out", "{ws}/run"],
         "holds a run with a different configuration"),
    # -- edit ----------------------------------------------------------------------------------------------------------
    Case("edit-no-slot", ["edit", "{ws}/run", "--input", "anna lives in paris .", "--target", "rome", "--lang", "en"],
         "[MASK]"),
    Case("edit-unknown-lang", ["edit", "{ws}/run", "--input", "anna lives in [MASK] .", "--target", "rome", "--lang", "xx"],
         "xx"),
    Case("edit-save-not-empty", ["edit", "{ws}/run", "--input", "anna lives in [MASK] .", "--target", "rome", "--lang",
                                 "en", "--save", "{ws}/notes"], "--save '{ws}/notes' already exists and is not empty"),
    Case("edit-missing-input", ["edit", "{ws}/run", "--target", "rome", "--lang", "en"], "Missing option '--input'"),
    Case("edit-unrelated-negative", ["edit", "{ws}/run", "--input", "a [MASK]", "--target", "b", "--lang", "en",
                                     "--unrelated", "-1"], "Invalid value for '--unrelated'"),
    # -- diagnose -----------------------------------------------------------------------------------------------------
    Case("diagnose-edits-zero", ["diagnose", "--edits", "0"], "Invalid value for '--edits'"),
    Case("diagnose-lr-zero", ["diagnose", "--lr", "0"], "Invalid value for '--lr'"),
    Case("diagnose-json-is-dir", ["diagnose", *TOY, "--json", "{ws}/notes"], "File '{ws}/notes' is a directory"),
    Case("diagnose-bad-set", ["diagnose", *TOY, "--set", "edit.last_n_layers=-1"], "edit.last_n_layers: -1 is not allowed"),
    # -- prepare-base --------------------------------------------------------------------------------------------------
    Case("prepare-base-no-step", ["prepare-base", "--dataset", "toy"], "has no prepare-base step; pass --model"),
    Case("prepare-base-cache-unwritable", ["prepare-base"], "set LIME_TOOLKIT_CACHE to a writable directory",
         env={"LIME_TOOLKIT_CACHE": "{ws}/file.txt/cache"}),
    Case("prepare-base-seed-negative", ["prepare-base", "--seed", "-1"], "Invalid value for '--seed'"),
    Case("prepare-base-dataset-unknown", ["prepare-base", "--dataset", "nope"], "unknown dataset 'nope'"),
    Case("prepare-base-out-not-empty", ["prepare-base", "--out", "{ws}/notes"], "already holds files"),
    # -- data describe: datasets read from disk -----------------------------------------------------------------------
    Case("data-lang-unknown", ["data", "describe", "--langs", "xx"], "the demo dataset has no language xx"),
    Case("data-dir-missing", ["data", "describe", "--dataset", "mlama", "--data-dir", "{ws}/nope"], "does not exist"),
    Case("data-dir-not-given", ["data", "describe", "--dataset", "mlama"], "no --data-dir was given"),
    Case("data-not-utf8", ["data", "describe", "--dataset", "mlama", "--data-dir", "{ws}/mlama"],
         "templates.jsonl: not UTF-8 text", write("mlama/en/templates.jsonl", LATIN1)),
    Case("data-not-json", ["data", "describe", "--dataset", "mlama", "--data-dir", "{ws}/mlama"],
         "templates.jsonl:1: malformed mLAMA row: not JSON", write("mlama/en/templates.jsonl", "relation P1\n")),
    Case("data-xnli-not-utf8", ["data", "describe", "--dataset", "xnli", "--data-dir", "{ws}/xnli"], "not UTF-8 text",
         write("xnli/xnli.test.tsv", b"language\tgold_label\tpairID\tsentence1\tsentence2\nfr\tneutral\t1\t\xe9\tb\n")),
    Case("data-set-unknown", ["data", "describe", "--dataset", "toy", "--langs", ","], "languages: [] is not allowed"),
    # -- report ------------------------------------------------------------------------------------------------------
    Case("report-several-no-out", ["report", "{ws}/run", "{ws}/run"], "several runs: pass --out PATH"),
    Case("report-no-metrics", ["report", "{ws}/empty", "--out", "{ws}/r.html"], "has no metrics.json"),
    Case("report-metrics-damaged", ["report", "{ws}/run", "--no-masks"],
         "results file '{ws}/run/metrics.json' is damaged (not valid JSON", truncate("run/metrics.json")),
    Case("report-out-is-dir", ["report", "{ws}/run", "--out", "{ws}/notes"], "File '{ws}/notes' is a directory"),
    Case("report-log-damaged", ["report", "{ws}/run", "--no-masks", "--out", "{ws}/r.html"],
         "training log '{ws}/run/train_log.jsonl' is damaged at line 1",
         write("run/train_log.jsonl", "{oops\n{\"event\": \"step\", \"step\": 1}\n")),
    # -- compare -------------------------------------------------------------------------------------------------------
    Case("compare-no-metrics", ["compare", "{ws}/empty"], "metrics.json' does not exist; finish training"),
    Case("compare-metrics-not-object", ["compare", "{ws}/run"], "is damaged (not a JSON object)",
         write("run/metrics.json", "[1, 2]\n")),
    Case("compare-metrics-not-utf8", ["compare", "{ws}/run"], "is damaged (not UTF-8 text)",
         write("run/metrics.json", b"\xff\xfe{}")),
    Case("compare-eval-missing", ["compare", "{ws}/run", "--eval", "nosuch"], "run `lime-toolkit evaluate"),
    Case("compare-markdown-under-file", ["compare", "{ws}/run", "--markdown", "{ws}/file.txt/t.md"], "cannot be created"),
    # -- grid and grid files -------------------------------------------------------------------------------------------
    Case("grid-no-source", ["grid"], "give exactly one of --table 1|2 or --grid FILE"),
    Case("grid-unknown-table", ["grid", "--table", "3"], "unknown table 3"),
    Case("grid-file-missing", ["grid", "--grid", "{ws}/g.yaml"], "grid file '{ws}/g.yaml' does not exist"),
    Case("grid-file-bad-yaml", ["grid", "--grid", "{ws}/g.yaml"], "is not valid YAML", write("g.yaml", "editors: [mend\n")),
    Case("grid-file-missing-key", ["grid", "--grid", "{ws}/g.yaml"], "'masks' is missing",
         write("g.yaml", "editors: [mend]\ntrain_langs: [en]\n")),
    Case("grid-file-wrong-shape", ["grid", "--grid", "{ws}/g.yaml"], "editors: 5 is not allowed; expected a list of names",
         write("g.yaml", "editors: 5\ntrain_langs: [en]\nmasks: [l0]\n")),
    Case("grid-file-seeds", ["grid", "--grid", "{ws}/g.yaml"], "seeds: ['a'] is not allowed",
         write("g.yaml", "editors: [mend]\ntrain_langs: [en]\nmasks: [l0]\nseeds: [a]\n")),
    Case("grid-file-unknown-key", ["grid", "--grid", "{ws}/g.yaml"], "unknown key 'langs'; did you mean 'train_langs'?",
         write("g.yaml", "editors: [mend]\nlangs: [en]\nmasks: [l0]\n")),
    Case("grid-file-eval", ["grid", "--grid", "{ws}/g.yaml"], "eval.split: 'validation' is not allowed",
         write("g.yaml", "editors: [mend]\ntrain_langs: [en]\nmasks: [l0]\neval: {split: validation}\n")),
    Case("grid-file-base", ["grid", "--grid", "{ws}/g.yaml"], "grid base: train.lr: -1 is not allowed",
         write("g.yaml", "editors: [mend]\ntrain_langs: [en]\nmasks: [l0]\nbase: {train: {lr: -1}}\n")),
    Case("grid-seeds-text", ["grid", "--table", "1", "--seeds", "0,x"], "--seeds must be a comma list of integers"),
    Case("grid-set-out-of-range", ["grid", "--table", "1", "--set", "train.max_steps=0"], "train.max_steps: 0 is not allowed"),
    Case("grid-out-under-file", ["grid", "--grid", "{ws}/g.yaml", "--out", "{ws}/file.txt"], "is a file",
         write("g.yaml", "editors: [mend]\ntrain_langs: [all]\nmasks: [l0]\n" + GRID_TOY)),
    Case("grid-finished-run-damaged", ["grid", "--grid", "{ws}/g.yaml", "--out", "{ws}/grid"],
         "is damaged (not valid JSON at line 1", both(
             write("g.yaml", "editors: [mend]\ntrain_langs: [all]\nmasks: [l0]\n" + GRID_TOY),
             write("grid/toy-mend-l0-all-s0/metrics.json", "{\"acc\": "))),
    # -- the command line itself ------------------------------------------------------------------------------------------
    Case("command-unknown", ["trian"], "No such command 'trian'"),
    Case("option-unknown-top", ["--bogus"], "No such option '--bogus'"),
    Case("list-plugins-bad-option", ["list-plugins", "--bogus"], "No such option '--bogus'"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_changes_nothing(case, world, tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    ws.mkdir()
    workspace(world, ws)
    if case.setup:
        case.setup(ws)
    monkeypatch.chdir(ws)  # default run directories (runs/...) would land here
    fill = lambda s: s.replace("{ws}", str(ws))  # noqa: E731
    if case.setup and (ws / "g.yaml").is_file():
        (ws / "g.yaml").write_text(fill((ws / "g.yaml").read_text()))
    before = snapshot(ws)
    env = {"COLUMNS": "200", "LIME_TOOLKIT_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           **{k: fill(v) for k, v in case.env.items()}}
    result = CliRunner().invoke(cli, [fill(a) for a in case.args], env=env)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), (result.exception, result.output)  # no stray exception
    assert "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert fill(case.expect) in lines[0], lines[0]
    assert snapshot(ws) == before


def test_the_catalog_covers_every_command():
    commands = {c.args[0] for c in CASES if not c.args[0].startswith("-")}
    assert {"train", "evaluate", "edit", "diagnose", "prepare-base", "data", "report", "compare", "grid",
            "list-plugins"} <= commands
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
