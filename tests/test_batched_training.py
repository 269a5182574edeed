"""One optimiser step's edits meta-trained in one pass (``lime_toolkit.batched_training``) give the
terms and gradients of the one-edit-at-a-time loop (``training.meta_loss``), on the tiny random
masked LM, with and without LiME masks (whose gate noise each edit draws from its own micro-step).
tests/test_training_loop.py trains with both and compares the editors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lime_toolkit.architectures import editable_parameters
from lime_toolkit.batched_training import batched_meta_loss, trains_batched
from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import EditorSetup
from lime_toolkit.mask_api import MaskSetup
from lime_toolkit.run import Run
from lime_toolkit.sampler import CrossLingualSampler, LanguageRoles, Sample
from lime_toolkit.testing import ToyDataset, tiny_masked_lm
from lime_toolkit.training import meta_loss, micro_step_rng
from lime_toolkit_plugins.et.editor import EditableTrainingEditor
from lime_toolkit_plugins.ke.editor import KnowledgeEditor
from lime_toolkit_plugins.masks.strategies import L0Masks
from lime_toolkit_plugins.mend.editor import MendEditor

WEIGHTS = {"rel_weight": 0.1, "loc_weight": 1.0, "mask_weight": 1.0}
EDITS = 5


@pytest.fixture(scope="module")
def world():
    torch.manual_seed(0)
    model, tok = tiny_masked_lm(layers=3)  # the last two layers edited: the retain pass resumes at layer 1
    names = editable_parameters(model, last_n_layers=2)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in names}
    data = ToyDataset()
    roles = LanguageRoles.parse("all", data.languages)
    sampler = CrossLingualSampler(data.edit_cases("train"), data.locality_pool("train"), roles, n_retain=3,
                                  seed=0, n_update=0)
    return model, tok, names, shapes, data, sampler


def make_run(world, with_masks: bool, loss_power: float = 0.0) -> Run:
    model, tok, names, shapes, data, _ = world
    torch.manual_seed(1)
    editor = MendEditor(EditorSetup(model, dict(shapes), data.languages, {"rank": 8, "step_size_init": 100.0}))
    with torch.no_grad():  # off the identity start: the transform really changes the factors
        for network in editor.networks.values():
            for layer in network.layers:
                layer.u.normal_(0, 0.05)
    masks = None
    if with_masks:
        torch.manual_seed(2)
        masks = L0Masks(MaskSetup(dict(shapes), data.languages, {"log_alpha_init_std": 2.0}))
    system = EditingSystem(model, names, editor, masks).train()
    system.loss_power = loss_power
    return Run({"train": {"lr": None, "mask_lr": None, **WEIGHTS}}, data, model, tok, system, Path("unused"),
               torch.device("cpu"))


def step_samples(sampler) -> list[Sample]:
    """A step's draws, with different numbers of update and retain inputs per edit (so that each
    edit's own mean differs from the mean over the step's positions)."""
    samples = [sampler.draw(3, i) for i in range(EDITS)]
    return [Sample(s.case, s.edit, s.updates[:1 + i % 2], s.retain[:1 + i % 3]) for i, s in enumerate(samples)]


def grads_of(run: Run) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in run.system.named_parameters() if p.requires_grad and p.grad is not None}


@pytest.mark.parametrize("with_masks, loss_power", [(False, 0.0), (True, 0.0), (True, 1.0)],
                         ids=["mend", "mend+l0", "mend+l0+loss_power"])
def test_batched_terms_and_gradients_equal_the_loop(world, with_masks, loss_power):
    samples = step_samples(world[-1])
    assert len({s.edit.lang for s in samples}) > 1  # edits in several languages (several masks)
    assert len({len(s.updates) for s in samples}) > 1 and len({len(s.retain) for s in samples}) > 1

    loop_run, loop_terms = make_run(world, with_masks, loss_power), {}
    for i, sample in enumerate(samples):
        with micro_step_rng(0, 3, i, torch.device("cpu")):
            terms = meta_loss(loop_run, sample, WEIGHTS)
            (terms["loss"] / EDITS).backward()
        for k, v in terms.items():
            loop_terms[k] = loop_terms.get(k, 0.0) + float(v.detach()) / EDITS
    loop_grads = grads_of(loop_run)

    run = make_run(world, with_masks, loss_power)
    assert trains_batched(run.system)
    terms = batched_meta_loss(run, samples, WEIGHTS, lambda e: micro_step_rng(0, 3, e, torch.device("cpu")))
    terms["loss"].backward()
    grads = grads_of(run)

    assert loop_terms["loc"] > 1e-3 and loop_terms["rel"] > 1e-3  # the edits do something
    assert {k: float(v.detach()) for k, v in terms.items()} == pytest.approx(loop_terms, rel=1e-5, abs=1e-7)
    assert grads.keys() == loop_grads.keys() and len(grads) > 0
    if with_masks:
        assert any(n.startswith("masks.") for n in grads)
    for name in grads:
        torch.testing.assert_close(grads[name], loop_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_mask_noise_comes_from_each_edits_own_micro_step(world):
    """Had every edit drawn from one shared stream, the masked terms would differ from the loop's."""
    samples = step_samples(world[-1])
    run = make_run(world, True)
    own = batched_meta_loss(run, samples, WEIGHTS, lambda e: micro_step_rng(0, 3, e, torch.device("cpu")))
    shared = batched_meta_loss(run, samples, WEIGHTS, lambda e: micro_step_rng(0, 3, 0, torch.device("cpu")))
    assert float(own["rel"].detach()) != pytest.approx(float(shared["rel"].detach()), rel=1e-6)


def test_second_order_and_non_low_rank_editors_train_one_edit_at_a_time(world):
    model, tok, names, shapes, data, _ = world
    setup = EditorSetup(model, dict(shapes), data.languages, {})
    assert not trains_batched(EditingSystem(model, names, EditableTrainingEditor(setup), None))
    assert not trains_batched(EditingSystem(model, names, KnowledgeEditor(setup), None))
    assert trains_batched(EditingSystem(model, names, MendEditor(setup), None))
