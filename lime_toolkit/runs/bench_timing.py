"""The timing of one model for ``lime-toolkit bench`` (:mod:`lime_toolkit.runs.bench` assembles the
whole bench): plain forward and forward + backward, a test-time edit, a meta-training step, the
evaluation one edit at a time and batched, and the peak memory of each, as the per-model numbers of
the bench's JSON (docs/performance.md says how to read them)."""
from __future__ import annotations

import resource
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import safetensors.torch
import torch

from lime_toolkit.batched_evaluation import DEFAULT_BATCH_SIZE
from lime_toolkit.batched_training import batched_meta_loss, trains_batched
from lime_toolkit.editing import EditingSystem
from lime_toolkit.encoding import encode_examples
from lime_toolkit.evaluation import EvalSettings, edit_records, plan_edits
from lime_toolkit.factors import edit_loss
from lime_toolkit.models import position_logits
from lime_toolkit.sampler import Sample

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


def timed_in_turn(first: Callable[[], object], second: Callable[[], object], device: torch.device,
                  repeat: int = 5, warmup: int = 1) -> tuple[float, float]:
    """The median wall times of ``first`` and ``second`` called in turn ``repeat`` times after
    ``warmup`` unmeasured calls of each: a load that changes while they are measured weighs on both
    alike, so their ratio moves less than when each is measured in a block of its own."""
    for _ in range(warmup):
        first()
        second()
    times: tuple[list, list] = ([], [])
    for _ in range(repeat):
        for fn, out in ((first, times[0]), (second, times[1])):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


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


def release_memory() -> None:
    """Collect garbage and hand freed memory back to the system (glibc's ``malloc_trim``, where
    there is one), so that the resident memory measured next is what is in use, not what an earlier
    measurement left to the allocator."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


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
    so far). Entered again, it keeps the highest peak of all its blocks."""

    def __init__(self, device: torch.device, every_s: float = 0.005):
        self.device, self.every_s = device, every_s
        self.peak_mb = 0.0

    def __enter__(self):
        import threading

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._stop = threading.Event()
        self.peak_mb = max(self.peak_mb, current_rss_mb() or 0.0)

        def sample():
            while not self._stop.wait(self.every_s):
                self.peak_mb = max(self.peak_mb, current_rss_mb() or 0.0)
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_mb = max(self.peak_mb, torch.cuda.max_memory_allocated(self.device) / 2**20)
            return
        self._stop.set()
        self._thread.join()
        now = current_rss_mb()
        self.peak_mb = max(self.peak_mb, now if now is not None else peak_rss_mb())


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

    def forward_backward(batch=edit_batch):
        with weights_trainable(model):
            edit_loss(model, batch).backward()

    out["fwd_bwd_s"] = timed(forward_backward, device, repeat=5)
    every_input = encode([sample.edit] + sample.updates + sample.retain)
    # the micro-step's yardstick in a block of its own too (the in-turn timing below pays page faults
    # the block does not: docs/performance.md)
    out["micro_step_inputs_fwd_bwd_block_s"] = timed(lambda: forward_backward(every_input), device, repeat=3)
    log(f"{subject.name}: forward {out['fwd_s']:.3f} s, forward+backward {out['fwd_bwd_s']:.3f} s")

    system.eval()

    def edit():
        with torch.no_grad():
            system.edit(edit_batch, sample.edit.lang)

    release_memory()
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

    # the editor's state, to restore after the measured steps, waits on disk: a copy in memory would
    # count in the step's peak (226 MB for MEND at rank 1920)
    saved = Path(tempfile.mkdtemp(prefix="lime-bench-editor-")) / "editor.safetensors"
    safetensors.torch.save_model(system, str(saved))
    # the step and the plain forward + backward of its inputs in turn (the latter's memory, a gradient
    # for every weight, not counted)
    all_inputs, out["step_s"] = timed_in_turn(lambda: forward_backward(every_input), step, device, repeat=5)
    # its memory in one more call of its own, untimed: handing memory back to the system first would
    # make a timed call pay the page faults of taking it again
    step_memory = MemoryWatch(device)
    release_memory()
    with step_memory:
        step()
    watches = [step_memory]
    if trains_batched(system):  # train's own form for MEND (train.batched): the step's edits in one pass
        def batched_step():
            optimizer.zero_grad(set_to_none=True)
            batched_meta_loss(run, [sample] * ACCUMULATE, weights, lambda e: nullcontext())["loss"].backward()
            torch.nn.utils.clip_grad_norm_(params, 100.0)
            optimizer.step()

        out["step_loop_in_turn_s"], out["step_batched_s"] = timed_in_turn(step, batched_step, device, repeat=3)
        out["step_batched_speedup"] = out["step_loop_in_turn_s"] / out["step_batched_s"]
        watches.append(MemoryWatch(device))
        release_memory()
        with watches[-1]:
            batched_step()
        out["peak_memory_step_batched_mb"] = watches[-1].peak_mb
    safetensors.torch.load_model(system, str(saved), device=str(device))  # the editor as it was
    shutil.rmtree(saved.parent, ignore_errors=True)
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
    release_memory()
    with MemoryWatch(device) as loop_memory:
        _sync(device)
        start = time.perf_counter()
        loop = edit_records(system, subject.tokenizer, task, jobs[:n_loop], 1)
        _sync(device)
        loop_s = time.perf_counter() - start
    release_memory()
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
    out["step_over_fwd_bwd_block"] = out["step_s"] / ACCUMULATE / out["micro_step_inputs_fwd_bwd_block_s"]
    out["peak_memory_eval_loop_mb"] = loop_memory.peak_mb
    out["peak_memory_eval_batched_mb"] = batched_memory.peak_mb
    out["peak_memory_mb"] = max(w.peak_mb for w in (edit_memory, *watches, loop_memory, batched_memory))
    return out
