"""The bookkeeping of ``train`` on the tiny random masked LM, in seconds: which checkpoint holds
what (init at step 0, best at the best validation, last with the run's position), early stopping,
a resumed run that has nothing left to do, a save of ``last`` that a killed process left half
done, the draws it takes from the sampler (the configured retain and update counts) and what a
process other than the main one does under ``accelerate launch``.

The validation is scripted (``evaluate`` replaced by a list of succ values), so the loop's
decisions are known in advance; the training steps themselves are real (MEND on the tiny model).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import lime_toolkit.training as training
from lime_toolkit.architectures import editable_parameters
from lime_toolkit.checkpoint import load_checkpoint, verify
from lime_toolkit.config import defaults
from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import EditorSetup
from lime_toolkit.errors import UserError
from lime_toolkit.run import Run
from lime_toolkit.sampler import CrossLingualSampler
from lime_toolkit.testing import ToyDataset, tiny_masked_lm
from lime_toolkit.training import TrainResult, train
from lime_toolkit_plugins.mend.editor import MendEditor

WEIGHTS = {"rel_weight": 0.1, "loc_weight": 1.0, "mask_weight": 1.0}


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    model, tok = tiny_masked_lm()
    return SimpleNamespace(model=model, tok=tok, names=editable_parameters(model, last_n_layers=1),
                           data=ToyDataset())


def make_run(base, out: Path, seed: int = 3, editor_seed: int = 1, **train_options) -> Run:
    config = defaults()
    config["train"].update(langs="all", accumulate=1, val_edits=1, retain_per_edit=1, patience=0, lr=1e-3,
                           **WEIGHTS)
    config["train"].update(train_options)
    config["seed"] = seed
    shapes = {n: tuple(p.shape) for n, p in base.model.named_parameters() if n in base.names}
    torch.manual_seed(editor_seed)
    editor = MendEditor(EditorSetup(base.model, shapes, base.data.languages, {"rank": 4, "step_size_init": 1.0}))
    system = EditingSystem(base.model, base.names, editor, None)
    return Run(config, base.data, base.model, base.tok, system, out, torch.device("cpu"))


def spy_draws(monkeypatch) -> tuple[list, list]:
    """Record the samples ``train`` meta-trains on, edit by edit or a step's edits at once; returns
    (the samples, the sizes of the batched passes)."""
    seen, passes = [], []
    real, real_batched = training.meta_loss, training.batched_meta_loss
    monkeypatch.setattr(training, "meta_loss", lambda run, sample, weights: (seen.append(sample),
                                                                            real(run, sample, weights))[1])
    monkeypatch.setattr(training, "batched_meta_loss", lambda run, samples, weights, noise: (
        seen.extend(samples), passes.append(len(samples)), real_batched(run, samples, weights, noise))[2])
    return seen, passes


class Monitor:
    def __init__(self, system=None):
        self.steps, self.validations, self.snapshots, self.system = [], [], {}, system

    def on_step(self, step, terms, steps_per_s):
        self.steps.append((step, terms))

    def on_validation(self, step, metrics, improved):
        self.validations.append((step, metrics["succ"], improved))
        if self.system is not None:
            self.snapshots[step] = {k: v.clone() for k, v in self.system.editor.state_dict().items()}

    def on_edit(self):
        pass


ON_EDITS: list = []


def script_validation(monkeypatch, succs: list[float]) -> list:
    """Replace the validation by the given succ values, in order; returns the list of its calls'
    settings (and ``ON_EDITS``, the ``on_edit`` each call was given)."""
    calls = []
    ON_EDITS.clear()

    def evaluate(system, tokenizer, task, cases, pool, settings, on_edit=None):
        calls.append(settings)
        ON_EDITS.append(on_edit)
        return {"succ": succs[len(calls) - 1], "acc": 0.0, "con": 0.0}

    monkeypatch.setattr(training, "evaluate", evaluate)
    return calls


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_hold_init_the_best_validation_and_the_runs_position(base, tmp_path, monkeypatch):
    """Validations at every step score 0.0, 0.5, 0.5, 0.25: the first always improves (even at 0),
    a tie does not, and with patience 2 the run stops after step 4 with step 2 as its best."""
    calls = script_validation(monkeypatch, [0.0, 0.5, 0.5, 0.25])
    run = make_run(base, tmp_path / "run", max_steps=6, val_every=1, patience=2)
    untrained = {k: v.clone() for k, v in run.system.editor.state_dict().items()}
    monitor = Monitor(run.system)
    result = train(run, monitor)
    assert result == TrainResult(best_step=2, best_succ=0.5, steps=4, stopped_early=True, resumed_from=0)
    assert monitor.validations == [(1, 0.0, True), (2, 0.5, True), (3, 0.5, False), (4, 0.25, False)]
    assert [s for s, _ in monitor.steps] == [1, 2, 3, 4]
    assert calls == [training.validation_settings(run)] * 4
    assert ON_EDITS == [monitor.on_edit] * 4  # the validation's edits reach the monitor (progress)
    ckpt = run.out / "checkpoints"
    assert verify(ckpt / "init")["step"] == 0
    assert verify(ckpt / "best")["step"] == 2 and verify(ckpt / "best")["val"]["succ"] == 0.5
    last = verify(ckpt / "last")
    assert {k: last[k] for k in ("step", "best_step", "best_succ", "stale", "finished", "stopped_early")} == {
        "step": 4, "best_step": 2, "best_succ": 0.5, "stale": 2, "finished": True, "stopped_early": True}
    assert last["sampler"] == {"seed": 3, "draws_per_step": 1, "step": 4}
    assert verify(ckpt / "previous")["step"] == 3  # the last before the last is the way out
    # each checkpoint holds the editor as it was then: init the untrained one, best step 2's
    system, editor = run.system, run.system.editor
    load_checkpoint(ckpt / "init", system)
    assert same(editor.state_dict(), untrained)
    load_checkpoint(ckpt / "best", system)
    assert same(editor.state_dict(), monitor.snapshots[2]) and not same(monitor.snapshots[2], untrained)
    load_checkpoint(ckpt / "last", system)
    assert same(editor.state_dict(), monitor.snapshots[4])

    # a run that stopped early has nothing left to do: resuming it returns at once with its result
    again = Monitor()
    resumed = train(make_run(base, tmp_path / "run", max_steps=6, val_every=1, patience=2), again)
    assert resumed == TrainResult(best_step=2, best_succ=0.5, steps=4, stopped_early=True, resumed_from=4)
    assert again.steps == [] and again.validations == [] and len(calls) == 4


def test_a_finished_run_resumes_to_its_result_and_validates_at_the_last_step(base, tmp_path, monkeypatch):
    """val_every larger than max_steps: the one validation is at the last step. Without patience
    a run never stops early; a run at max_steps returns its result without another step."""
    calls = script_validation(monkeypatch, [0.0])
    run = make_run(base, tmp_path / "run", max_steps=3, val_every=5)
    monitor = Monitor()
    assert train(run, monitor) == TrainResult(best_step=3, best_succ=0.0, steps=3, stopped_early=False,
                                              resumed_from=0)
    assert [s for s, _ in monitor.steps] == [1, 2, 3] and monitor.validations == [(3, 0.0, True)]
    last = verify(run.out / "checkpoints" / "last")
    assert (last["step"], last["finished"], last["stopped_early"], last["stale"]) == (3, True, False, 0)
    again = Monitor()
    assert train(make_run(base, tmp_path / "run", max_steps=3, val_every=5), again) == TrainResult(
        best_step=3, best_succ=0.0, steps=3, stopped_early=False, resumed_from=3)
    assert again.steps == [] and len(calls) == 1


def test_a_run_with_no_improvement_never_stops_without_patience(base, tmp_path, monkeypatch):
    script_validation(monkeypatch, [0.5, 0.25, 0.25, 0.25])
    run = make_run(base, tmp_path / "run", max_steps=4, val_every=1, patience=0)
    result = train(run, Monitor())
    assert result == TrainResult(best_step=1, best_succ=0.5, steps=4, stopped_early=False, resumed_from=0)
    assert verify(run.out / "checkpoints" / "last")["stale"] == 3


def test_train_finishes_a_save_of_last_that_a_killed_process_left_half_done(base, tmp_path, monkeypatch):
    """Killed after writing ``last.new`` (step 2) and before swapping it in: the next ``train``
    swaps it in and keeps the replaced ``last`` (step 1) as ``previous``, then, at max_steps,
    has nothing left to do."""
    script_validation(monkeypatch, [0.0, 0.5])
    train(make_run(base, tmp_path / "run", max_steps=2, val_every=1), Monitor())
    ckpt = tmp_path / "run" / "checkpoints"
    os.rename(ckpt / "last", ckpt / "last.new")  # the state a kill between build and swap leaves
    os.rename(ckpt / "previous", ckpt / "last")
    monitor = Monitor()
    result = train(make_run(base, tmp_path / "run", max_steps=2, val_every=1), monitor)
    assert result.resumed_from == 2 and monitor.steps == []
    assert verify(ckpt / "last")["step"] == 2 and verify(ckpt / "previous")["step"] == 1
    assert not (ckpt / "last.new").exists()


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "one-at-a-time"])
def test_each_step_draws_the_configured_retain_and_update_counts(base, tmp_path, monkeypatch, batched):
    """The draws ``train`` takes are the sampler's (step, micro) draws for the run's seed, with
    ``retain_per_edit`` retain inputs and ``update_per_edit`` update inputs (not the sampler's
    defaults of one each), whether a step's edits go through the model together or not."""
    script_validation(monkeypatch, [0.0, 0.0])
    seen, passes = spy_draws(monkeypatch)
    run = make_run(base, tmp_path / "run", max_steps=2, val_every=2, accumulate=2, retain_per_edit=3,
                   update_per_edit=2, batched=batched)
    train(run, Monitor())
    assert passes == ([2, 2] if batched else [])
    sampler = CrossLingualSampler(base.data.edit_cases("train"), base.data.locality_pool("train"),
                                  run.roles("all"), n_retain=3, seed=3, n_update=2)
    assert seen == [sampler.draw(step, micro) for step in range(2) for micro in range(2)]
    assert all(len(s.retain) == 3 and len(s.updates) == 2 for s in seen)


