"""``lime-toolkit bench``: how fast the toolkit edits, trains and evaluates, as ratios measured in one
process (docs/performance.md explains how to read them).

Per model (the demo model, and a randomly initialised masked LM of mBERT's size built locally):

* ``fwd_s`` / ``fwd_bwd_s``: one plain forward (no gradients) and one forward + backward (gradients
  of every model weight) of the edit loss on one edit input, the LM head applied at its [MASK]
  positions only: the yardsticks the other numbers are divided by;
* ``edit_s``: one test-time edit (MEND + l0 masks, evaluation mode): ``edit_over_fwd`` and
  ``edit_over_fwd_bwd``;
* ``step_s``: one meta-training optimiser step over ``accumulate`` edits (each with its update and
  retain inputs); ``step_over_fwd_bwd`` is one micro-step (``step_s / accumulate``) over one plain
  forward + backward of all of a micro-step's inputs in one batch (edit, update and retain inputs),
  timed in turn with the step; ``step_over_fwd_bwd_block`` the same over that forward + backward
  timed in a block of its own (``micro_step_inputs_fwd_bwd_block_s``). For an editor that
  ``train`` meta-trains in one pass (``train.batched``, MEND): ``step_batched_s``, the same step
  with its edits in one pass, timed in turn with the edit-by-edit step (``step_loop_in_turn_s``),
  their ratio ``step_batched_speedup``, and the batched step's memory
  (``peak_memory_step_batched_mb``, counted in ``peak_memory_mb``);
* evaluation: edits per second one at a time (``eval_loop_edits_per_s``) and batched
  (``eval_edits_per_s``), their ratio ``eval_batched_speedup``, and whether every batched record
  equals the loop's (``eval_identical``);
* ``peak_memory_mb``: the highest memory while the toolkit edits, trains and evaluates the model
  (the plain forward + backward yardsticks, which hold a gradient for every weight, are not
  counted): resident memory of the process, sampled (on CUDA: the device's peak allocation);
  ``peak_memory_eval_loop_mb`` and ``peak_memory_eval_batched_mb`` are the two evaluations' own.

And ``<dataset>_prep`` (the dataset bench.yaml names): reading every language of the dataset named by
``prep.dataset`` in ``bench.yaml`` (or ``--prep-dataset``) and preparing the test split's edits and
locality inputs through the dataset API (what ``evaluate`` does before its first edit), ``cold_s``
with an empty cache and ``cached_s`` with the cache the cold pass wrote.

The per-model timing is :mod:`lime_toolkit.bench_timing`; this module builds the models, times the
dataset preparation and assembles the document.
"""
from __future__ import annotations

import dataclasses
import platform
import tempfile
import time
from importlib import resources
from pathlib import Path

import torch

from lime_toolkit.editing import EditingSystem
from lime_toolkit.runs.bench_timing import (
    Log,
    Subject,
    measure,
    release_memory,
)

#: mBERT's shape (bert-base-multilingual-cased), built locally with random weights.
MBERT_SHAPE = {"vocab_size": 119547, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
               "intermediate_size": 3072, "max_position_embeddings": 512}


