"""Meta-training an editor (paper section 3): edit stage, then L_rel + L_loc + L_mask.

One optimiser step averages the gradients of ``accumulate`` edits, each drawn by the cross-lingual
sampler; the base model stays frozen (editors that train base weights own a copy of them).
"""
from __future__ import annotations

import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
import torch.nn.functional as F

from lime_toolkit.batched_training import batched_meta_loss, trains_batched
from lime_toolkit.checkpoint import load_checkpoint, recover, save_checkpoint
from lime_toolkit.config_schema import SCHEDULES
from lime_toolkit.data import EditCase
from lime_toolkit.encoding import encode_examples
from lime_toolkit.errors import UserError
from lime_toolkit.evaluation import EvalSettings, evaluate
from lime_toolkit.factored_updates import edited
from lime_toolkit.factors import edit_loss
from lime_toolkit.models import position_logits
from lime_toolkit.run import Run
from lime_toolkit.sampler import CrossLingualSampler, Sample
from lime_toolkit.shared_prefix import SharedPrefix, layer_stack


def meta_loss(run: Run, sample: Sample, weights: dict) -> dict[str, torch.Tensor]:
    """The training formula for one edit: L = λ_rel·CE(f(x_u; θ_u), y_e)
    + λ_loc·KL(f(x_r; θ) ‖ f(x_r; θ_u)) + λ_mask·L0(masks of l_e)."""
    model, system, lang = run.model, run.system, sample.edit.lang
    encode = lambda examples: encode_examples(run.tokenizer, examples, run.task).to(run.device)  # noqa: E731
    retain, prefix = encode(sample.retain), SharedPrefix(layer_stack(model, system.param_names))
    with torch.no_grad(), prefix.recording():  # the layers before the first edited one: run once
        before = F.log_softmax(position_logits(model, retain), dim=-1)
    with edited(system, encode([sample.edit]), lang) as theta_u:
        rel = edit_loss(model, encode(sample.updates), theta_u)
        with prefix.resumed():
            after = F.log_softmax(position_logits(model, retain, theta_u), dim=-1)
    loc = F.kl_div(after, before, log_target=True, reduction="batchmean")
    mask = system.masks.penalty([lang]).to(rel.device) if system.masks is not None else rel.new_zeros(())
    total = weights["rel_weight"] * rel + weights["loc_weight"] * loc + weights["mask_weight"] * mask
    return {"loss": total, "rel": rel, "loc": loc, "mask": mask}


def target_difficulty(run: Run, langs) -> Callable[[EditCase], float]:
    """How hard an edit is for the unedited model: the mean cross-entropy of its targets on its
    inputs in ``langs`` (the update languages), computed once per (case, targets) and cached."""
    cache: dict[tuple, float] = {}

    def difficulty(case: EditCase) -> float:
        examples = [case.inputs[l] for l in langs if l in case.inputs]
        key = (case.id, tuple((ex.lang, ex.target) for ex in examples))
        if key not in cache:
            with torch.no_grad():
                batch = encode_examples(run.tokenizer, examples, run.task).to(run.device)
                cache[key] = float(edit_loss(run.model, batch, {}))
        return cache[key]

    return difficulty


def make_optimizer(run: Run) -> torch.optim.Optimizer:
    """Adam with the editor's parameter groups and the masks in a group of their own."""
    train = run.config["train"]
    editor = run.system.editor
    lr = _positive_rate(train["lr"] or editor.setup.option("lr", None) or editor.default_lr, "the editor's lr")
    groups = [{**group, "lr": group.get("lr", lr)} for group in editor.param_groups()]
    if run.system.masks is not None:
        params = [p for p in run.system.masks.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "name": "masks",
                           "lr": _positive_rate(train["mask_lr"] or run.system.masks.default_lr, "train.mask_lr")})
    for group in groups:
        group["lr"] = _positive_rate(group["lr"], f"the learning rate of parameter group '{group.get('name')}'")
        group["initial_lr"] = group["lr"]  # the schedule's unit (lr_factor)
    return torch.optim.Adam(groups)


def lr_factor(schedule: str, step: int, max_steps: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) over the initial one: 1 throughout
    (``constant``), or a half cosine from 1 at the first step to 0 after the last (``cosine``).
    A function of the step alone, so a resumed run continues the schedule exactly."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / max(max_steps, 1)))
    raise UserError(f"train.schedule must be one of {', '.join(SCHEDULES)} (got {schedule!r})")