def test_batched_and_one_at_a_time_training_end_in_the_same_editor(base, tmp_path, monkeypatch):
    """Three optimiser steps of three edits each, every edit with all its update languages: the
    editor trained with the step's edits in one pass equals the one trained edit by edit."""
    script_validation(monkeypatch, [0.0, 0.0])
    start = {k: v.clone() for k, v in make_run(base, tmp_path / "init").system.state_dict().items()}
    trained = {}
    for batched in (True, False):
        run = make_run(base, tmp_path / f"run-{batched}", max_steps=3, val_every=3, accumulate=3,
                       retain_per_edit=2, update_per_edit=0, batched=batched)
        train(run, Monitor())
        trained[batched] = run.system.state_dict()
    assert any(not torch.equal(trained[True][k], start[k]) for k in start)  # training moved the editor
    for k in start:
        torch.testing.assert_close(trained[True][k], trained[False][k], rtol=1e-4, atol=1e-6, msg=k)


class OtherProcess:
    """accelerate's PartialState as the second of two processes sees it."""

    is_main_process, num_processes, process_index = False, 2, 1

    def __init__(self, **options):  # run.process_state passes cpu=...
        self.waits = 0

    def wait_for_everyone(self):
        self.waits += 1


def test_a_process_other_than_the_main_one_draws_its_own_edits_and_writes_nothing(base, tmp_path, monkeypatch):
    """Under ``accelerate launch`` process 1 of 2 draws micro-steps accumulate..2·accumulate-1 of
    each step (process 0 draws the first ones), averages its gradients with the other process's
    and writes no checkpoint."""
    import accelerate

    script_validation(monkeypatch, [0.0, 0.5])
    monkeypatch.setattr(accelerate, "PartialState", OtherProcess)
    reduced = []

    def all_reduce(tensor, op):  # the other process holds the same gradients: the sum is twice each
        reduced.append(op)
        if op == torch.distributed.ReduceOp.SUM:
            tensor.mul_(2)

    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    seen, _ = spy_draws(monkeypatch)
    run = make_run(base, tmp_path / "run", max_steps=2, val_every=1, accumulate=2)
    result = train(run, Monitor())
    assert result.steps == 2 and result.best_step == 2
    sampler = CrossLingualSampler(base.data.edit_cases("train"), base.data.locality_pool("train"),
                                  run.roles("all"), n_retain=1, seed=3, n_update=int(run.config["train"]
                                                                                      ["update_per_edit"]))
    assert seen == [sampler.draw(step, 2 + micro) for step in range(2) for micro in range(2)]
    # which parameters have a gradient anywhere (MAX), then each gradient summed (SUM)
    assert reduced and set(reduced) == {torch.distributed.ReduceOp.MAX, torch.distributed.ReduceOp.SUM}
    ckpt = run.out / "checkpoints"
    assert not ckpt.exists() or not any(ckpt.iterdir())


