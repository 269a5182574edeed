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
  forward + backward of all of a micro-step's inputs in one batch (edit, update and retain inputs);
* evaluation: edits per second one at a time (``eval_loop_edits_per_s``) and batched
  (``eval_edits_per_s``), their ratio ``eval_batched_speedup``, and whether every batched record
  equals the loop's (``eval_identical``);
* ``peak_memory_mb``: the highest memory while the toolkit edits, trains and evaluates the model
  (the plain forward + backward yardsticks, which hold a gradient for every weight, are not
  counted): resident memory of the process, sampled (on CUDA: the device's peak allocation);
  ``peak_memory_eval_loop_mb`` and ``peak_memory_eval_batched_mb`` are the two evaluations' own.

And ``mlama_prep``: reading all mLAMA languages and preparing the test split's edits and locality
inputs (what ``evaluate`` does before its first edit), ``cold_s`` with an empty cache and
``cached_s`` with the cache the cold pass wrote.
"""
from __future__ import annotations

import platform
import resource
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch

from lime_toolkit.batched_evaluation import DEFAULT_BATCH_SIZE
from lime_toolkit.editing import EditingSystem
from lime_toolkit.encoding import encode_examples
from lime_toolkit.evaluation import EvalSettings, edit_records, plan_edits
from lime_toolkit.factors import edit_loss
from lime_toolkit.models import position_logits
from lime_toolkit.sampler import Sample

#: mBERT's shape (bert-base-multilingual-cased), built locally with random weights.
MBERT_SHAPE = {"vocab_size": 119547, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
               "intermediate_size": 3072, "max_position_embeddings": 512}
ACCUMULATE = 4
JSON_KEYS = ("edit_over_fwd", "edit_over_fwd_bwd", "step_over_fwd_bwd", "eval_batched_speedup", "eval_edits_per_s",
             "peak_memory_mb")

Log = Callable[[str], None]


@dataclass
class Subject:
    """A model to measure with what it needs: tokenizer, task, edit cases and locality pool, and the
    editing system bound to it (the default configuration's editor and masks)."""

    name: str
    description: str
    model: torch.nn.Module
    tokenizer: object
    task: str
    cases: list
    pool: dict
    languages: list[str]
    system: EditingSystem
    options: dict = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeat: int = 3, warmup: int = 1) -> float:
    """The median wall time of ``fn`` over ``repeat`` calls after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextmanager
def weights_trainable(model: torch.nn.Module):
    """Within the block every weight of the (frozen) model takes gradients, as in plain training."""
    params = list(model.parameters())
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(False)
            p.grad = None


def peak_rss_mb() -> float:
    """The process's peak resident memory so far in MB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float | None:
    """The process's resident memory now in MB (Linux ``/proc``), or None where it cannot be read."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * resource.getpagesize() / 2**20


class MemoryWatch:
    """The peak memory while a block runs: on CUDA the device's peak allocation; on the CPU the
    resident memory sampled every few milliseconds (where ``/proc`` is missing: the process's peak
    so far)."""

    def __init__(self, device: torch.device, every_s: float = 0.005):
        self.device, self.every_s = device, every_s
        self.peak_mb = 0.0

    def __enter__(self):
        import threading

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._stop = threading.Event()
        self.peak_mb = current_rss_mb() or 0.0

        def sample():
            while not self._stop.wait(self.every_s):
                self.peak_mb = max(self.peak_mb, current_rss_mb() or 0.0)
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        self._stop.set()
        self._thread.join()
        now = current_rss_mb()
        self.peak_mb = max(self.peak_mb, now) if now is not None else peak_rss_mb()


def first_sample(subject: Subject, n_update: int = 1, n_retain: int = 4) -> Sample:
    """A fixed draw: the first case in the first language, ``n_update`` parallel and ``n_retain``
    unrelated inputs (the issue's shape: one sentence, 1 update, 4 retain inputs)."""
    settings = EvalSettings(subject.languages, subject.languages, n_update=n_update, n_retain=n_retain, seed=0)
    job = next(iter(plan_edits(subject.cases, subject.pool, settings)))
    return Sample(job.case, job.case.inputs[job.lang], job.updates, job.retains)


def measure(subject: Subject, device: torch.device, eval_edits: tuple[int, int], batch_size: int | None,
            log: Log) -> dict:
    """Every per-model number of the bench for ``subject`` (see the module docstring)."""
    from lime_toolkit.training import meta_loss

    model, system, task = subject.model, subject.system, subject.task
    sample = first_sample(subject)
    encode = lambda examples: encode_examples(subject.tokenizer, examples, task).to(device)  # noqa: E731
    edit_batch = encode([sample.edit])
    out: dict = {"model": subject.description, **subject.options}

    def forward():
        with torch.no_grad():
            position_logits(model, edit_batch)

    out["fwd_s"] = timed(forward, device, repeat=5)
    with weights_trainable(model):
        def forward_backward(batch=edit_batch):
            edit_loss(model, batch).backward()
            for p in model.parameters():
                p.grad = None

        out["fwd_bwd_s"] = timed(forward_backward, device, repeat=5)
        every_input = encode([sample.edit] + sample.updates + sample.retain)
        all_inputs = timed(lambda: forward_backward(every_input), device, repeat=5)
    log(f"{subject.name}: forward {out['fwd_s']:.3f} s, forward+backward {out['fwd_bwd_s']:.3f} s")

    system.eval()

    def edit():
        with torch.no_grad():
            system.edit(edit_batch, sample.edit.lang)

    with MemoryWatch(device) as edit_memory:
        out["edit_s"] = timed(edit, device)

    system.train()
    params = [p for p in system.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-6)
    weights = {"rel_weight": 1.0, "loc_weight": 1.0, "mask_weight": 1.0}
    run = SimpleNamespace(model=model, system=system, tokenizer=subject.tokenizer, task=task, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        for _ in range(ACCUMULATE):
            (meta_loss(run, sample, weights)["loss"] / ACCUMULATE).backward()
        torch.nn.utils.clip_grad_norm_(params, 100.0)
        optimizer.step()

    state = {k: v.detach().clone() for k, v in system.state_dict().items()}
    with MemoryWatch(device) as step_memory:
        out["step_s"] = timed(step, device, repeat=3)
    system.load_state_dict(state)  # the measured steps leave the editor as it was
    optimizer.state.clear()  # Adam's moments are not needed by the evaluation
    system.eval()
    log(f"{subject.name}: edit {out['edit_s']:.3f} s, meta-training step (accumulate {ACCUMULATE}) "
        f"{out['step_s']:.3f} s")

    n_loop, n_batched = eval_edits
    settings = EvalSettings(subject.languages, subject.languages, n_update=1, n_retain=4, seed=0)
    jobs = []
    for job in plan_edits(subject.cases, subject.pool, settings):
        jobs.append(job)
        if len(jobs) >= max(n_loop, n_batched):
            break
    size = batch_size or DEFAULT_BATCH_SIZE
    edit_records(system, subject.tokenizer, task, jobs[:2], 1)  # warm-up
    edit_records(system, subject.tokenizer, task, jobs[:size], size)
    with MemoryWatch(device) as loop_memory:
        _sync(device)
        start = time.perf_counter()
        loop = edit_records(system, subject.tokenizer, task, jobs[:n_loop], 1)
        _sync(device)
        loop_s = time.perf_counter() - start
    with MemoryWatch(device) as batched_memory:
        start = time.perf_counter()
        batched = edit_records(system, subject.tokenizer, task, jobs[:n_batched], size)
        _sync(device)
        batched_s = time.perf_counter() - start
    out["eval_batch_size"] = size
    out["eval_loop_edits_per_s"] = len(loop) / loop_s
    out["eval_edits_per_s"] = len(batched) / batched_s
    out["eval_batched_speedup"] = out["eval_edits_per_s"] / out["eval_loop_edits_per_s"]
    out["eval_identical"] = batched[:len(loop)] == loop
    out["eval_edits"] = {"loop": len(loop), "batched": len(batched)}
    log(f"{subject.name}: evaluation {out['eval_loop_edits_per_s']:.2f} edits/s one at a time, "
        f"{out['eval_edits_per_s']:.2f} edits/s in batches of {size}")

    out["edit_over_fwd"] = out["edit_s"] / out["fwd_s"]
    out["edit_over_fwd_bwd"] = out["edit_s"] / out["fwd_bwd_s"]
    out["micro_step_inputs_fwd_bwd_s"] = all_inputs
    out["step_over_fwd_bwd"] = out["step_s"] / ACCUMULATE / all_inputs
    out["peak_memory_eval_loop_mb"] = loop_memory.peak_mb
    out["peak_memory_eval_batched_mb"] = batched_memory.peak_mb
    out["peak_memory_mb"] = max(w.peak_mb for w in (edit_memory, step_memory, loop_memory, batched_memory))
    return out


# -- the models ------------------------------------------------------------------------------------

def default_config() -> dict:
    """The default run's configuration (``lime-toolkit train`` with no flags)."""
    from lime_toolkit.config import load_config

    return load_config()


def demo_subject(device: torch.device, log: Log) -> Subject:
    """The default run's model (the default dataset's, built into the cache on first use), data and
    editing system, as ``lime-toolkit train`` builds them."""
    from lime_toolkit.config import load_config
    from lime_toolkit.runs.build import build_run

    config = load_config(None, {"device": str(device), "out": tempfile.mkdtemp(prefix="lime-bench-")})
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


# -- mLAMA preparation -----------------------------------------------------------------------------

def mlama_preparation(data_dir: Path, log: Log) -> dict:
    """Seconds to read every mLAMA language and prepare the test split's edit cases and locality
    pool, first with an empty cache (``cold_s``), then again from the cache it wrote
    (``cached_s``)."""
    from lime_toolkit.dataset_api import DatasetOptions
    from lime_toolkit.plugin_manager import get_plugin_manager

    dataset_cls = get_plugin_manager().datasets.get("mlama").obj
    out: dict = {"data_dir": str(data_dir)}
    with tempfile.TemporaryDirectory(prefix="lime-bench-cache-") as cache:
        for label in ("cold_s", "cached_s"):
            start = time.perf_counter()
            dataset = dataset_cls(DatasetOptions(data_dir=Path(data_dir), cache_dir=Path(cache)))
            cases = dataset.edit_cases("test")
            pool = dataset.locality_pool("test")
            out[label] = time.perf_counter() - start
            log(f"mLAMA: {len(dataset.languages)} languages, {len(cases)} test edits, "
                f"{sum(map(len, pool.values()))} locality inputs: {out[label]:.1f} s ({label[:-2]})")
    out["languages"] = len(dataset.languages)
    out["test_edits"] = len(cases)
    return out


def mlama_part(mlama_dir: Path | None, log: Log) -> tuple[dict | None, str | None]:
    """``(mlama_prep, None)``, or ``(None, why it was skipped)`` when ``mlama_dir`` holds no mLAMA
    release (a folder holding ``mlama1.1/``, or ``mlama1.1/`` itself)."""
    root = Path(mlama_dir) if mlama_dir else None
    if root is None or not ((root / "mlama1.1").is_dir() or (root.name == "mlama1.1" and root.is_dir())):
        reason = f"no mLAMA data at '{mlama_dir}'; pass --mlama-dir with the folder holding mlama1.1/"
        log(f"mLAMA preparation skipped: {reason}")
        return None, reason
    return mlama_preparation(root, log), None


# -- the whole bench -------------------------------------------------------------------------------

def run_bench(device: torch.device, *, quick: bool = False, mbert: bool = True, mlama: bool = True,
              mlama_dir: Path | None = None, batch_size: int | None = None, log: Log = print) -> dict:
    """Every measurement of the bench, as the JSON document ``--json`` writes."""
    started = time.perf_counter()
    doc: dict = {"device": str(device), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                 "python": platform.python_version(), "quick": quick, "skipped": {}}
    if quick:
        doc["demo"] = measure(tiny_subject(device), device, (4, 16), batch_size, log)
    else:
        demo = demo_subject(device, log)
        doc["demo"] = measure(demo, device, (32, 128), batch_size, log)
        if mbert:
            big = mbert_size_subject(demo, device)
            doc["mbert_size"] = measure(big, device, (16, 96), batch_size, log)
            del big
    if "mbert_size" not in doc:
        doc["mbert_size"] = None
        doc["skipped"]["mbert_size"] = "--quick" if quick else "--no-mbert"
    doc["mlama_prep"] = None
    if quick or not mlama:
        doc["skipped"]["mlama_prep"] = "--quick" if quick else "--no-mlama"
    else:
        doc["mlama_prep"], reason = mlama_part(mlama_dir, log)
        if reason:
            doc["skipped"]["mlama_prep"] = reason
    doc["wall_s"] = time.perf_counter() - started
    return doc
