"""MEND editor and mask strategies on tiny random shapes (no model needed)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lime_toolkit.editor_api import EditorSetup
from lime_toolkit.errors import UserError
from lime_toolkit.mask_api import MaskSetup
from lime_toolkit.registry import Component
from lime_toolkit_plugins.masks import register_mask_strategies
from lime_toolkit_plugins.masks.strategies import L0Masks, NoMask
from lime_toolkit_plugins.mend import register_editors
from lime_toolkit_plugins.mend.editor import MendEditor

SHAPES = {
    "enc.0.up.weight": (12, 5),
    "enc.0.down.weight": (5, 12),
    "enc.1.up.weight": (12, 5),
}
LANGS = ["en", "de", "zh"]


def mend(**options) -> MendEditor:
    torch.manual_seed(0)
    return MendEditor(EditorSetup(nn.Identity(), dict(SHAPES), list(LANGS), {"rank": 4, **options}))


def l0(**options) -> L0Masks:
    torch.manual_seed(0)
    return L0Masks(MaskSetup(dict(SHAPES), list(LANGS), options))


def factors(name: str, tokens: int = 7):
    out_f, in_f = SHAPES[name]
    return torch.randn(tokens, in_f), torch.randn(tokens, out_f) * 1e-3


def collect(hook) -> dict:
    """name -> (the registered object, resolved as the plugin manager does; description)."""
    got = {}
    hook(lambda name, obj, description="": got.setdefault(name, (Component(name, obj, "test").obj, description)))
    return got


# -- MEND ------------------------------------------------------------------------------------------

def test_registration():
    assert collect(register_editors)["mend"][0] is MendEditor
    masks = collect(register_mask_strategies)
    assert masks["none"][0] is NoMask and masks["l0"][0] is L0Masks


def test_mend_starts_as_identity():
    editor = mend()
    for name in SHAPES:
        x, d = factors(name)
        x_t, d_t = editor.transform(name, x, d, None)
        assert torch.equal(x_t, x) and torch.equal(d_t, d)
        assert torch.equal(editor.delta_weight(name, x, d, None), d.T @ x)
        assert editor.step_size(name).item() == pytest.approx(1e-4)


def test_mend_networks_shared_by_shape():
    editor = mend()
    assert set(editor.networks) == {"12x5", "5x12"}
    assert editor.network_for("enc.0.up.weight") is editor.network_for("enc.1.up.weight")
    assert editor.network_for("enc.0.up.weight") is not editor.network_for("enc.0.down.weight")
    assert "enc__0__up__weight" in editor.scales  # sanitised, state_dict friendly
    assert "scales.enc__1__up__weight" in editor.state_dict()


def test_mend_gradients_reach_every_parameter():
    editor = mend()
    name = "enc.0.up.weight"
    x, d = factors(name)
    target = torch.randn(SHAPES[name])

    def loss():
        w = -editor.step_size(name) * editor.delta_weight(name, x, d, None)
        return ((w - target) ** 2).sum()

    loss().backward()
    net = editor.network_for(name)
    for layer in net.layers:  # clamp passes the gradient at 0, so U leaves 0 in the first step
        assert layer.u.grad.abs().sum() > 0
    assert editor.step_sizes["enc__0__up__weight"].grad.abs() > 0

    torch.optim.SGD(editor.parameters(), lr=1e-2).step()
    editor.zero_grad()
    loss().backward()
    key = "enc__0__up__weight"
    for layer in net.layers:
        for p in (layer.u, layer.v, layer.bias):
            assert p.grad is not None and p.grad.abs().sum() > 0
    for p in (editor.scales[key], editor.shifts[key], editor.step_sizes[key]):
        assert p.grad is not None and p.grad.abs().sum() > 0
    # After leaving the identity the transform is no longer the plain gradient.
    x_t, _ = editor.transform(name, x, d, None)
    assert not torch.equal(x_t, x)


def test_mend_param_groups_and_options():
    editor = mend(step_size_init=1e-3, step_size_lr=5e-4)
    assert MendEditor.default_lr == 1e-6
    groups = editor.param_groups()
    assert [g["name"] for g in groups] == ["editor", "step_size"]
    assert groups[1]["lr"] == 5e-4 and "lr" not in groups[0]
    assert sum(len(g["params"]) for g in groups) == len(list(editor.parameters()))
    assert editor.step_size("enc.0.down.weight").item() == pytest.approx(1e-3)
    assert editor.network_for("enc.0.up.weight").rank == 4
    assert mend(rank=1000).network_for("enc.0.up.weight").rank == 17  # capped at in + out


def test_mend_normalised_output_space():
    editor = mend(output_space="normalised")
    x, d = factors("enc.0.up.weight")
    x_t, d_t = editor.transform("enc.0.up.weight", x, d, None)
    assert torch.allclose(x_t.mean(-1), torch.zeros(len(x)), atol=1e-5)
    assert torch.allclose(d_t.std(-1, unbiased=False), torch.ones(len(d)), atol=1e-3)
    with pytest.raises(UserError):
        mend(output_space="raw")


def test_mend_parameter_count_mbert():
    shapes = {}
    for layer in (9, 10, 11):
        shapes[f"encoder.layer.{layer}.intermediate.dense.weight"] = (3072, 768)
        shapes[f"encoder.layer.{layer}.output.dense.weight"] = (768, 3072)
    with torch.device("meta"):
        editor = MendEditor(EditorSetup(nn.Identity(), shapes, ["en"], {}))
    count = sum(p.numel() for p in editor.parameters())
    dim, rank = 3840, 1920
    expected = 2 * 2 * (2 * dim * rank + dim) + 6 * 2 * 2 * dim + 6
    assert count == expected == 59_089_926
    assert abs(count - 59e6) / 59e6 < 0.05


# -- masks -----------------------------------------------------------------------------------------

def test_l0_eval_masks_deterministic_and_per_language():
    masks = l0().eval()
    name = "enc.0.up.weight"
    x, d = factors(name)
    a = masks.apply(name, "en", x, d)
    b = masks.apply(name, "en", x, d)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # At init log α ≈ 0: z ≈ 0.5, s = 1, so mask(v) ≈ 1.5 v.
    assert torch.allclose(a[0], 1.5 * x, rtol=0.02)
    # Each language has its own gates: pin de's shut and zh's open (scale 3) and en's output is
    # unchanged, de's is the identity, zh's is 4 v (not a difference of initial noise).
    gates = {lang: masks.gates[lang]["enc__0__up__weight"] for lang in LANGS}
    with torch.no_grad():
        for part in ("x", "delta"):
            gates["de"][part].log_alpha.fill_(-20.0)
            gates["zh"][part].log_alpha.fill_(20.0)
            gates["zh"][part].scale.fill_(3.0)
    c = masks.apply(name, "en", x, d)
    assert torch.equal(a[0], c[0]) and torch.equal(a[1], c[1])
    for lang, factor in (("de", 1.0), ("zh", 4.0)):
        x_m, d_m = masks.apply(name, lang, x, d)
        torch.testing.assert_close(x_m, factor * x)
        torch.testing.assert_close(d_m, factor * d)
    # the same (mask, language) pair copied into another language gives the same masked factors
    with torch.no_grad():
        for part in ("x", "delta"):
            for key in ("log_alpha", "scale"):
                getattr(gates["de"][part], key).copy_(getattr(gates["en"][part], key))
    e = masks.apply(name, "de", x, d)
    assert torch.equal(a[0], e[0]) and torch.equal(a[1], e[1])


def test_l0_training_masks_stochastic():
    masks = l0().train()
    name = "enc.0.down.weight"
    x, d = factors(name)
    a = masks.apply(name, "en", x, d)
    b = masks.apply(name, "en", x, d)
    assert not torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])
    for masked, v in ((a[0], x), (a[1], d)):  # 0 <= m <= 1 at init (s = 1)
        ratio = masked / v
        assert (ratio >= 1 - 1e-5).all() and (ratio <= 2 + 1e-5).all()


def test_l0_penalty_gradient_and_value():
    with_grad, without = l0(), l0(penalty_gradient=False)
    p1, p2 = with_grad.penalty(["en", "de"]), without.penalty(["en", "de"])
    assert torch.equal(p1.detach(), p2)
    assert p1.requires_grad and not p2.requires_grad
    p1.backward()
    gate = with_grad.gates["en"]["enc__0__up__weight"]["x"]
    assert gate.log_alpha.grad is not None and (gate.log_alpha.grad > 0).all()
    assert with_grad.gates["zh"]["enc__0__up__weight"]["x"].log_alpha.grad is None  # not used
    # Expected L0 at log α ≈ 0: sigmoid(−β log(−γ/ζ)) ≈ 0.83.
    shift = (2 / 3) * math.log(0.1 / 1.1)
    assert p1.item() == pytest.approx(1 / (1 + math.exp(shift)), abs=0.01)
    n_gates = 2 * sum(o + i for o, i in SHAPES.values())
    total = l0(penalty_reduction="sum").penalty(["en", "de", "en"])
    assert total.item() == pytest.approx(p1.item() * n_gates, rel=1e-5)
    assert l0().penalty([]).item() == 0.0
    with pytest.raises(UserError):
        l0(penalty_reduction="max")


def test_l0_clamp():
    masks = l0()
    gate = masks.gates["de"]["enc__0__down__weight"]["delta"]
    with torch.no_grad():
        gate.log_alpha[0], gate.log_alpha[1] = 50.0, -50.0
    masks.before_optimizer_step()
    assert gate.log_alpha[0].item() == pytest.approx(math.log(100))
    assert gate.log_alpha[1].item() == pytest.approx(-math.log(100))
    unclamped = l0(clamp_log_alpha=False)
    g = unclamped.gates["de"]["enc__0__down__weight"]["delta"]
    with torch.no_grad():
        g.log_alpha[0] = 50.0
    unclamped.before_optimizer_step()
    assert g.log_alpha[0].item() == 50.0


def test_l0_language_vectors_and_state_dict():
    masks = l0()
    vectors = masks.language_vectors("en")
    assert set(vectors) == set(SHAPES)
    assert vectors["enc.0.up.weight"].shape == (5 + 12,)
    assert not vectors["enc.0.up.weight"].requires_grad
    mask_vectors = l0(analysis_vector="mask").language_vectors("de")
    assert torch.allclose(mask_vectors["enc.0.down.weight"], torch.full((17,), 0.5), atol=0.01)
    keys = list(masks.state_dict())
    assert "gates.en.enc__0__up__weight.x.log_alpha" in keys
    assert len(keys) == len(LANGS) * len(SHAPES) * 4
    assert L0Masks.default_lr == 1e-3


def test_l0_unknown_language_and_weight():
    masks = l0()
    x, d = factors("enc.0.up.weight")
    with pytest.raises(UserError, match="en, de, zh"):
        masks.apply("enc.0.up.weight", "fr", x, d)
    with pytest.raises(UserError, match="fr"):
        masks.penalty(["fr"])
    with pytest.raises(UserError):
        masks.apply("enc.9.up.weight", "en", x, d)


def test_no_mask_is_identity():
    masks = NoMask(MaskSetup(dict(SHAPES), list(LANGS), {}))
    x, d = factors("enc.0.up.weight")
    x_m, d_m = masks.apply("enc.0.up.weight", "en", x, d)
    assert x_m is x and d_m is d
    assert masks.penalty(["en"]).item() == 0.0
    assert masks.language_vectors("en") == {}
    assert list(masks.parameters()) == []


def test_mend_with_masks_gradient_reaches_masks():
    editor, masks = mend(), l0().train()
    name = "enc.0.up.weight"
    x, d = factors(name)
    x_m, d_m = masks.apply(name, "de", x, d)
    w = -editor.step_size(name) * editor.delta_weight(name, x_m, d_m, None)
    (w.sum() + masks.penalty(["de"])).backward()
    gate = masks.gates["de"]["enc__0__up__weight"]["x"]
    assert gate.scale.grad.abs().sum() > 0 and gate.log_alpha.grad.abs().sum() > 0


def test_mend_last_layer_is_linear_and_can_subtract():
    """MEND's last residual layer has no clamp (as in MEND's own code): once trained it can move a
    factor below its input, which a network of clamped (non-negative) residuals never can."""
    name = "enc.0.up.weight"
    x, d = factors(name)
    for linear_last, can_subtract in ((True, True), (False, False)):
        editor = mend(linear_last=linear_last)
        net = editor.network_for(name)
        with torch.no_grad():
            for layer in net.layers:
                layer.u.fill_(0.5)
                layer.bias.fill_(-5.0)  # a strongly negative pre-activation everywhere
        x_t, _ = editor.transform(name, x, d, None)
        assert bool((x_t < x - 1e-6).any()) is can_subtract
        assert net.layers[-1].linear is linear_last and not net.layers[0].linear


# -- the hard-concrete gate and the masks' edges (mutation-testing survivors, docs/testing.md) ------

def hard_concrete_gate(r: float, log_alpha: float, beta=2 / 3, gamma=-0.1, zeta=1.1, eps=1e-6) -> float:
    """Louizos et al. (2018), eq. 10 with u = ε + (1 − 2ε)·r for r ~ U(0, 1), written out in float64."""
    u = eps + (1 - 2 * eps) * r
    s = 1 / (1 + math.exp(-(math.log(u) - math.log(1 - u) + log_alpha) / beta))
    return min(1.0, max(0.0, s * (zeta - gamma) + gamma))


def test_training_gate_is_the_hard_concrete_sample_of_its_noise(monkeypatch):
    from lime_toolkit_plugins.masks.hard_concrete import HardConcreteConfig, HardConcreteMask

    gate = HardConcreteMask(4, HardConcreteConfig()).train()
    noise = torch.tensor([0.25, 0.5, 0.8, 0.1])
    with torch.no_grad():
        gate.log_alpha.copy_(torch.tensor([0.0, 0.3, -1.0, 1.5]))
        gate.scale.copy_(torch.tensor([1.0, 2.0, 0.5, 1.0]))
    monkeypatch.setattr(torch, "rand_like", lambda t: noise.clone())
    expected = [hard_concrete_gate(r, a) for r, a in zip(noise.tolist(), gate.log_alpha.tolist())]
    assert all(0.0 < z < 1.0 for z in expected)  # inside the stretch: the clamp hides nothing here
    torch.testing.assert_close(gate.gate(), torch.tensor(expected), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gate(), gate.scale.detach() * torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_training_gate_stays_finite_at_the_ends_of_the_noise(monkeypatch):
    """torch.rand gives [0, 1): at 0 and at the largest float below 1 the noise u stays inside
    (0, 1), so log u and log(1 − u) are finite and the gate is a number in [0, 1]."""
    from lime_toolkit_plugins.masks.hard_concrete import HardConcreteConfig, HardConcreteMask

    gate = HardConcreteMask(2, HardConcreteConfig()).train()
    ends = torch.tensor([0.0, 1.0 - 2.0 ** -24])
    monkeypatch.setattr(torch, "rand_like", lambda t: ends.clone())
    z = gate.gate()
    assert torch.isfinite(z).all() and ((z >= 0) & (z <= 1)).all()
    assert z.tolist() == [0.0, 1.0]  # log α ≈ 0: the extreme noise pins the gate shut / open


def test_expected_l0_has_a_gradient_unless_asked_not_to():
    from lime_toolkit_plugins.masks.hard_concrete import HardConcreteConfig, HardConcreteMask

    gate = HardConcreteMask(3, HardConcreteConfig())
    assert gate.expected_l0().requires_grad and not gate.expected_l0(differentiable=False).requires_grad
    torch.testing.assert_close(gate.expected_l0().detach(), gate.expected_l0(differentiable=False))


def test_l0_masks_keep_the_factors_dtype():
    """A half-precision model's factors stay in its precision (the gates are float32)."""
    masks = l0().eval()
    x, d = factors("enc.0.up.weight")
    x_m, d_m = masks.apply("enc.0.up.weight", "de", x.bfloat16(), d.bfloat16())
    assert x_m.dtype == d_m.dtype == torch.bfloat16
    x_f, d_f = masks.apply("enc.0.up.weight", "de", x, d)
    torch.testing.assert_close(x_m.float(), x_f, rtol=0.02, atol=1e-3)
    torch.testing.assert_close(d_m.float(), d_f, rtol=0.02, atol=1e-6)