def test_a_resume_with_another_seed_is_refused_and_changes_no_checkpoint(base, tmp_path, monkeypatch):
    """The sampler's draws depend on the seed: resuming with another one is one clear error, and
    the refused run writes nothing (init still holds the first run's untrained editor)."""
    script_validation(monkeypatch, [0.0, 0.5])
    train(make_run(base, tmp_path / "run", max_steps=2, val_every=1), Monitor())
    ckpt = tmp_path / "run" / "checkpoints"
    files = {p: p.read_bytes() for p in sorted(ckpt.rglob("*")) if p.is_file()}
    other = make_run(base, tmp_path / "run", seed=4, editor_seed=9, max_steps=4, val_every=1)
    with pytest.raises(UserError) as err:
        train(other, Monitor())
    assert str(err.value) == (
        f"'{ckpt / 'last'}' was drawn with sampler {{'seed': 3, 'draws_per_step': 1}}, this run draws "
        f"{{'seed': 4, 'draws_per_step': 1}}; resume with the same seed, accumulate and number of processes, "
        f"or use another --out")
    assert {p: p.read_bytes() for p in sorted(ckpt.rglob("*")) if p.is_file()} == files


def test_a_last_checkpoint_whose_state_lacks_the_runs_position_is_named_damaged(base, tmp_path, monkeypatch):
    script_validation(monkeypatch, [0.0, 0.5])
    train(make_run(base, tmp_path / "run", max_steps=2, val_every=1), Monitor())
    ckpt = tmp_path / "run" / "checkpoints"
    state = json.loads((ckpt / "last" / "state.json").read_text())
    del state["stale"]
    (ckpt / "last" / "state.json").write_text(json.dumps(state))
    with pytest.raises(UserError) as err:
        train(make_run(base, tmp_path / "run", max_steps=4, val_every=1), Monitor())
    assert str(err.value) == (
        f"checkpoint '{ckpt / 'last'}' is damaged (its state has no 'stale'); to resume from the previous "
        f"checkpoint, replace it with '{ckpt / 'previous'}' (rm -r {ckpt / 'last'} && mv {ckpt / 'previous'} "
        f"{ckpt / 'last'}), or start afresh with another --out")


