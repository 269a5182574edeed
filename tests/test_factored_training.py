"""Meta-training's two shortcuts give the losses and gradients of the plain computation, on the
tiny random masked LM: edits in factored form (``lime_toolkit.factored_updates.edited``) against
the dense W' = W − α ΔW, and the edited pass over the retain inputs starting at the first edited
layer from the unedited pass's hidden states (``SharedPrefix``) against the whole model.

The tiny model's weights are far below :data:`FACTORED_MIN_ENTRIES`, so each test sets the
threshold to force one form, then the other, and compares every loss term and the gradient of every
trainable parameter (editor and masks; ET's own base weights among them).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lime_toolkit import factored_updates, training
from lime_toolkit.architectures import editable_parameters
from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import EditorSetup
from lime_toolkit.factored_updates import trains_factored
from lime_toolkit.mask_api import MaskSetup
from lime_toolkit.run import Run
from lime_toolkit.sampler import CrossLingualSampler, LanguageRoles
from lime_toolkit.testing import ToyDataset, tiny_masked_lm
from lime_toolkit.training import meta_loss
from lime_toolkit_plugins.et.editor import EditableTrainingEditor
from lime_toolkit_plugins.ke.editor import KnowledgeEditor
from lime_toolkit_plugins.masks.strategies import L0Masks
from lime_toolkit_plugins.mend.editor import MendEditor

WEIGHTS = {"rel_weight": 0.1, "loc_weight": 1.0, "mask_weight": 1.0}
DENSE, FACTORED = 1 << 40, 0  # thresholds that force each form


def make_world(layers: int):
    torch.manual_seed(0)
    model, tok = tiny_masked_lm(layers=layers)
    names = editable_parameters(model, last_n_layers=2)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in names}
    data = ToyDataset()
    roles = LanguageRoles.parse("all", data.languages)
    sampler = CrossLingualSampler(data.edit_cases("train"), data.locality_pool("train"), roles, n_retain=3, seed=0)
    return model, tok, names, shapes, data, sampler


@pytest.fixture(scope="module")
def world():
    return make_world(2)


@pytest.fixture(scope="module")
def deep_world():
    """Four layers, the last two edited: two layers before the first edited one."""
    return make_world(4)


def mend(setup: EditorSetup) -> MendEditor:
    editor = MendEditor(EditorSetup(setup.model, setup.shapes, setup.languages, {"rank": 8, "step_size_init": 100.0}))
    with torch.no_grad():  # off the identity start: the transform really changes the factors
        for network in editor.networks.values():
            for layer in network.layers:
                layer.u.normal_(0, 0.05)
    return editor


def et(setup: EditorSetup) -> EditableTrainingEditor:
    return EditableTrainingEditor(EditorSetup(setup.model, setup.shapes, setup.languages, {"step_size_init": 100.0}))


def losses_and_grads(world, make_editor, with_masks: bool, threshold: int, monkeypatch):
    model, tok, names, shapes, data, sampler = world
    monkeypatch.setattr(factored_updates, "FACTORED_MIN_ENTRIES", threshold)
    torch.manual_seed(1)
    editor = make_editor(EditorSetup(model, dict(shapes), data.languages, {}))
    masks = None
    if with_masks:
        torch.manual_seed(2)
        masks = L0Masks(MaskSetup(dict(shapes), data.languages, {"log_alpha_init_std": 2.0}))
    system = EditingSystem(model, names, editor, masks).train()
    run = Run({"train": {"lr": None, "mask_lr": None, **WEIGHTS}}, data, model, tok, system, Path("unused"),
              torch.device("cpu"))
    terms, grads = {}, {}
    for micro in range(3):  # edits in several languages, with different numbers of tokens
        torch.manual_seed(10 + micro)  # the same gate noise in both forms
        out = meta_loss(run, sampler.draw(0, micro), WEIGHTS)
        out["loss"].backward()
        terms.update({f"{k}{micro}": float(v.detach()) for k, v in out.items()})
    grads = {n: p.grad.clone() for n, p in system.named_parameters() if p.requires_grad and p.grad is not None}
    return trains_factored(system), terms, grads


@pytest.mark.parametrize("make_editor, with_masks", [(mend, False), (mend, True), (et, True)],
                         ids=["mend", "mend+l0", "et+l0"])
def test_factored_meta_loss_and_gradients_equal_the_dense_ones(world, make_editor, with_masks, monkeypatch):
    dense_used, dense_terms, dense_grads = losses_and_grads(world, make_editor, with_masks, DENSE, monkeypatch)
    factored_used, terms, grads = losses_and_grads(world, make_editor, with_masks, FACTORED, monkeypatch)
    assert (dense_used, factored_used) == (False, True)
    assert min(dense_terms[f"loc{m}"] for m in range(3)) > 1e-3  # the edits change the retain inputs
    assert terms == pytest.approx(dense_terms, rel=1e-5, abs=1e-7)
    assert grads.keys() == dense_grads.keys() and len(grads) > 0
    assert any(float(g.abs().max()) > 0 for g in grads.values())
    for name in grads:
        torch.testing.assert_close(grads[name], dense_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_editors_whose_update_is_not_low_rank_stay_dense(world, monkeypatch):
    model, tok, names, shapes, data, _ = world
    monkeypatch.setattr(factored_updates, "FACTORED_MIN_ENTRIES", FACTORED)
    torch.manual_seed(1)
    ke = EditingSystem(model, names, KnowledgeEditor(EditorSetup(model, dict(shapes), data.languages, {})), None)
    assert not trains_factored(ke)
    mend_system = EditingSystem(model, names, mend(EditorSetup(model, dict(shapes), data.languages, {})), None)
    assert trains_factored(mend_system)
    monkeypatch.setattr(factored_updates, "FACTORED_MIN_ENTRIES", DENSE)
    assert not trains_factored(mend_system)


@pytest.mark.parametrize("threshold", [DENSE, FACTORED], ids=["dense", "factored"])
def test_retain_pass_from_the_first_edited_layer_equals_the_whole_pass(deep_world, threshold, monkeypatch):
    resumed = []
    real_resumed = training.SharedPrefix.resumed

    def spy(self):
        resumed.append(self.hidden is not None and self.stack.first == 2)
        return real_resumed(self)
    monkeypatch.setattr(training.SharedPrefix, "resumed", spy)
    _, shared_terms, shared_grads = losses_and_grads(deep_world, mend, True, threshold, monkeypatch)
    assert resumed == [True] * 3  # every micro-step started its retain pass at layer 2
    monkeypatch.setattr(training, "layer_stack", lambda model, names: None)
    _, terms, grads = losses_and_grads(deep_world, mend, True, threshold, monkeypatch)
    assert min(terms[f"loc{m}"] for m in range(3)) > 1e-3
    assert shared_terms == terms  # the layers before the first edited one compute the same bits twice
    assert shared_grads.keys() == grads.keys()
    assert all(torch.equal(shared_grads[name], grads[name]) for name in grads)
