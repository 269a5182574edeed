"""The core edit path on a tiny random model: editable weights, factors, functional edits.

The sampler's invariants are in test_sampler_invariants.py; MEND, masks and the meta-loss on this
model in test_method_invariants.py."""
import torch

from lime_toolkit.data import MASKED_LM, TARGET_SLOT, Example
from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import EditorSetup, FactorEditor
from lime_toolkit.encoding import encode_examples
from lime_toolkit.factors import capture_factors, edit_loss
from lime_toolkit.architectures import editable_parameters
from lime_toolkit.testing import ToyDataset, tiny_masked_lm


class PlainGradient(FactorEditor):
    """Identity transform with a fixed step: the edit is one gradient-descent step."""

    def transform(self, name, x, delta, ctx):
        return x, delta

    def step_size(self, name):
        return 0.5


def setup():
    model, tok = tiny_masked_lm()
    names = editable_parameters(model, last_n_layers=2)
    data = ToyDataset()
    case = data.edit_cases("train")[0]
    return model, tok, names, data, case


def test_default_editable_parameters_are_last_layers_mlp():
    model, _, names, _, _ = setup()
    assert names == [
        "bert.encoder.layer.0.intermediate.dense.weight", "bert.encoder.layer.0.output.dense.weight",
        "bert.encoder.layer.1.intermediate.dense.weight", "bert.encoder.layer.1.output.dense.weight",
    ]
    assert editable_parameters(model, patterns=["*layer.1.output.dense.weight"]) == names[3:]


def test_factors_reproduce_autograd_weight_gradient():
    model, tok, names, _, case = setup()
    batch = encode_examples(tok, [case.inputs["en"], case.inputs["de"]], MASKED_LM)
    weights = dict(model.named_parameters())
    params = {n: weights[n].detach().clone().requires_grad_() for n in names}
    expected = torch.autograd.grad(edit_loss(model, batch, params), [params[n] for n in names])
    _, factors = capture_factors(model, batch, {n: weights[n] for n in names})
    for name, grad in zip(names, expected):
        x, delta = factors[name]
        assert x.shape[1] == grad.shape[1] and delta.shape[1] == grad.shape[0]
        torch.testing.assert_close(delta.T @ x, grad, atol=1e-6, rtol=1e-5)


def test_padding_tokens_are_dropped_from_factors():
    model, tok, names, _, case = setup()
    short = Example("x", "en", f"anna in {TARGET_SLOT}", "rome")  # 2 tokens shorter than the toy facts
    batch = encode_examples(tok, [short, case.inputs["en"]], MASKED_LM)
    padding = batch.inputs["attention_mask"] == 0
    assert int(padding.sum()) == 2  # the batch really is padded
    weights = dict(model.named_parameters())
    _, factors = capture_factors(model, batch, {n: weights[n] for n in names})
    # The padding positions' hidden states are not zero (the forward hooks see them), but nothing
    # flows back from them: every real token of layer 0 reaches the loss, no padding token does.
    x_all = model.bert.embeddings(input_ids=batch.inputs["input_ids"])  # what enters layer 0
    assert (x_all[padding] != 0).any(dim=-1).all()
    x, delta = factors["bert.encoder.layer.0.intermediate.dense.weight"]
    assert x.shape[0] == delta.shape[0] == int((~padding).sum())


def test_edit_is_functional_and_a_gradient_step():
    model, tok, names, data, case = setup()
    before = {n: p.clone() for n, p in model.named_parameters()}
    system = EditingSystem(model, names, PlainGradient(EditorSetup(model, {}, data.languages)), None)
    batch = encode_examples(tok, [case.inputs["en"]], MASKED_LM)
    edited = system.edit(batch, "en")
    for n, p in model.named_parameters():  # the base model is untouched
        assert torch.equal(p, before[n])
    weights = dict(model.named_parameters())
    params = {n: weights[n].detach().clone().requires_grad_() for n in names}
    grads = torch.autograd.grad(edit_loss(model, batch, params), [params[n] for n in names])
    for n, g in zip(names, grads):
        torch.testing.assert_close(edited[n], weights[n] - 0.5 * g, atol=1e-6, rtol=1e-5)
    assert edit_loss(model, batch, edited) < edit_loss(model, batch)
