"""The core edit path on a tiny random model: editable weights, factors, functional edits.

The sampler's invariants are in test_sampler_invariants.py; MEND, masks and the meta-loss on this
model in test_method_invariants.py."""
import torch

from lime_toolkit.architectures import editable_parameters
from lime_toolkit.data import MASKED_LM, TARGET_SLOT, Example
from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import EditorSetup, FactorEditor
from lime_toolkit.encoding import encode_examples
from lime_toolkit.factors import capture_factors, edit_loss
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


# -- details of the edit path (mutation-testing survivors, docs/testing.md) ------------------------------

def test_capture_leaves_no_hooks_and_detaches_unless_asked():
    model, tok, names, _, case = setup()
    batch = encode_examples(tok, [case.inputs["en"]], MASKED_LM)
    weights = dict(model.named_parameters())
    params = {n: weights[n] for n in names}
    loss, factors = capture_factors(model, batch, params)
    assert all(not m._forward_hooks for m in model.modules())  # every hook removed again
    torch.testing.assert_close(loss, edit_loss(model, batch).detach())
    assert loss.grad_fn is None and not loss.requires_grad
    assert all(not x.requires_grad and not d.requires_grad for x, d in factors.values())
    loss2, factors2 = capture_factors(model, batch, params, create_graph=True)
    assert loss2.requires_grad and all(d.requires_grad for _, d in factors2.values())
    for n in names:  # the same values either way
        torch.testing.assert_close(factors2[n][1].detach(), factors[n][1])
    # frozen (requires_grad False) params still give factors: the capture makes its own leaves
    frozen = {n: w.detach() for n, w in params.items()}
    _, factors3 = capture_factors(model, batch, frozen)
    for n in names:
        torch.testing.assert_close(factors3[n][1], factors[n][1])


def test_edit_loss_ignores_positions_without_a_target():
    model, tok, _, data, case = setup()
    other = data.edit_cases("train")[1].inputs["en"]
    both = encode_examples(tok, [case.inputs["en"], other], MASKED_LM)
    one = encode_examples(tok, [case.inputs["en"]], MASKED_LM)
    both.labels[1] = -100
    torch.testing.assert_close(edit_loss(model, both), edit_loss(model, one))


class Recorder(PlainGradient):
    """Records what it sees; optionally second order; its base weights are the model's doubled."""

    def __init__(self, setup, second_order=False, doubled=False):
        super().__init__(setup)
        self.second_order, self.doubled, self.seen = second_order, doubled, []

    def base_weight(self, name, weight):
        return weight * 2 if self.doubled and name.endswith("output.dense.weight") else weight

    def transform(self, name, x, delta, ctx):
        self.seen.append((name, ctx.lang, delta.requires_grad))
        return x, delta


def test_second_order_factors_only_with_grad_enabled_and_base_weights_from_the_editor():
    model, tok, names, data, case = setup()
    batch = encode_examples(tok, [case.inputs["en"]], MASKED_LM)
    for second, grad, graph in ((False, True, False), (True, True, True), (True, False, False)):
        editor = Recorder(EditorSetup(model, {}, data.languages), second_order=second)
        with torch.set_grad_enabled(grad):
            EditingSystem(model, names, editor, None).edit(batch, "de")
        assert [s[2] for s in editor.seen] == [graph] * len(names), (second, grad)
        assert [s[:2] for s in editor.seen] == [(n, "de") for n in names]
    editor = Recorder(EditorSetup(model, {}, data.languages), doubled=True)
    system = EditingSystem(model, names, editor, None)
    weights = dict(model.named_parameters())
    factor = {n: 2 if n.endswith("output.dense.weight") else 1 for n in names}
    assert all(torch.equal(system.base_params()[n], weights[n] * factor[n]) for n in names)
    params = {n: (weights[n] * factor[n]).detach().requires_grad_() for n in names}
    grads = torch.autograd.grad(edit_loss(model, batch, params), [params[n] for n in names])
    edited = system.edit(batch, "en")
    for n, g in zip(names, grads):  # W' = W_base − α∇ at the editor's base weights
        torch.testing.assert_close(edited[n], weights[n] * factor[n] - 0.5 * g, atol=1e-6, rtol=1e-5)


def test_masks_of_the_edit_language_transform_the_factors():
    from lime_toolkit.mask_api import MaskSetup, MaskStrategy

    class Halve(MaskStrategy):
        def apply(self, name, lang, x, delta):
            calls.append((name, lang))
            return x, delta * 0.5

    calls = []
    model, tok, names, data, case = setup()
    batch = encode_examples(tok, [case.inputs["en"]], MASKED_LM)
    editor = PlainGradient(EditorSetup(model, {}, data.languages))
    plain = EditingSystem(model, names, editor, None).edit(batch, "en")
    halved = EditingSystem(model, names, editor, Halve(MaskSetup({}, data.languages))).edit(batch, "de")
    assert calls == [(n, "de") for n in names]
    weights = dict(model.named_parameters())
    for n in names:
        torch.testing.assert_close(weights[n] - halved[n], (weights[n] - plain[n]) / 2, atol=1e-7, rtol=1e-5)