def test_l0_penalty_of_no_language_is_a_zero_on_the_masks_device():
    masks = l0().to("meta")  # a device that is not the CPU, on any machine
    assert masks.penalty([]).device.type == "meta" and masks.penalty([]).shape == ()
    # masks built for no language have no parameters: the zero is then on the CPU
    empty = L0Masks(MaskSetup(dict(SHAPES), [], {}))
    assert list(empty.parameters()) == [] and empty.penalty([]).item() == 0.0


def moved_off_identity(**options) -> MendEditor:
    """A MEND editor whose residual is not zero (U and the bias drawn at random)."""
    editor = mend(**options)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in editor.parameters():
            if p.dim() >= 1 and not p.abs().sum():  # U and the biases start at 0
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return editor


def layer_norm(v: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    sigma = ((v - v.mean(-1, keepdim=True)) ** 2).mean(-1, keepdim=True).sqrt() + eps
    return (v - v.mean(-1, keepdim=True)) / sigma, sigma


def test_mend_output_spaces_differ_by_the_inverse_normalisation():
    """``normalised`` returns LN(v) + R, ``input`` returns v + σ ⊙ R with the same residual R:
    the residual is mapped back to each factor's own units (method notes §5)."""
    name = "enc.0.up.weight"
    x, d = factors(name)
    in_x, in_d = moved_off_identity().transform(name, x, d, None)
    norm_x, norm_d = moved_off_identity(output_space="normalised").transform(name, x, d, None)
    (ln_x, sigma_x), (ln_d, sigma_d) = layer_norm(x), layer_norm(d)
    r_x, r_d = norm_x - ln_x, norm_d - ln_d
    assert r_x.abs().max() > 0.1 and r_d.abs().max() > 0.1  # the residual is really there
    torch.testing.assert_close(in_x, x + sigma_x * r_x, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(in_d, d + sigma_d * r_d, rtol=1e-4, atol=1e-7)


def test_normalise_is_a_per_token_layer_norm_and_a_constant_factor_gives_zeros():
    from lime_toolkit_plugins.mend.network import normalise

    v = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 0.0], [-2.0, -2.0, -2.0, -2.0]])
    n, scale = normalise(v, 1e-8)
    expected, sigma = layer_norm(v)
    torch.testing.assert_close(n, expected)
    torch.testing.assert_close(scale, sigma)
    assert (scale > 0).all()  # a constant token (an all-zero δ row) has scale eps, not 0 or below
    assert n[1:].abs().max() == 0


