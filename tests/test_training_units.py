"""The small pieces of ``lime_toolkit.training`` that the end-to-end invariants do not pin down: the
optimiser's learning rates and their errors, the gradient averaging across processes, the
validation settings and which checkpoint ``load_best`` picks. No model: stub editors and masks
(killing the mutation-testing survivors of ``training.py``, docs/testing.md)."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lime_toolkit.checkpoint import save_checkpoint, verify
from lime_toolkit.errors import UserError
from lime_toolkit.evaluation import EvalSettings
from lime_toolkit.run import Run
from lime_toolkit.testing import ToyDataset
from lime_toolkit.training import average_gradients, load_best, make_optimizer, validation_settings


class StubEditor(nn.Module):
    default_lr = 0.25

    def __init__(self, option_lr=None, groups=None):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3))
        self.setup = SimpleNamespace(option=lambda key, default: {"lr": option_lr}.get(key, default))
        self._groups = groups

    def param_groups(self):
        return self._groups or [{"params": [self.a], "name": "a"}, {"params": [self.b], "name": "b", "lr": 0.5}]


class StubMasks(nn.Module):
    default_lr = 0.125

    def __init__(self, trainable=True):
        super().__init__()
        self.g = nn.Parameter(torch.zeros(4), requires_grad=trainable)
        self.frozen = nn.Parameter(torch.zeros(1), requires_grad=False)


def run_of(editor, masks=None, lr=None, mask_lr=None):
    return SimpleNamespace(config={"train": {"lr": lr, "mask_lr": mask_lr}},
                           system=SimpleNamespace(editor=editor, masks=masks))


def rates(optimizer):
    return [(g.get("name"), g["lr"], [tuple(p.shape) for p in g["params"]]) for g in optimizer.param_groups]


def test_learning_rates_come_from_train_then_editor_option_then_default():
    editor = StubEditor()
    # a group's own lr wins; the others take train.lr, else the editor's lr option, else its default
    assert rates(make_optimizer(run_of(editor, lr=0.01))) == [("a", 0.01, [(2,)]), ("b", 0.5, [(3,)])]
    assert rates(make_optimizer(run_of(StubEditor(option_lr=0.02)))) == [("a", 0.02, [(2,)]), ("b", 0.5, [(3,)])]
    assert rates(make_optimizer(run_of(editor))) == [("a", 0.25, [(2,)]), ("b", 0.5, [(3,)])]
    assert isinstance(make_optimizer(run_of(editor)), torch.optim.Adam)


def test_masks_get_a_group_of_their_own_with_only_trainable_parameters():
    editor = StubEditor()
    opt = make_optimizer(run_of(editor, StubMasks(), lr=0.01, mask_lr=0.03))
    assert rates(opt)[-1] == ("masks", 0.03, [(4,)])
    assert rates(make_optimizer(run_of(editor, StubMasks(), lr=0.01)))[-1] == ("masks", 0.125, [(4,)])
    # masks with nothing to train (or none at all) add no group
    assert len(make_optimizer(run_of(editor, StubMasks(trainable=False))).param_groups) == 2
    assert len(make_optimizer(run_of(editor, None)).param_groups) == 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr="abc"), "the editor's lr must be a number (got 'abc')"),
    (dict(lr=[1]), "the editor's lr must be a number (got [1])"),
    (dict(lr=-0.5), "the editor's lr must be positive (got -0.5)"),
    (dict(lr=float("nan")), "the editor's lr must be positive (got nan)"),
    (dict(lr=0.1, mask_lr=-2), "train.mask_lr must be positive (got -2.0)"),
])
def test_bad_rates_are_one_clear_error(kwargs, message):
    with pytest.raises(UserError) as err:
        make_optimizer(run_of(StubEditor(), StubMasks(), **kwargs))
    assert str(err.value) == message


def test_a_groups_own_bad_rate_names_the_group():
    editor = StubEditor(groups=[{"params": [nn.Parameter(torch.zeros(1))], "name": "net", "lr": 0}])
    with pytest.raises(UserError) as err:
        make_optimizer(run_of(editor, lr=0.1))
    assert str(err.value) == "the learning rate of parameter group 'net' must be positive (got 0.0)"
    # a rate of exactly 1 is fine (only > 0 is asked)
    editor = StubEditor(groups=[{"params": [nn.Parameter(torch.zeros(1))], "name": "net", "lr": 1}])
    assert rates(make_optimizer(run_of(editor, lr=0.1)))[0][1] == 1.0


def test_gradients_are_summed_over_processes_and_divided_by_their_number(monkeypatch):
    calls = []

    def all_reduce(tensor, op):
        calls.append(op)
        tensor.mul_(3)  # three processes holding the same gradient: the sum is three times it

    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    p, q, none = (nn.Parameter(torch.zeros(2)) for _ in range(3))
    p.grad, q.grad = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 4.0])
    average_gradients([p, none, q], 1)  # one process: nothing to do
    assert calls == [] and p.grad.tolist() == [1.0, -2.0]
    average_gradients([p, none, q], 3)
    # which parameters have a gradient on any process (MAX), then one SUM per such parameter
    assert calls == [torch.distributed.ReduceOp.MAX] + [torch.distributed.ReduceOp.SUM] * 2 and none.grad is None
    assert p.grad.tolist() == [1.0, -2.0] and q.grad.tolist() == [0.5, 4.0]


def test_a_gradient_only_another_process_has_counts_as_zero_here(monkeypatch):
    """The masks of a language only one process drew: every process reduces that gradient (zeros
    where it has none), so the collective calls pair up and the average is the other's / N."""
    def all_reduce(tensor, op):
        if op == torch.distributed.ReduceOp.MAX:
            tensor.fill_(1.0)  # another process has a gradient for every parameter
        else:
            tensor.add_(torch.tensor([2.0, 2.0]))  # the other process's gradient

    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    mine, theirs = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    mine.grad = torch.tensor([4.0, 0.0])
    average_gradients([mine, theirs], 2)
    assert mine.grad.tolist() == [3.0, 1.0] and theirs.grad.tolist() == [1.0, 1.0]