class MainOfTwo(OtherProcess):
    is_main_process, num_processes, process_index = True, 2, 0


def test_the_main_process_of_two_draws_the_first_edits_and_records_both_processes_draws(base, tmp_path,
                                                                                       monkeypatch):
    import accelerate

    script_validation(monkeypatch, [0.0, 0.5])
    monkeypatch.setattr(accelerate, "PartialState", MainOfTwo)
    monkeypatch.setattr(torch.distributed, "all_reduce",
                        lambda tensor, op: tensor.mul_(2) if op == torch.distributed.ReduceOp.SUM else tensor)
    seen, _ = spy_draws(monkeypatch)
    run = make_run(base, tmp_path / "run", max_steps=2, val_every=1, accumulate=3)
    train(run, Monitor())
    sampler = CrossLingualSampler(base.data.edit_cases("train"), base.data.locality_pool("train"),
                                  run.roles("all"), n_retain=1, seed=3, n_update=int(run.config["train"]
                                                                                      ["update_per_edit"]))
    assert seen == [sampler.draw(step, micro) for step in range(2) for micro in range(3)]
    last = verify(run.out / "checkpoints" / "last")
    assert last["sampler"] == {"seed": 3, "draws_per_step": 6, "step": 2}
    assert isinstance(last["sampler"]["draws_per_step"], int)