def test_solved_checks_every_target_position_and_only_those():
    from lime_toolkit.models import position_logits

    model, tok, names, data, case = setup()
    cases = data.edit_cases("train")
    batch = encode_examples(tok, [cases[0].inputs["en"], cases[1].inputs["en"]], MASKED_LM)
    system = EditingSystem(model, names, PlainGradient(EditorSetup(model, {}, data.languages)), None)
    base = system.base_params()
    with torch.no_grad():
        pred = position_logits(model, batch).argmax(-1)
    ctx = system.context(batch, "en")
    assert ctx.lang == "en" and ctx.batch is batch
    torch.testing.assert_close(ctx.loss(base), edit_loss(model, batch, base))
    batch.labels[:] = pred
    assert ctx.solved(base) is True
    batch.labels[0] = (pred[0] + 1) % 5
    assert ctx.solved(base) is False
    batch.labels[0] = -100  # no target at that position: not checked
    assert ctx.solved(base) is True
    # solved judges the parameters it is given, not the base model
    gen = torch.Generator().manual_seed(0)
    other = {n: 3 * torch.randn(w.shape, generator=gen) for n, w in base.items()}
    with torch.no_grad():
        other_pred = position_logits(model, batch, other).argmax(-1)
    assert not torch.equal(other_pred, pred)
    batch.labels[:] = other_pred
    assert ctx.solved(other) is True and ctx.solved(base) is False
    torch.testing.assert_close(ctx.loss(other), edit_loss(model, batch, other))  # so does the loss
    assert not torch.allclose(ctx.loss(other), ctx.loss(base))


def test_editors_that_are_neither_kind_or_refuse_masks_are_clear_errors():
    import pytest

    from lime_toolkit.editor_api import Editor, FullEditor
    from lime_toolkit.errors import UserError
    from lime_toolkit.mask_api import MaskSetup, MaskStrategy

    model, tok, names, data, case = setup()

    class Odd(Editor):
        pass

    class Whole(FullEditor):
        pass

    batch = encode_examples(tok, [case.inputs["en"]], MASKED_LM)
    with pytest.raises(UserError) as err:
        EditingSystem(model, names, Odd(EditorSetup(model, {}, data.languages)), None).edit(batch, "en")
    assert str(err.value) == "editor Odd is neither a FactorEditor nor a FullEditor"
    with pytest.raises(UserError) as err:
        EditingSystem(model, names, Whole(EditorSetup(model, {}, data.languages)),
                      MaskStrategy(MaskSetup({}, data.languages)))
    assert str(err.value) == "editor 'Whole' edits the model itself and cannot use masks; use --masks none"
    system = EditingSystem(model, names, Whole(EditorSetup(model, {}, data.languages)), None)
    assert system.param_names == names and system.param_names is not names and system.model is model
    assert not any(k.startswith("_model") or k.startswith("bert") for k in system.state_dict())


def test_factors_are_differentiable_in_trainable_weights_and_unused_weights_give_none():
    """With ``create_graph`` the factors depend on edited weights that require grad (an editor's
    own trainable copy of the base weights): the edit stays differentiable in them. A hooked
    weight whose output the loss never uses gives empty factors, not an error."""
    from types import SimpleNamespace

    from torch import nn

    _, tok, _, _, case = setup()

    class Toy(nn.Module):
        base_model_prefix = "toy"

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.config = SimpleNamespace(model_type="toy")
            self.emb = nn.Embedding(len(tok), 6)
            with torch.no_grad():
                self.emb.weight[tok.mask_token_id] = 0.0  # x = 0 at the prediction position of "mid"
            self.mid = nn.Linear(6, 6)
            self.used = nn.Linear(6, len(tok), bias=False)
            self.unused = nn.Linear(6, 3, bias=False)

        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            h = self.emb(input_ids)
            self.unused(h)  # computed, never reaches the logits
            return SimpleNamespace(logits=self.used(torch.tanh(self.mid(h))))

    model = Toy()
    batch = encode_examples(tok, [case.inputs["en"]], MASKED_LM)
    used = model.used.weight.detach().clone().requires_grad_()
    params = {"mid.weight": model.mid.weight.detach(), "used.weight": used, "unused.weight": model.unused.weight.detach()}
    loss, factors = capture_factors(model, batch, params, create_graph=True)
    x, d = factors["unused.weight"]
    assert x.shape == (0, 6) and d.shape == (0, 3)
    x_used, d_used = factors["used.weight"]
    assert x_used.shape[0] == 1  # only the prediction position has a gradient
    # "mid" sees x = 0 exactly where its δ is non-zero (the [MASK]): that token is dropped, nothing kept
    x_mid, d_mid = factors["mid.weight"]
    assert x_mid.shape == (0, 6) and d_mid.shape == (0, 6)
    # δ of the used layer (softmax − one-hot) depends on the trainable used weight, and so does the loss
    (g,) = torch.autograd.grad((d_used.T @ x_used).sum(), [used], retain_graph=True)
    assert g.abs().sum() > 0
    (g,) = torch.autograd.grad(loss, [used])
    assert g.abs().sum() > 0