def test_validation_settings():
    config = {"train": {"langs": "de,en", "val_edits": "7"}, "seed": "11"}
    run = Run(config, ToyDataset(), None, None, None, Path("unused"), torch.device("cpu"))
    settings = validation_settings(run)
    assert settings == EvalSettings(["de", "en"], ["de", "en"], n_update=0, n_retain=4, max_edits=7, seed=11,
                                    intervals=False)
    assert isinstance(settings.max_edits, int) and isinstance(settings.seed, int)


def module(value: float) -> nn.Module:
    m = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(value)
    return m


def test_load_best_prefers_best_then_last_then_init(tmp_path):
    ckpt = tmp_path / "checkpoints"
    target = module(0.0)
    run = SimpleNamespace(out=tmp_path, system=target)
    assert load_best(run) == {}  # nothing saved yet
    save_checkpoint(ckpt / "init", module(1.0), {"step": 0})
    assert load_best(run)["step"] == 0 and target.weight.item() == 1.0
    save_checkpoint(ckpt / "last", module(2.0), {"step": 4})
    assert load_best(run)["step"] == 4 and target.weight.item() == 2.0
    save_checkpoint(ckpt / "best", module(3.0), {"step": 2})
    assert load_best(run)["step"] == 2 and target.weight.item() == 3.0


def test_load_best_finishes_an_interrupted_save_of_last_and_keeps_the_previous(tmp_path):
    ckpt = tmp_path / "checkpoints"
    save_checkpoint(ckpt / "last", module(1.0), {"step": 1})
    save_checkpoint(tmp_path / "built", module(2.0), {"step": 2})
    os.rename(tmp_path / "built", ckpt / "last.new")  # killed before the swap
    target = module(0.0)
    assert load_best(SimpleNamespace(out=tmp_path, system=target))["step"] == 2 and target.weight.item() == 2.0
    assert verify(ckpt / "previous")["step"] == 1  # the replaced last is kept as the way out


def test_a_groups_own_rate_written_as_text_is_used_as_a_number():
    """A plugin may give a group's lr as it read it from the config (text): it is checked and the
    optimiser gets the number."""
    editor = StubEditor(groups=[{"params": [nn.Parameter(torch.zeros(1))], "name": "net", "lr": "0.5"}])
    assert rates(make_optimizer(run_of(editor, lr=0.1))) == [("net", 0.5, [(1,)])]
    assert isinstance(make_optimizer(run_of(editor, lr=0.1)).param_groups[0]["lr"], float)
