"""The core edit path on a tiny random model: factors, functional edits, sampler, metrics."""
import torch

from lime_toolkit.data import MASKED_LM
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
    short = case.inputs["en"]
    batch = encode_examples(tok, [short], MASKED_LM)
    _, factors = capture_factors(model, batch, {n: p for n, p in model.named_parameters() if n in names})
    n_tokens = int(batch.inputs["attention_mask"].sum())
    for x, delta in factors.values():
        assert 0 < x.shape[0] <= n_tokens and x.shape[0] == delta.shape[0]


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
