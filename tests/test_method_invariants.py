"""Invariants of the method on the tiny random masked LM (``lime_toolkit.testing``), in seconds.

Factors with real padding; MEND through the editing system (its identity start is a plain
gradient step); LiME masks chosen by the edit language alone, with the gates forced open and shut;
one MEND + l0 meta-training step whose losses match a computation written out here from the method
notes (not from the toolkit's code), and a short ``train`` run whose updates reach every editor
parameter and every mask parameter of the languages it edited in, and no other.

The expected values here are computed with plain ``torch.func.functional_call`` on the whole
model and the tokenizer, independently of ``position_logits``, ``capture_factors`` and the editors.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from lime_toolkit.architectures import editable_parameters
from lime_toolkit.config import defaults
from lime_toolkit.data import MASKED_LM, TARGET_SLOT, Example
from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import EditorSetup
from lime_toolkit.encoding import encode_examples
from lime_toolkit.factors import capture_factors
from lime_toolkit.mask_api import MaskSetup
from lime_toolkit.run import Run
from lime_toolkit.sampler import CrossLingualSampler, Sample
from lime_toolkit.testing import ToyDataset, tiny_masked_lm
from lime_toolkit.training import meta_loss, train
from lime_toolkit_plugins.masks.strategies import L0Masks
from lime_toolkit_plugins.mend.editor import MendEditor

WEIGHTS = {"rel_weight": 0.1, "loc_weight": 1.0, "mask_weight": 1.0}  # the paper's λ (method notes §3)
OPEN, SHUT = 20.0, -20.0  # log α far beyond the hard-concrete stretch: z is exactly 1 or 0, noise or not


class World:
    def __init__(self):
        torch.manual_seed(0)
        self.model, self.tok = tiny_masked_lm()
        self.names = editable_parameters(self.model, last_n_layers=2)
        self.weights = {n: p for n, p in self.model.named_parameters() if n in self.names}
        self.shapes = {n: tuple(p.shape) for n, p in self.weights.items()}
        self.data = ToyDataset()
        self.cases = self.data.edit_cases("train")
        self.pool = self.data.locality_pool("train")

    def mend(self, **options) -> MendEditor:
        torch.manual_seed(1)
        return MendEditor(EditorSetup(self.model, dict(self.shapes), self.data.languages, {"rank": 8, **options}))

    def l0(self, **options) -> L0Masks:
        torch.manual_seed(2)
        return L0Masks(MaskSetup(dict(self.shapes), self.data.languages, options))

    def batch(self, *examples):
        return encode_examples(self.tok, list(examples), MASKED_LM)

    def run(self, system, config=None) -> Run:
        return Run(config or {"train": {"lr": None, "mask_lr": None, **WEIGHTS}}, self.data, self.model, self.tok,
                   system, Path("unused"), torch.device("cpu"))

    # -- the reference computation ----------------------------------------------------------------
    def mask_logits(self, examples, params=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits at every [MASK] of ``examples`` (the whole model's forward) and their labels."""
        texts = [ex.text.replace(TARGET_SLOT, self.tok.mask_token) for ex in examples]
        enc = self.tok(texts, padding=True, return_tensors="pt")
        logits = functional_call(self.model, params or {}, args=(), kwargs=dict(enc)).logits
        at = enc["input_ids"] == self.tok.mask_token_id
        labels = torch.tensor([self.tok.convert_tokens_to_ids(ex.target) if ex.target else -100 for ex in examples])
        return logits[at], labels

    def gradient(self, examples) -> dict[str, torch.Tensor]:
        """∇W of the mean cross-entropy of ``examples``' targets, by autograd."""
        leaves = {n: w.detach().clone().requires_grad_() for n, w in self.weights.items()}
        logits, labels = self.mask_logits(examples, leaves)
        grads = torch.autograd.grad(F.cross_entropy(logits, labels), list(leaves.values()))
        return dict(zip(leaves, grads))


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def force_gates(masks: L0Masks, lang: str, pattern: str, scale: float | None = None, seed: int = 0) -> dict:
    """Pin every gate of ``lang`` open or shut ("open", "shut" or "alternate": open at even
    dimensions) with a known scale (random in [0.5, 1.5] when None); returns the mask vectors
    m = s ⊙ z that the method prescribes, per weight: {name: (m_x, m_δ)}."""
    gen = torch.Generator().manual_seed(seed)
    expected = {}
    for name in masks.shapes:
        pair = masks.gates[lang][name.replace(".", "__")]
        vectors = []
        for part in ("x", "delta"):
            gate = pair[part]
            n = gate.log_alpha.numel()
            z = {"open": torch.ones(n), "shut": torch.zeros(n),
                 "alternate": (torch.arange(n) % 2 == 0).float()}[pattern]
            s = torch.full((n,), scale) if scale is not None else 0.5 + torch.rand(n, generator=gen)
            with torch.no_grad():
                gate.log_alpha.copy_(torch.where(z > 0, OPEN, SHUT))
                gate.scale.copy_(s)
            vectors.append(s * z)
        expected[name] = tuple(vectors)
    return expected