def test_the_speed_reported_is_steps_per_second_of_training_alone(base, tmp_path, monkeypatch):
    """A clock that advances 0.25 s at every reading: each step takes 0.25 s, so 4 steps/s, the
    validation's time not counted; a clock that stands still gives a large finite speed."""
    class Speeds(Monitor):
        def on_step(self, step, terms, steps_per_s):
            self.steps.append((step, steps_per_s))

    script_validation(monkeypatch, [0.0, 0.5])
    readings = iter(i * 0.25 for i in range(1, 100))
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: next(readings)))
    monitor = Speeds()
    train(make_run(base, tmp_path / "run", max_steps=3, val_every=2), monitor)
    assert monitor.steps == [(1, 4.0), (2, 4.0), (3, 4.0)]
    script_validation(monkeypatch, [0.0])
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: 7.0))
    still = Speeds()
    train(make_run(base, tmp_path / "still", max_steps=1, val_every=1), still)
    assert still.steps == [(1, pytest.approx(1e9))]


def test_one_step_averages_the_gradients_of_its_draws(base, tmp_path, monkeypatch):
    """The gradient the optimiser step sees (just before clipping) is the mean over the step's
    ``accumulate`` draws of each draw's meta-loss gradient, computed here draw by draw."""
    script_validation(monkeypatch, [0.0])
    run = make_run(base, tmp_path / "run", max_steps=1, val_every=1, accumulate=3, clip=1e9)
    sampler = CrossLingualSampler(base.data.edit_cases("train"), base.data.locality_pool("train"),
                                  run.roles("all"), n_retain=1, seed=3,
                                  n_update=int(run.config["train"]["update_per_edit"]))
    params = [p for p in run.system.editor.parameters()]
    run.system.train()
    expected = [torch.zeros_like(p) for p in params]
    for micro in range(3):
        grads = torch.autograd.grad(training.meta_loss(run, sampler.draw(0, micro), run.config["train"])["loss"],
                                    params, allow_unused=True)
        for e, g in zip(expected, grads):
            if g is not None:
                e += g / 3
    seen = {}
    real_clip = torch.nn.utils.clip_grad_norm_

    def clip(ps, max_norm):
        seen.update({id(p): p.grad.clone() for p in ps if p.grad is not None})
        return real_clip(ps, max_norm)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    train(run, Monitor())
    assert any(e.abs().max() > 0 for e in expected)
    for p, e in zip(params, expected):
        torch.testing.assert_close(seen.get(id(p), torch.zeros_like(e)), e, rtol=1e-4, atol=1e-10)


def test_lr_factor_schedules():
    assert [training.lr_factor("constant", s, 4) for s in range(4)] == [1.0] * 4
    cosine = [training.lr_factor("cosine", s, 4) for s in range(5)]
    assert cosine == pytest.approx([1.0, 0.853553, 0.5, 0.146447, 0.0], abs=1e-6)
    with pytest.raises(UserError, match="train.schedule must be one of constant, cosine"):
        training.lr_factor("linear", 0, 4)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_every_parameter_group_steps_at_its_scheduled_rate(base, tmp_path, monkeypatch, schedule):
    """Each optimiser step uses every group's initial rate times the schedule's factor of that step
    (the editor's and the step sizes' groups alike), and a resumed run goes on where it stopped."""
    script_validation(monkeypatch, [0.0, 0.5, 0.5, 0.5])
    seen = []
    make = training.make_optimizer

    def recording(run):
        optimizer = make(run)
        optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append([g["lr"] for g in opt.param_groups]))
        return optimizer
    monkeypatch.setattr(training, "make_optimizer", recording)
    run = make_run(base, tmp_path / "run", max_steps=2, val_every=2, schedule=schedule)
    train(run, Monitor())
    run = make_run(base, tmp_path / "run", max_steps=4, val_every=2, schedule=schedule)
    train(run, Monitor())  # resumes at step 2 with max_steps 4: the factors of steps 2 and 3 of 4
    initial = [g["initial_lr"] for g in make(run).param_groups]
    assert len(initial) == 2 and initial[0] != initial[1]  # the editor's rate and the step sizes' rate
    expected = [training.lr_factor(schedule, s, m) for s, m in ((0, 2), (1, 2), (2, 4), (3, 4))]
    assert seen == [[rate * f for rate in initial] for f in expected]