def test_mend_refuses_factors_of_the_wrong_width_saying_which():
    editor = mend()
    name = "enc.0.up.weight"  # (out 12, in 5)
    x, d = factors(name, tokens=3)
    with pytest.raises(ValueError) as err:
        editor.transform(name, torch.randn(3, 6), d, None)
    assert str(err.value) == "mend: factors of 'enc.0.up.weight' have widths 6, 12; expected 5, 12"
    with pytest.raises(ValueError) as err:
        editor.transform(name, x, torch.randn(3, 11), None)
    assert str(err.value) == "mend: factors of 'enc.0.up.weight' have widths 5, 11; expected 5, 12"


def test_l0_unknown_language_or_weight_names_what_the_masks_have():
    with pytest.raises(UserError) as err:
        l0().apply("enc.9.up.weight", "en", *factors("enc.0.up.weight"))
    assert str(err.value) == ("no LiME masks for weight 'enc.9.up.weight'; the masks were built for: "
                              "enc.0.up.weight, enc.0.down.weight, enc.1.up.weight")
    with pytest.raises(UserError) as err:
        L0Masks(MaskSetup(dict(SHAPES), [], {})).penalty(["en"])
    assert str(err.value) == "no LiME masks for edit language 'en'; the masks were built for: none"


def test_network_residual_by_hand():
    """r_k(h) = clamp(s ⊙ (U V h + b) + t, min=0) (no clamp on a linear last layer), each layer
    seeing h0 plus the residual so far; written out here with random U, b, s and t."""
    from lime_toolkit_plugins.mend.network import SharedEditorNetwork

    torch.manual_seed(3)
    dim, rank, tokens = 6, 3, 4
    net = SharedEditorNetwork(dim, rank, n_layers=2, linear_last=True)
    with torch.no_grad():
        for layer in net.layers:
            layer.u.normal_()
            layer.bias.normal_()
    scales, shifts = torch.rand(2, dim) + 0.5, torch.randn(2, dim)
    h0 = torch.randn(tokens, dim)

    def branch(layer, h, s, t, clamp):
        out = s * (h @ layer.v.T @ layer.u.T + layer.bias) + t
        return out.clamp(min=0) if clamp else out

    r1 = branch(net.layers[0], h0, scales[0], shifts[0], clamp=True)
    r2 = branch(net.layers[1], h0 + r1, scales[1], shifts[1], clamp=False)
    assert (r1 == 0).any() and (r1 > 0).any() and (r2 < 0).any()  # both sides of the clamp are used
    torch.testing.assert_close(net.residual(h0, scales, shifts), r1 + r2)