def bench_defaults() -> dict:
    """The bench's own defaults (``lime_toolkit/bench.yaml``): which dataset's preparation is
    timed, from which folder, on which split."""
    import yaml

    text = resources.files("lime_toolkit").joinpath("bench.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


# -- the models ------------------------------------------------------------------------------------

def default_config() -> dict:
    """The default run's configuration (``lime-toolkit train`` with no flags)."""
    from lime_toolkit.config import load_config

    return load_config()


def demo_subject(device: torch.device, out_dir: Path, log: Log) -> Subject:
    """The default run's model (the default dataset's, built into the cache on first use), data and
    editing system, as ``lime-toolkit train`` builds them (its run directory: ``out_dir``)."""
    from lime_toolkit.config import load_config
    from lime_toolkit.runs.build import build_run

    config = load_config(None, {"device": str(device), "out": str(out_dir)})
    run = build_run(config, log=log)
    return Subject("demo", "the demo model", run.model, run.tokenizer, run.task, run.cases("test"), run.pool("test"),
                   list(run.dataset.languages), run.system,
                   {"parameters": sum(p.numel() for p in run.model.parameters()),
                    "editor_options": dict(run.system.editor.setup.options)})


def tiny_subject(device: torch.device) -> Subject:
    """The tiny test model and its toy data (``--quick``: a check of the command, not a measurement)."""
    from lime_toolkit.architectures import editable_parameters
    from lime_toolkit.testing import ToyDataset, tiny_masked_lm

    model, tokenizer = tiny_masked_lm()
    data = ToyDataset()
    splits = ("train", "dev", "test")
    cases = [c for s in splits for c in data.edit_cases(s)]
    pool = {l: [e for s in splits for e in data.locality_pool(s)[l]] for l in data.languages}
    from lime_toolkit.runs.build import component_options

    options = component_options(default_config(), "editor_options", "editor")
    system = default_system(model, editable_parameters(model, last_n_layers=2), data.languages, options).to(device)
    return Subject("demo", "the tiny test model (--quick)", model.to(device), tokenizer, data.task, cases, pool,
                   data.languages, system, {"parameters": sum(p.numel() for p in model.parameters()),
                                            "editor_options": options})


def default_system(model, names: list[str], languages: list[str], editor_options: dict) -> EditingSystem:
    """The default configuration's editor (with ``editor_options``) and mask strategy on
    ``model``'s weights ``names``, built through the plugins."""
    from lime_toolkit.editor_api import EditorSetup
    from lime_toolkit.mask_api import MaskSetup
    from lime_toolkit.plugin_manager import get_plugin_manager

    config = default_config()
    pm = get_plugin_manager()
    weights = dict(model.named_parameters())
    shapes = {n: tuple(weights[n].shape) for n in names}
    torch.manual_seed(0)
    editor = pm.editors.get(config["editor"]).obj(EditorSetup(model, shapes, languages, dict(editor_options)))
    masks = None
    if config.get("masks"):
        masks = pm.masks.get(config["masks"]).obj(MaskSetup(shapes, languages, {}))
    return EditingSystem(model, names, editor, masks)


def mbert_size_subject(like: Subject, device: torch.device) -> Subject:
    """A ``BertForMaskedLM`` of mBERT's shape with random weights (no download), edited on its last
    three layers' MLP weights by the default editor with its own default options (for MEND: the
    paper's rank 1920); ``like``'s tokenizer and data give it its inputs (every id fits mBERT's
    vocabulary)."""
    from transformers import BertConfig, BertForMaskedLM

    from lime_toolkit.architectures import editable_parameters

    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(**MBERT_SHAPE)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.to(device)
    names = editable_parameters(model, last_n_layers=3)
    system = default_system(model, names, like.languages, {}).to(device)
    return Subject("mbert_size", "random BertForMaskedLM of mBERT's size", model, like.tokenizer, like.task,
                   like.cases, like.pool, like.languages, system,
                   {"parameters": sum(p.numel() for p in model.parameters()), "editor_options": {}})


# -- dataset preparation ---------------------------------------------------------------------------

def dataset_preparation(name: str, data_dir: Path, split: str, log: Log, options: dict | None = None) -> dict:
    """Seconds the dataset ``name`` takes to read all its languages from ``data_dir`` and prepare
    ``split``'s edit cases and locality pool, first with an empty cache (``cold_s``), then again,
    from a fresh dataset object, with the cache the cold pass wrote (``cached_s``). ``options`` are
    the dataset's own settings (``dataset_options``)."""
    from lime_toolkit.dataset_api import DatasetOptions
    from lime_toolkit.plugin_manager import get_plugin_manager

    dataset_cls = get_plugin_manager().datasets.get(name).obj
    out: dict = {"dataset": name, "data_dir": str(data_dir), "split": split}
    with tempfile.TemporaryDirectory(prefix="lime-bench-cache-") as cache:
        for label in ("cold_s", "cached_s"):
            start = time.perf_counter()
            dataset = dataset_cls(DatasetOptions(data_dir=Path(data_dir), cache_dir=Path(cache), extra=dict(options or {})))
            cases = dataset.edit_cases(split)
            pool = dataset.locality_pool(split)
            out[label] = time.perf_counter() - start
            log(f"{name}: {len(dataset.languages)} languages, {len(cases)} {split} edits, "
                f"{sum(map(len, pool.values()))} locality inputs: {out[label]:.1f} s ({label[:-2]})")
    out["languages"] = len(dataset.languages)
    out[f"{split}_edits"] = len(cases)
    return out


def preparation_part(name: str, data_dir: Path | None, split: str, log: Log,
                     options: dict | None = None) -> tuple[dict | None, str | None]:
    """``(prep, None)``, or ``(None, why it was skipped)`` when ``data_dir`` is missing or the
    dataset finds no data in it (its own message says what it looked for)."""
    from lime_toolkit.errors import UserError

    reason = None
    if data_dir is None or not Path(data_dir).is_dir():
        reason = f"no {name} data at '{data_dir}'; pass --prep-data-dir with the dataset's folder"
    else:
        try:
            return dataset_preparation(name, Path(data_dir), split, log, options), None
        except UserError as exc:
            reason = f"no {name} data at '{data_dir}' ({exc})"
    log(f"{name} preparation skipped: {reason}")
    return None, reason


# -- the whole bench -------------------------------------------------------------------------------

def run_bench(device: torch.device, *, quick: bool = False, mbert: bool = True, prep: bool = True,
              prep_dataset: str | None = None, prep_data_dir: Path | None = None, batch_size: int | None = None,
              log: Log = print) -> dict:
    """Every measurement of the bench, as the JSON document ``--json`` writes. ``prep_dataset`` and
    ``prep_data_dir`` default to ``bench.yaml``'s; the preparation is under ``<dataset>_prep``."""
    started = time.perf_counter()
    defaults = bench_defaults()["prep"]
    name = prep_dataset or defaults["dataset"]
    prep_key = f"{name}_prep"
    doc: dict = {"device": str(device), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                 "python": platform.python_version(), "quick": quick, "skipped": {}, "prep_dataset": name}
    if quick:
        doc["demo"] = measure(tiny_subject(device), device, (4, 16), batch_size, log)
    else:
        with tempfile.TemporaryDirectory(prefix="lime-bench-", ignore_cleanup_errors=True) as out_dir:
            demo = demo_subject(device, Path(out_dir), log)
            doc["demo"] = measure(demo, device, (32, 128), batch_size, log)
            # the demo's model and editor are freed before the next model is built: only its inputs stay
            inputs = dataclasses.replace(demo, model=None, system=None)
            del demo
            release_memory()
        if mbert:
            big = mbert_size_subject(inputs, device)
            doc["mbert_size"] = measure(big, device, (16, 96), batch_size, log)
            del big
            release_memory()
    if "mbert_size" not in doc:
        doc["mbert_size"] = None
        doc["skipped"]["mbert_size"] = "--quick" if quick else "--no-mbert"
    doc[prep_key] = None
    if quick or not prep:
        doc["skipped"][prep_key] = "--quick" if quick else "--no-prep"
    else:
        data_dir = prep_data_dir if prep_data_dir is not None else defaults.get("data_dir")
        options = defaults.get("dataset_options") if name == defaults["dataset"] else None
        doc[prep_key], reason = preparation_part(name, Path(data_dir) if data_dir else None,
                                                 defaults.get("split", "test"), log, options)
        if reason:
            doc["skipped"][prep_key] = reason
    doc["wall_s"] = time.perf_counter() - started
    return doc