def _positive_rate(value, what: str) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number (got {value!r})") from None
    if not rate > 0:
        raise UserError(f"{what} must be positive (got {rate})")
    return rate


#: The training's last checkpoint keeps the one before it (the way out when last is damaged).
PREVIOUS = {"last": "previous"}


class TrainingMonitor(Protocol):
    def on_step(self, step: int, terms: dict[str, float], steps_per_s: float) -> None: ...
    def on_validation(self, step: int, metrics: dict, improved: bool) -> None: ...
    def on_edit(self) -> None: ...


@dataclass
class TrainResult:
    best_step: int
    best_succ: float
    steps: int
    stopped_early: bool
    resumed_from: int


def validation_settings(run: Run) -> EvalSettings:
    roles = run.roles(run.config["train"]["langs"])
    return EvalSettings(list(roles.edit), list(roles.update), n_update=0, n_retain=4,
                        max_edits=int(run.config["train"]["val_edits"]), seed=int(run.config["seed"]),
                        intervals=False)


@contextmanager
def micro_step_rng(seed: int, step: int, index: int, device: torch.device):
    """Torch's generator seeded from (seed, step, global micro-step index) for one micro-step and
    restored afterwards, like the sampler's draws: the hard-concrete gates' noise of an edit is then
    the same whichever process draws it, so N processes with ``accumulate: a`` train exactly as one
    with ``accumulate: N*a`` (and a resumed run repeats it too)."""
    devices = ([device.index if device.index is not None else torch.cuda.current_device()]
               if device.type == "cuda" else [])
    with torch.random.fork_rng(devices=devices):
        value = random.Random(f"{seed}:{step}:{index}:torch").getrandbits(63)
        # the generators torch.manual_seed would seed, without its lazy calls to every other backend
        # (each of which formats a stack trace while CUDA is not initialised: 2 ms a micro-step)
        torch.default_generator.manual_seed(value)
        for d in devices:
            with torch.cuda.device(d):
                torch.cuda.manual_seed(value)
        yield


def average_gradients(params, processes: int) -> None:
    """Under ``accelerate launch`` each process draws its own edits; average their gradients.

    A parameter may have a gradient on some processes only (the masks of a language only one of
    them drew): it counts as zero on the others, and one that no process touched keeps ``None``
    (the optimiser skips it), exactly as one process drawing every edit would leave it."""
    if processes <= 1:
        return
    params = list(params)
    device = next((p.grad.device for p in params if p.grad is not None), params[0].device if params else "cpu")
    has = torch.tensor([float(p.grad is not None) for p in params], device=device)
    torch.distributed.all_reduce(has, op=torch.distributed.ReduceOp.MAX)
    for p, anywhere in zip(params, has.tolist()):
        if not anywhere:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
        p.grad /= processes