@pytest.mark.parametrize("spelling, clamps", [("true", True), (" Yes ", True), ("1", True), ("ON", True),
                                              ("false", False), ("No", False), ("0", False), ("off", False)])
def test_l0_boolean_options_written_as_words(spelling, clamps):
    masks = l0(clamp_log_alpha=spelling)
    gate = masks.gates["en"]["enc__0__up__weight"]["x"]
    with torch.no_grad():
        gate.log_alpha[0] = 50.0
    masks.before_optimizer_step()
    assert gate.log_alpha[0].item() == (pytest.approx(math.log(100)) if clamps else 50.0)


def test_l0_boolean_option_that_is_no_boolean_is_one_clear_error():
    with pytest.raises(UserError) as err:
        l0(penalty_gradient="maybe")
    assert str(err.value) == "masks: option penalty_gradient must be true or false (got 'maybe')"


def test_mend_unknown_weight_names_the_weights_it_has():
    with pytest.raises(KeyError) as err:
        mend().step_size("enc.9.up.weight")
    assert err.value.args[0] == ("mend has no parameters for weight 'enc.9.up.weight'; it was built for: "
                                 "enc.0.up.weight, enc.0.down.weight, enc.1.up.weight")


def test_l0_bad_choice_option_is_one_clear_error():
    with pytest.raises(UserError) as err:
        l0(penalty_reduction="max")
    assert str(err.value) == "masks: option penalty_reduction must be one of mean, sum (got 'max')"