# -- factors -------------------------------------------------------------------------------------------

def test_factors_of_a_padded_batch_are_each_examples_own_without_the_padding(world):
    short = Example("x", "en", f"anna in {TARGET_SLOT}", "rome")  # 5 tokens against 7: two are padding
    long = world.cases[1].inputs["en"]
    pair = world.batch(short, long)
    attention = pair.inputs["attention_mask"]
    assert attention.tolist()[0] == [1] * 5 + [0, 0] and attention[1].all()
    _, together = capture_factors(world.model, pair, world.weights)
    alone = [capture_factors(world.model, world.batch(ex), world.weights)[1] for ex in (short, long)]
    expected_grad = world.gradient([short, long])
    for name, (x, delta) in together.items():
        # the batch's factors are example 0's real tokens, then example 1's: padding rows are gone;
        # δ is halved because the loss is the mean over the two answer positions
        torch.testing.assert_close(x, torch.cat([alone[0][name][0], alone[1][name][0]]), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(delta, torch.cat([alone[0][name][1], alone[1][name][1]]) / 2, atol=1e-7, rtol=1e-4)
        torch.testing.assert_close(delta.T @ x, expected_grad[name], atol=1e-7, rtol=1e-4)
        # layer 1's MLP reaches the loss only at the two [MASK] positions; layer 0's at every real token
        rows = 2 if ".layer.1." in name else int(attention.sum())
        assert x.shape[0] == delta.shape[0] == rows, name


# -- MEND through the editing system ------------------------------------------------------------------

def test_mend_edit_at_its_start_is_w_minus_alpha_grad(world):
    case = world.cases[0]
    edit = world.batch(case.inputs["de"])
    grad = world.gradient([case.inputs["de"]])
    for alpha in (1e-4, 300.0):
        system = EditingSystem(world.model, world.names, world.mend(step_size_init=alpha), None)
        for grad_mode in (True, False):  # meta-training (graph kept) and evaluation (no_grad)
            with torch.set_grad_enabled(grad_mode):
                edited = system.edit(edit, "de")
            assert set(edited) == set(world.names)
            for name in world.names:
                torch.testing.assert_close(edited[name].detach(), world.weights[name] - alpha * grad[name],
                                           atol=1e-6, rtol=1e-5)
    # the minus sign: with a large step the identity-start edit makes the edit (a descent step)
    logits, labels = world.mask_logits([case.inputs["de"]], {n: t.detach() for n, t in edited.items()})
    before, _ = world.mask_logits([case.inputs["de"]])
    assert before.argmax(-1).tolist() != labels.tolist() and logits.argmax(-1).tolist() == labels.tolist()


def test_masks_are_chosen_by_the_edit_language_alone(world):
    """de's gates pinned open (scale 1: mask(v) = 2v), en's pinned shut (mask(v) = v): the edit is
    W − α·4·∇W in de and W − α·∇W in en, whatever the language of the text edited, and the same
    with stochastic (training) gates."""
    masks = world.l0()
    force_gates(masks, "de", "open", scale=1.0)
    force_gates(masks, "en", "shut", scale=1.0)
    system = EditingSystem(world.model, world.names, world.mend(step_size_init=0.5), masks)
    for example in (world.cases[0].inputs["en"], world.cases[0].inputs["de"]):
        grad = world.gradient([example])
        for training in (False, True):
            system.train(training)
            for lang, factor in (("de", 4.0), ("en", 1.0)):
                with torch.no_grad():
                    edited = system.edit(world.batch(example), lang)
                for name in world.names:
                    torch.testing.assert_close(edited[name], world.weights[name] - 0.5 * factor * grad[name],
                                               atol=1e-6, rtol=1e-5)


def test_meta_loss_of_mend_with_l0_matches_the_formula(world):
    """L = λ_rel·CE(f(x_u; θ_u), y_e) + λ_loc·KL(f(x_r; θ) ‖ f(x_r; θ_u)) + λ_mask·mean E[L0] of the
    edit language's gates, with θ_u = W − α·Σ mask(δ) mask(x)ᵀ (MEND at its identity start)."""
    masks = world.l0()
    m = force_gates(masks, "de", "alternate", seed=3)  # the edit language: half the gates open
    force_gates(masks, "en", "open", scale=2.0)  # different masks: using en's would change θ_u
    alpha = 100.0
    system = EditingSystem(world.model, world.names, world.mend(step_size_init=alpha), masks).train()
    case = world.cases[0]
    sample = Sample(case, case.inputs["de"], [case.inputs["en"]],
                    [world.pool["en"][1], world.pool["de"][3], world.pool["en"][2]])
    terms = meta_loss(world.run(system), sample, WEIGHTS)

    grad = world.gradient([case.inputs["de"]])
    theta_u = {n: world.weights[n] - alpha * ((1 + m[n][1])[:, None] * grad[n] * (1 + m[n][0])[None, :])
               for n in world.names}
    logits, labels = world.mask_logits(sample.updates, theta_u)
    rel = F.cross_entropy(logits, labels)
    before = F.log_softmax(world.mask_logits(sample.retain)[0], -1)
    after = F.log_softmax(world.mask_logits(sample.retain, theta_u)[0], -1)
    loc = (before.exp() * (before - after)).sum() / len(sample.retain)  # one [MASK] per retain input
    shift = (2 / 3) * math.log(0.1 / 1.1)
    sizes = [v.numel() for pair in m.values() for v in pair]
    n_open = sum((s + 1) // 2 for s in sizes)
    mask = (n_open / (1 + math.exp(-(OPEN - shift))) + (sum(sizes) - n_open) / (1 + math.exp(-(SHUT - shift))))
    mask /= sum(sizes)
    assert rel.item() > 0.5 and loc.item() > 1e-3  # the edit moved the retain inputs: KL is not trivially 0
    assert terms["rel"].item() == pytest.approx(rel.item(), rel=1e-5)
    assert terms["loc"].item() == pytest.approx(loc.item(), rel=1e-4, abs=1e-7)
    assert terms["mask"].item() == pytest.approx(mask, rel=1e-6)
    expected = WEIGHTS["rel_weight"] * rel + WEIGHTS["loc_weight"] * loc + WEIGHTS["mask_weight"] * mask
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    # the loss reaches the de masks through the edit, and not en's, although x_u and x_r are in en
    terms["loss"].backward()
    de = masks.gates["de"]["bert__encoder__layer__1__output__dense__weight"]["x"]
    opened = m["bert.encoder.layer.1.output.dense.weight"][0] > 0
    assert de.scale.grad[opened].abs().min() > 0 and (de.scale.grad[~opened] == 0).all()  # z = 0: no path
    assert all(p.grad is None for n, p in masks.named_parameters() if n.startswith("gates.en."))
    assert all(p.grad is None for p in world.model.parameters())  # the base model stays frozen


def test_mend_with_l0_training_reaches_every_editor_and_mask_parameter(world, tmp_path):
    """Two optimiser steps of ``train`` (2 edits each) from the default initialisation: every MEND
    parameter and every gate parameter of the edit language moves; the other language's masks and
    the base model do not. (At the identity start U = 0, so V and the scales get their first
    gradient in the second step.)"""
    config = defaults()
    config["train"].update(langs="de", max_steps=2, accumulate=2, val_every=2, val_edits=1, retain_per_edit=2,
                           patience=0, lr=1e-3, mask_lr=1e-2, **WEIGHTS)
    editor, masks = world.mend(step_size_init=1.0), world.l0()
    run = world.run(EditingSystem(world.model, world.names, editor, masks), config)
    run.out = tmp_path / "run"
    editor_before = {k: v.clone() for k, v in editor.state_dict().items()}
    masks_before = {k: v.clone() for k, v in masks.state_dict().items()}
    model_before = {k: v.clone() for k, v in world.model.state_dict().items()}

    class Monitor:
        terms: list = []

        def on_step(self, step, terms, steps_per_s):
            self.terms.append(terms)

        def on_validation(self, step, metrics, improved):
            pass

        def on_edit(self):
            pass

    monitor = Monitor()
    result = train(run, monitor)
    assert result.steps == 2 and len(monitor.terms) == 2
    for terms in monitor.terms:
        assert all(math.isfinite(v) for v in terms.values())
        assert terms["loss"] == pytest.approx(sum(WEIGHTS[k + "_weight"] * terms[k] for k in ("rel", "loc", "mask")))
    for key, value in editor.state_dict().items():
        moved = value != editor_before[key]
        if key.startswith("scales."):  # [layer, dim]: the first layer's clamp stops some dimensions
            assert moved[0].any() and moved[-1].all(), key
        else:
            assert moved.all(), f"{key}: {int((~moved).sum())} of {moved.numel()} values never moved"
    for key, value in masks.state_dict().items():
        moved = value != masks_before[key]
        if not key.startswith("gates.de."):
            assert not moved.any(), key
        elif key.endswith("log_alpha"):  # the penalty alone reaches every log α
            assert moved.all(), f"{key}: {int((~moved).sum())} of {moved.numel()} values never moved"
        else:  # the scales have no penalty: only the edit reaches them (not where z was 0 at every draw)
            assert moved.float().mean() > 0.9, f"{key}: {int((~moved).sum())} of {moved.numel()} values never moved"
    assert all(torch.equal(v, model_before[k]) for k, v in world.model.state_dict().items())


def test_training_draws_are_the_samplers(world, tmp_path):
    """``train`` uses draw (step, micro) of the sampler built from the run's seed and settings: the
    loss it logs for a step equals the mean meta-loss of those draws (masks pinned, so the gates
    are deterministic)."""
    config = defaults()
    config["train"].update(langs="all", max_steps=1, accumulate=3, val_every=1, val_edits=1, retain_per_edit=3,
                           update_per_edit=2, patience=0, lr=1e-12, mask_lr=1e-12, **WEIGHTS)
    config["seed"] = 4
    masks = world.l0()
    for lang in world.data.languages:
        force_gates(masks, lang, "alternate", seed=len(lang) + ord(lang[0]))
    system = EditingSystem(world.model, world.names, world.mend(step_size_init=3.0), masks)
    run = world.run(system, config)
    run.out = tmp_path / "run"
    sampler = CrossLingualSampler(world.cases, world.pool, run.roles("all"), n_retain=3, seed=4, n_update=2)
    with torch.no_grad():
        terms = [meta_loss(run, sampler.draw(0, micro), WEIGHTS) for micro in range(3)]
    expected = {k: sum(t[k].item() for t in terms) / 3 for k in ("loss", "rel", "loc")}
    assert len({t["loss"].item() for t in terms}) == 3  # three different draws
    assert all(len(sampler.draw(0, m).retain) == 3 and len(sampler.draw(0, m).updates) == 2 for m in range(3))

    class Monitor:
        logged: list = []

        def on_step(self, step, terms, steps_per_s):
            self.logged.append(terms)

        def on_validation(self, step, metrics, improved):
            pass

        def on_edit(self):
            pass

    monitor = Monitor()
    train(run, monitor)
    assert len(monitor.logged) == 1
    for k in ("loss", "rel", "loc"):  # each term, so a tiny loc cannot hide in the sum
        assert monitor.logged[0][k] == pytest.approx(expected[k], rel=1e-5), k


def test_evaluation_uses_the_deterministic_masks_and_gives_the_training_mode_back(world):
    from lime_toolkit.evaluation import EvalSettings, evaluate

    masks = world.l0()
    system = EditingSystem(world.model, world.names, world.mend(step_size_init=300.0), masks).train()
    settings = EvalSettings(["en", "de"], ["en", "de"], n_update=0, n_retain=2, seed=0, intervals=False)
    runs = [evaluate(system, world.tok, MASKED_LM, world.cases, world.pool, settings) for _ in range(3)]
    assert system.training and masks.training
    assert runs[0] == runs[1] == runs[2]
    # with every gate shut the masks are the identity: the same evaluation as the editor without masks
    for lang in world.data.languages:
        force_gates(masks, lang, "shut", scale=1.0)
    shut = evaluate(system, world.tok, MASKED_LM, world.cases, world.pool, settings)
    plain = evaluate(EditingSystem(world.model, world.names, system.editor, None), world.tok, MASKED_LM, world.cases,
                     world.pool, settings)
    assert shut == plain


def test_a_resumed_mend_l0_run_ends_where_an_uninterrupted_one_does(world, tmp_path):
    """Resume checked by results, not step numbers: 2 steps, then a new process (new editor, masks
    and random state) extends the run to 4; the same as 4 steps at once, gate noise included."""
    class Monitor:
        def __init__(self):
            self.losses = []

        def on_step(self, step, terms, steps_per_s):
            self.losses.append((step, terms["loss"]))

        def on_validation(self, step, metrics, improved):
            pass

        def on_edit(self):
            pass

    def run_to(steps: int, out: Path, monitor: Monitor) -> EditingSystem:
        config = defaults()
        # constant: extending a run from 2 to 4 steps would change a cosine schedule's first steps
        config["train"].update(max_steps=steps, accumulate=2, val_every=2, val_edits=1, retain_per_edit=2,
                               patience=0, lr=1e-3, schedule="constant", **WEIGHTS)
        system = EditingSystem(world.model, world.names, world.mend(step_size_init=1.0), world.l0())  # reseeds
        run = world.run(system, config)
        run.out = out
        train(run, monitor)
        return system

    straight, resumed = Monitor(), Monitor()
    once = run_to(4, tmp_path / "once", straight)
    run_to(2, tmp_path / "twice", resumed)
    again = run_to(4, tmp_path / "twice", resumed)
    assert [s for s, _ in resumed.losses] == [1, 2, 3, 4]
    assert resumed.losses == straight.losses
    final, expected = again.state_dict(), once.state_dict()
    assert all(torch.equal(final[k], expected[k]) for k in expected)