def train(run: Run, monitor: TrainingMonitor) -> TrainResult:
    """Meta-train ``run.system``; keeps ``<out>/checkpoints/{init,last,previous,best}``; resumes
    exactly from last: the checkpoint holds the optimiser, every random state (torch's generators,
    which also drive the hard-concrete gates' noise, Python's and numpy's) and the sampler's
    position (its draws depend only on seed, step and micro-step), so a resumed run repeats the
    uninterrupted run's numbers.

    Across processes (``accelerate launch``) every process draws different edits, gradients are
    averaged, and only the main process writes checkpoints (and so only its random state is kept).
    """
    from lime_toolkit.devices import process_state

    dist = process_state(str(run.device))
    cfg, ckpt = run.config["train"], run.out / "checkpoints"
    if dist.is_main_process:
        recover(ckpt, PREVIOUS)
    roles = run.roles(cfg["langs"])
    seed, accumulate = int(run.config["seed"]), int(cfg["accumulate"])
    hard = int(cfg.get("hard_targets", 1))
    sampler = CrossLingualSampler(run.cases("train"), run.pool("train"), roles,
                                  n_retain=int(cfg["retain_per_edit"]), seed=seed,
                                  n_update=int(cfg.get("update_per_edit", 1)), hard_targets=hard,
                                  difficulty=target_difficulty(run, roles.update) if hard > 1 else None)
    dev_cases, dev_pool = run.cases("dev"), run.pool("dev")
    optimizer = make_optimizer(run)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    save = save_checkpoint if dist.is_main_process else (lambda *a, **k: None)
    if not (ckpt / "init").exists():
        save(ckpt / "init", run.system, {"step": 0})
    start, best_step, best_succ, stale = 0, 0, -1.0, 0
    position = {"seed": seed, "draws_per_step": accumulate * dist.num_processes}
    if (ckpt / "last").exists():
        state = load_checkpoint(ckpt / "last", run.system, optimizer, rng=dist.is_main_process)
        try:
            start, best_step, best_succ, stale = state["step"], state["best_step"], state["best_succ"], state["stale"]
        except KeyError as exc:
            from lime_toolkit.checkpoint import damaged

            raise damaged(ckpt / "last", f"its state has no {exc}") from None
        saved = {k: v for k, v in (state.get("sampler") or {}).items() if k != "step"}
        if saved and saved != position:
            raise UserError(f"'{ckpt / 'last'}' was drawn with sampler {saved}, this run draws {position}; "
                            f"resume with the same seed, accumulate and number of processes, or use another --out")
        if state.get("stopped_early") or start >= int(cfg["max_steps"]):  # nothing left to do
            return TrainResult(best_step, best_succ, start, state.get("stopped_early", False), start)
    resumed_from, stopped_early = start, False
    # MEND: the step's edits in one pass (lime_toolkit.batched_training); the same terms and gradients
    batched = bool(cfg.get("batched", True)) and trains_batched(run.system)
    device = torch.device(run.device)
    run.system.train()
    max_steps, schedule = int(cfg["max_steps"]), str(cfg.get("schedule", "constant"))
    tick, done = time.perf_counter(), start
    for step in range(start, max_steps):
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        indices = [dist.process_index * accumulate + m for m in range(accumulate)]  # micro-steps over all processes
        if batched:
            samples = [sampler.draw(step, index) for index in indices]
            terms = batched_meta_loss(run, samples, cfg, lambda e: micro_step_rng(seed, step, indices[e], device))
            terms["loss"].backward()
            sums = {k: float(v.detach()) for k, v in terms.items()}
        else:
            for index in indices:
                with micro_step_rng(seed, step, index, device):
                    terms = meta_loss(run, sampler.draw(step, index), cfg)
                    (terms["loss"] / accumulate).backward()
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / accumulate
        average_gradients(params, dist.num_processes)
        if run.system.masks is not None:
            run.system.masks.before_optimizer_step()
        torch.nn.utils.clip_grad_norm_(params, float(cfg["clip"]))
        factor = lr_factor(schedule, step, max_steps)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        optimizer.step()
        done = step + 1
        now = time.perf_counter()
        monitor.on_step(done, sums, 1.0 / max(now - tick, 1e-9))
        tick = now
        if done % int(cfg["val_every"]) == 0 or done == max_steps:
            metrics = evaluate(run.system, run.tokenizer, run.task, dev_cases, dev_pool,
                               validation_settings(run), on_edit=monitor.on_edit)
            improved = metrics["succ"] > best_succ
            if improved:
                best_step, best_succ, stale = done, metrics["succ"], 0
                save(ckpt / "best", run.system, {"step": done, "val": metrics})
            else:
                stale += 1
            monitor.on_validation(done, metrics, improved)
            stopped_early = bool(cfg["patience"]) and stale >= int(cfg["patience"])
            save(ckpt / "last", run.system, {
                "step": done, "best_step": best_step, "best_succ": best_succ, "stale": stale,
                "finished": stopped_early or done == max_steps, "stopped_early": stopped_early,
                "sampler": {**position, "step": done}}, optimizer, rng=True, previous=PREVIOUS["last"])
            dist.wait_for_everyone()
            run.system.train()
            tick = time.perf_counter()
            if stopped_early:
                break
    return TrainResult(best_step, best_succ, done, stopped_early, resumed_from)


def load_best(run: Run) -> dict:
    """Load the best checkpoint (the last one when no validation improved); returns its state."""
    ckpt = run.out / "checkpoints"
    recover(ckpt, PREVIOUS)
    for name in ("best", "last", "init"):
        if (ckpt / name).exists():
            return load_checkpoint(ckpt / name, run.system)
    return {}