def test_l0_analysis_vectors_are_log_alpha_by_default():
    masks = l0()
    pair = masks.gates["de"]["enc__0__down__weight"]
    expected = torch.cat([pair["x"].log_alpha, pair["delta"].log_alpha]).detach()
    assert torch.equal(masks.language_vectors("de")["enc.0.down.weight"], expected)


def test_l0_hard_concrete_options_reach_every_gate():
    """beta, gamma, zeta and eps from the options: every gate is built with them, and the
    penalty at log α = 0 is sigmoid(−β log(−γ/ζ)) with the given values."""
    from lime_toolkit_plugins.masks.hard_concrete import HardConcreteConfig

    masks = l0(beta=0.5, gamma=-0.2, zeta=1.3, eps=1e-3, log_alpha_init_std=0.0)
    wanted = HardConcreteConfig(beta=0.5, gamma=-0.2, zeta=1.3, eps=1e-3)
    gates = [g for lang in LANGS for pair in masks.gates[lang].values() for g in pair.values()]
    assert gates and all(g.config == wanted for g in gates)
    assert masks.penalty(["en"]).item() == pytest.approx(1 / (1 + math.exp(0.5 * math.log(0.2 / 1.3))))


def test_l0_hard_concrete_defaults_are_the_documented_ones():
    from lime_toolkit_plugins.masks.hard_concrete import HardConcreteConfig

    assert HardConcreteConfig() == HardConcreteConfig(beta=2 / 3, gamma=-0.1, zeta=1.1, eps=1e-6)
    masks = l0()
    assert all(g.config == HardConcreteConfig() for lang in LANGS for pair in masks.gates[lang].values()
               for g in pair.values())


@pytest.mark.parametrize("options", [dict(gamma=0.0), dict(zeta=1.0), dict(beta=0.0)])
def test_l0_refuses_a_hard_concrete_without_its_stretch(options):
    with pytest.raises(UserError) as err:
        l0(**options)
    assert str(err.value) == "masks: hard-concrete needs beta > 0 and gamma < 0 < 1 < zeta"


def test_mend_n_layers_option_sets_the_networks_depth():
    editor = mend(n_layers=3)
    assert len(editor.network_for("enc.0.up.weight").layers) == 3
    assert editor.scales["enc__0__up__weight"].shape == editor.shifts["enc__0__up__weight"].shape == (3, 17)
    assert len(mend().network_for("enc.0.up.weight").layers) == 2  # the default


def test_mend_rank_and_depth_of_one_are_allowed_and_zero_is_refused():
    assert mend(rank=1, n_layers=1).network_for("enc.0.up.weight").rank == 1
    for options, got in ((dict(rank=0), "rank=0, n_layers=2"), (dict(n_layers=0), "rank=4, n_layers=0")):
        with pytest.raises(UserError) as err:
            mend(**options)
        assert str(err.value) == f"mend: rank and n_layers must be positive (got {got})"


def test_mend_norm_eps_option_is_the_normalisations_eps():
    x, d = factors("enc.0.up.weight")
    x_t, _ = mend(output_space="normalised", norm_eps=0.5).transform("enc.0.up.weight", x, d, None)
    torch.testing.assert_close(x_t, layer_norm(x, eps=0.5)[0])


def test_mend_documented_step_size_lr_and_option_errors():
    assert mend().param_groups()[1]["lr"] == 1e-4
    with pytest.raises(UserError) as err:
        mend(output_space="raw")
    assert str(err.value) == "mend: output_space must be one of input, normalised (got 'raw')"
    with pytest.raises(UserError) as err:
        MendEditor(EditorSetup(nn.Identity(), {"a.b": (2, 3), "a__b": (2, 3)}, ["en"], {"rank": 2}))
    assert str(err.value) == "mend: edited weight names collide once '.' is replaced: ['a.b', 'a__b']"
