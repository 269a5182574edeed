"""The finetuning (ft), Editable Training (et) and KnowledgeEditor (ke) editors on a tiny random
masked LM (``lime_toolkit.testing``): edits, meta-gradients, options, masks, checkpoints."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lime_toolkit.architectures import editable_parameters
from lime_toolkit.checkpoint import load_checkpoint, save_checkpoint
from lime_toolkit.data import MASKED_LM, TARGET_SLOT, Example
from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import EditorSetup
from lime_toolkit.encoding import encode_examples
from lime_toolkit.errors import UserError
from lime_toolkit.factors import capture_factors, edit_loss
from lime_toolkit.mask_api import MaskSetup
from lime_toolkit.models import position_logits
from lime_toolkit.plugin_manager import PluginManager
from lime_toolkit.registry import Component
from lime_toolkit.run import Run
from lime_toolkit.runs.build import build_run
from lime_toolkit.sampler import CrossLingualSampler, LanguageRoles
from lime_toolkit.testing import ToyDataset, tiny_masked_lm
from lime_toolkit.training import make_optimizer, meta_loss
from lime_toolkit_plugins import et as et_plugin
from lime_toolkit_plugins import ft as ft_plugin
from lime_toolkit_plugins import ke as ke_plugin
from lime_toolkit_plugins.et.editor import EditableTrainingEditor
from lime_toolkit_plugins.ft.editor import FinetuneEditor
from lime_toolkit_plugins.ke.editor import KnowledgeEditor
from lime_toolkit_plugins.masks.strategies import L0Masks

LOSS_WEIGHTS = {"rel_weight": 0.1, "loc_weight": 1.0, "mask_weight": 1.0}


# -- helpers ---------------------------------------------------------------------------------------

class World:
    """The tiny model, its edited weights (MLPs of both layers) and the toy data."""

    def __init__(self):
        self.model, self.tok = tiny_masked_lm()
        self.names = editable_parameters(self.model, last_n_layers=2)
        self.data = ToyDataset()
        weights = dict(self.model.named_parameters())
        self.shapes = {n: tuple(weights[n].shape) for n in self.names}
        self.cases = self.data.edit_cases("train")

    def setup(self, **options) -> EditorSetup:
        return EditorSetup(self.model, dict(self.shapes), self.data.languages, options)

    def batch(self, case, lang="en"):
        return encode_examples(self.tok, [case.inputs[lang]], MASKED_LM)

    def system(self, editor, masks=None) -> EditingSystem:
        return EditingSystem(self.model, self.names, editor, masks)

    def l0(self, **options) -> L0Masks:
        return L0Masks(MaskSetup(dict(self.shapes), self.data.languages, options))

    def run(self, system, lr=None) -> Run:
        config = {"train": {"lr": lr, "mask_lr": None, **LOSS_WEIGHTS}}
        return Run(config, self.data, self.model, self.tok, system, Path("unused"), torch.device("cpu"))

    def sample(self, step=0):
        roles = LanguageRoles.parse("all", self.data.languages)
        sampler = CrossLingualSampler(self.cases, self.data.locality_pool("train"), roles, n_retain=2, seed=0)
        return sampler.draw(step)

    def predicts_target(self, batch, params=None) -> bool:
        with torch.no_grad():
            return bool((position_logits(self.model, batch, params).argmax(-1) == batch.labels).all())

    def weights(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.model.named_parameters()}


@pytest.fixture()
def world() -> World:
    torch.manual_seed(0)
    return World()


def unsolved_cases(world: World):
    """(case, lang) pairs the unedited toy model gets wrong."""
    found = [(c, l) for c in world.cases for l in world.data.languages if not world.predicts_target(world.batch(c, l))]
    assert len(found) >= 4
    return found


def collect(hook) -> dict:
    """name -> (the registered object, resolved as the plugin manager does; description)."""
    got = {}
    hook(lambda name, obj, description="": got.setdefault(name, (Component(name, obj, "test").obj, description)))
    return got


# -- registration ----------------------------------------------------------------------------------

def test_registration_through_entry_points():
    for module, name, cls in ((ft_plugin, "ft", FinetuneEditor), (et_plugin, "et", EditableTrainingEditor),
                              (ke_plugin, "ke", KnowledgeEditor)):
        assert module.LIME_TOOLKIT_API == "1"
        registered = collect(module.register_editors)
        assert registered[name][0] is cls and registered[name][1]
    editors = PluginManager().editors
    for name in ("ft", "et", "ke"):
        assert name in editors
    assert editors.get("et").obj.second_order and not editors.get("ke").obj.second_order
    assert not editors.get("ft").obj.trainable and not editors.get("ft").obj.supports_masks


# -- finetuning ------------------------------------------------------------------------------------

def test_ft_defaults(world):
    editor = FinetuneEditor(world.setup())
    assert (editor.lr, editor.max_steps, editor.optimizer) == (5e-6, 100, "adam")
    assert list(editor.parameters()) == []
    with pytest.raises(UserError, match="adam, rmsprop"):
        FinetuneEditor(world.setup(optimizer="sgd"))


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_ft_flips_the_prediction_and_stops_at_once(world, optimizer):
    case, lang = unsolved_cases(world)[0]
    batch = world.batch(case, lang)
    before = world.weights()
    editor = FinetuneEditor(world.setup(lr=1e-2, max_steps=60, optimizer=optimizer))
    system = world.system(editor)
    with torch.no_grad():  # evaluation edits under no_grad
        edited = system.edit(batch, lang)
    assert world.predicts_target(batch, edited)
    assert editor.last_solved and 0 < editor.last_steps < 60
    assert all(not t.requires_grad for t in edited.values())
    for n, p in world.model.named_parameters():  # functional: the model is untouched
        assert torch.equal(p, before[n])
    # It stopped at the first solved step: one step fewer does not solve the edit.
    shorter = FinetuneEditor(world.setup(lr=1e-2, max_steps=editor.last_steps - 1, optimizer=optimizer))
    with torch.no_grad():
        edited_short = world.system(shorter).edit(batch, lang)
    assert shorter.last_steps == editor.last_steps - 1 and not shorter.last_solved
    assert not world.predicts_target(batch, edited_short)


def test_ft_respects_max_steps(world):
    case, lang = unsolved_cases(world)[0]
    batch = world.batch(case, lang)
    editor = FinetuneEditor(world.setup(lr=1e-9, max_steps=3))
    edited = world.system(editor).edit(batch, lang)
    assert editor.last_steps == 3 and not editor.last_solved
    assert not world.predicts_target(batch, edited)
    base = dict(world.model.named_parameters())
    assert any(not torch.equal(edited[n], base[n]) for n in world.names)  # it did take the steps
    none = FinetuneEditor(world.setup(max_steps=0))
    edited = world.system(none).edit(batch, lang)
    assert none.last_steps == 0 and all(torch.equal(edited[n], base[n]) for n in world.names)


def test_ft_already_solved_edit_takes_no_step(world):
    solved = [(c, l) for c in world.cases for l in world.data.languages
              if world.predicts_target(world.batch(c, l))]
    assert solved
    editor = FinetuneEditor(world.setup(lr=1e-2))
    world.system(editor).edit(world.batch(*solved[0]), solved[0][1])
    assert editor.last_steps == 0 and editor.last_solved


def test_ft_with_masks_is_a_clear_user_error(world, tmp_path):
    with pytest.raises(UserError, match="cannot use masks.*--masks none"):
        world.system(FinetuneEditor(world.setup()), world.l0())

    from lime_toolkit.hookspecs import hookimpl
    from lime_toolkit_plugins import masks as masks_plugin

    class ToyPlugin:
        @hookimpl
        def register_datasets(self, register):
            register("toy", ToyDataset)

    world.model.save_pretrained(tmp_path / "model")
    world.tok.save_pretrained(tmp_path / "model")
    pm = PluginManager(load_entry_points=False)
    pm.register(ft_plugin, "ft")
    pm.register(masks_plugin, "masks")
    pm.register(ToyPlugin(), "toy")
    config = {"editor": "ft", "masks": "l0", "dataset": "toy", "model": str(tmp_path / "model"), "seed": 0,
              "device": "cpu", "edit": {"params": None, "last_n_layers": 2}}
    with pytest.raises(UserError, match="editor 'ft'.*cannot use masks 'l0'.*--masks none"):
        build_run(config, pm, out=tmp_path / "run")
    run = build_run({**config, "masks": "none"}, pm, out=tmp_path / "run")  # the identity strategy is fine
    assert run.system.masks is None and isinstance(run.system.editor, FinetuneEditor)


# -- Editable Training -----------------------------------------------------------------------------

def test_et_parameters_groups_and_state(world):
    editor = EditableTrainingEditor(world.setup())
    assert EditableTrainingEditor.default_lr == 5e-5 and editor.second_order
    weights = dict(world.model.named_parameters())
    for name in world.names:
        copy = editor.base_weight(name, weights[name])
        assert torch.equal(copy, weights[name]) and copy.data_ptr() != weights[name].data_ptr()
        assert copy.requires_grad and isinstance(copy, torch.nn.Parameter)
        assert editor.step_size(name).item() == pytest.approx(1e-2)
    keys = set(editor.state_dict())
    assert "base_weights.bert__encoder__layer__1__output__dense__weight" in keys
    assert "step_sizes.bert__encoder__layer__0__intermediate__dense__weight" in keys
    assert len(keys) == 2 * len(world.names)
    groups = editor.param_groups()
    assert [g["name"] for g in groups] == ["base_weights", "step_size"]
    assert "lr" not in groups[0] and groups[1]["lr"] == 1e-3
    optimizer = make_optimizer(world.run(world.system(editor)))
    assert [g["lr"] for g in optimizer.param_groups] == [5e-5, 1e-3]
    assert EditableTrainingEditor(world.setup(first_order=True, step_size_lr=0.5)).param_groups()[1]["lr"] == 0.5
    assert not EditableTrainingEditor(world.setup(first_order=True)).second_order
    with pytest.raises(KeyError, match="built for"):
        editor.step_size("bert.embeddings.word_embeddings.weight")


def test_et_edit_is_a_gradient_step_from_its_own_base_weights(world):
    editor = EditableTrainingEditor(world.setup(step_size_init=300.0))
    with torch.no_grad():  # move the copies away from the model: the edit must start from them
        for p in editor.base_weights.values():
            p.add_(1e-3 * torch.randn_like(p))
    system = world.system(editor)
    case, lang = unsolved_cases(world)[0]
    batch = world.batch(case, lang)
    with torch.no_grad():
        edited = system.edit(batch, lang)
    copies = {n: editor.base_weight(n, None).detach().clone().requires_grad_() for n in world.names}
    grads = torch.autograd.grad(edit_loss(world.model, batch, copies), list(copies.values()))
    for (name, copy), grad in zip(copies.items(), grads):
        torch.testing.assert_close(edited[name], copy.detach() - 300.0 * grad, atol=1e-5, rtol=1e-5)


def test_et_large_step_flips_toy_edits(world):
    system = world.system(EditableTrainingEditor(world.setup(step_size_init=300.0)))
    untrained = world.system(EditableTrainingEditor(world.setup()))  # α = 1e-2: too small on this model
    flipped = small = 0
    cases = unsolved_cases(world)[:4]
    for case, lang in cases:
        batch = world.batch(case, lang)
        with torch.no_grad():
            flipped += world.predicts_target(batch, system.edit(batch, lang))
            small += world.predicts_target(batch, untrained.edit(batch, lang))
    assert flipped == len(cases) and small == 0


def meta_grads(world, editor, masks=None):
    system = world.system(editor, masks).train()
    terms = meta_loss(world.run(system), world.sample(), LOSS_WEIGHTS)
    terms["loss"].backward()
    return terms


def test_et_meta_gradient_reaches_base_weights_and_step_sizes(world):
    torch.manual_seed(0)
    editor = EditableTrainingEditor(world.setup(step_size_init=10.0))
    terms = meta_grads(world, editor)
    assert terms["rel"] > 0 and terms["loc"] > 0
    for p in list(editor.base_weights.values()) + list(editor.step_sizes.values()):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert all(p.grad is None for p in world.model.parameters())  # the base model stays frozen
    # Full second order: dropping the second-order terms changes the base weights' meta-gradient.
    first = EditableTrainingEditor(world.setup(step_size_init=10.0, first_order=True))
    meta_grads(world, first)
    key = next(iter(editor.base_weights))
    second_grad, first_grad = editor.base_weights[key].grad, first.base_weights[key].grad
    assert first_grad.abs().sum() > 0
    assert not torch.allclose(second_grad, first_grad, rtol=1e-3, atol=1e-9)


def test_et_with_l0_masks_trains_the_masks(world):
    torch.manual_seed(0)
    editor, masks = EditableTrainingEditor(world.setup(step_size_init=10.0)), world.l0()
    meta_grads(world, editor, masks)
    lang = world.sample().edit.lang
    gate = masks.gates[lang][next(iter(editor.base_weights))]["x"]
    assert gate.scale.grad.abs().sum() > 0 and gate.log_alpha.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in editor.step_sizes.values())


def test_et_checkpoint_holds_the_base_weights(world, tmp_path):
    editor = EditableTrainingEditor(world.setup())
    with torch.no_grad():
        for p in editor.base_weights.values():
            p.mul_(2.0)
        for p in editor.step_sizes.values():
            p.fill_(0.5)
    save_checkpoint(tmp_path / "ckpt", world.system(editor), {"step": 1})
    fresh = EditableTrainingEditor(world.setup())
    load_checkpoint(tmp_path / "ckpt", world.system(fresh), None)
    weights = dict(world.model.named_parameters())
    for name in world.names:
        torch.testing.assert_close(fresh.base_weight(name, None), 2.0 * weights[name])
        assert fresh.step_size(name).item() == 0.5


# -- KnowledgeEditor -------------------------------------------------------------------------------

def test_ke_structure(world):
    editor = KnowledgeEditor(world.setup())
    table = world.model.get_input_embeddings().weight
    emb = editor.conditioner.embedding.weight
    assert torch.equal(emb, table) and emb.data_ptr() != table.data_ptr() and emb.requires_grad
    assert editor.hidden == editor.mlp_hidden == 32  # min(512, embedding dim) on the tiny model
    assert editor.conditioner.lstm.bidirectional and editor.conditioner.lstm.hidden_size == 32
    assert editor.conditioner.project.in_features == 64 and editor.conditioner.project.out_features == 32
    for name, (out_f, in_f) in world.shapes.items():
        head = editor.head(name)
        assert head.output.out_features == 2 * (out_f + in_f) + 1
        assert hasattr(head.hidden, "parametrizations") and hasattr(head.output.parametrizations, "weight")
    assert KnowledgeEditor.default_lr == 5e-5 and editor.step_size(world.names[0]) == 1.0
    assert any(k.startswith("conditioner.embedding") for k in editor.state_dict())
    assert KnowledgeEditor(world.setup(hidden=8, mlp_hidden=16, max_scale=3.0)).step_size(world.names[0]) == 3.0


def test_ke_delta_weight_formula(world):
    editor = KnowledgeEditor(world.setup())
    system = world.system(editor)
    case = world.cases[0]
    batch = world.batch(case)
    ctx = system.context(batch, "en")
    _, factors = capture_factors(world.model, batch, system.base_params())
    for name, (x, delta) in factors.items():
        out_f, in_f = world.shapes[name]
        values = editor.head(name).output(torch.tanh(editor.head(name).hidden(editor.condition(ctx))))
        col_a, row_a, col_b, row_b, eta = torch.split(values, [out_f, in_f, out_f, in_f, 1])
        a = torch.outer(col_a, torch.softmax(row_a, 0))
        b = torch.outer(col_b, torch.softmax(row_b, 0))
        expected = torch.sigmoid(eta) * ((delta.T @ x) * a + b)
        torch.testing.assert_close(editor.delta_weight(name, x, delta, ctx), expected)
        torch.testing.assert_close(a.sum(1), col_a)  # rank one, rows sum to col_a
    assert editor.condition(ctx) is editor.condition(ctx)  # computed once per edit


def test_ke_conditioner_ignores_padding_and_reads_the_input(world):
    editor = KnowledgeEditor(world.setup())
    short = Example("x", "en", f"anna in {TARGET_SLOT}", "rome")
    long = world.cases[1].inputs["en"]
    pair = encode_examples(world.tok, [short, long], MASKED_LM)
    assert (pair.inputs["attention_mask"] == 0).any()
    c = lambda b: editor.conditioner(b.inputs["input_ids"], b.inputs["attention_mask"])  # noqa: E731
    alone = [c(encode_examples(world.tok, [ex], MASKED_LM)) for ex in (short, long)]
    torch.testing.assert_close(c(pair), (alone[0] + alone[1]) / 2, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(alone[0], alone[1])


def test_ke_gradients_reach_the_conditioner_and_heads(world):
    torch.manual_seed(0)
    editor = KnowledgeEditor(world.setup())
    meta_grads(world, editor)
    named = dict(editor.named_parameters())
    for key in ("conditioner.embedding.weight", "conditioner.lstm.weight_ih_l0",
                "conditioner.lstm.weight_hh_l0_reverse", "conditioner.project.weight"):
        assert named[key].grad is not None and named[key].grad.abs().sum() > 0, key
    for name in world.names:
        for pname, p in editor.head(name).named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (name, pname)
    edit_ids = encode_examples(world.tok, [world.sample().edit], MASKED_LM).inputs["input_ids"][0]
    rows = editor.conditioner.embedding.weight.grad.abs().sum(1).nonzero().flatten().tolist()
    assert set(rows) <= set(edit_ids.tolist())  # only the edit input's tokens are read


def test_ke_update_direction_and_sign(world):
    """With the heads pinned to a = k/in (uniform), b = 0, σ(η) = 1, ΔW = (k/in)·∇W: the core's
    W' = W − ΔW is a gradient-descent step, and a large one flips the toy edits."""
    editor = KnowledgeEditor(world.setup())
    alpha = 300.0
    with torch.no_grad():
        for name, (out_f, in_f) in world.shapes.items():
            output = editor.head(name).output
            output.parametrizations.weight.original0.zero_()  # weight-norm magnitude g = 0
            bias = torch.zeros_like(output.bias)
            bias[:out_f] = alpha * in_f  # col_a; row_a = 0: uniform softmax
            bias[-1] = 40.0  # η: σ(η) = 1
            output.bias.copy_(bias)
    system = world.system(editor)
    for case, lang in unsolved_cases(world)[:4]:
        batch = world.batch(case, lang)
        with torch.no_grad():
            edited = system.edit(batch, lang)
        assert world.predicts_target(batch, edited), (case.id, lang)
    weights = dict(world.model.named_parameters())
    params = {n: weights[n].detach().clone().requires_grad_() for n in world.names}
    grads = torch.autograd.grad(edit_loss(world.model, batch, params), list(params.values()))
    for name, grad in zip(world.names, grads):
        torch.testing.assert_close(edited[name], weights[name] - alpha * grad, atol=1e-5, rtol=1e-4)


def test_ke_meta_steps_lower_the_meta_loss(world):
    """A few Adam steps on one fixed edit: the editor learns to lower the update loss."""
    torch.manual_seed(0)
    editor = KnowledgeEditor(world.setup(max_scale=100.0))
    system = world.system(editor).train()
    run = world.run(system, lr=1e-2)
    optimizer = make_optimizer(run)
    sample = world.sample()
    rels = []
    for _ in range(7):
        optimizer.zero_grad()
        terms = meta_loss(run, sample, LOSS_WEIGHTS)
        terms["loss"].backward()
        optimizer.step()
        rels.append(float(terms["rel"].detach()))
    assert all(math.isfinite(r) for r in rels)
    assert rels[-1] < rels[0] - 0.1, rels


def test_ke_with_l0_masks(world):
    torch.manual_seed(0)
    editor, masks = KnowledgeEditor(world.setup()), world.l0()
    meta_grads(world, editor, masks)
    lang = world.sample().edit.lang
    gate = masks.gates[lang][editor._keys[world.names[0]]]["delta"]
    assert gate.scale.grad.abs().sum() > 0 and gate.log_alpha.grad.abs().sum() > 0
    # masked factors scale ∇W's rows and columns before the editor builds ΔW
    system = world.system(editor, masks.eval())
    plain = world.system(editor)
    batch = world.batch(world.cases[0])
    with torch.no_grad():
        masked, unmasked = system.edit(batch, "en"), plain.edit(batch, "en")
    assert any(not torch.allclose(masked[n], unmasked[n]) for n in world.names)


# -- the core's training loop ----------------------------------------------------------------------

class QuietMonitor:
    def __init__(self):
        self.steps, self.validations = [], []

    def on_step(self, step, terms, steps_per_s):
        self.steps.append(terms)

    def on_validation(self, step, metrics, improved):
        self.validations.append(metrics)

    def on_edit(self):
        pass


@pytest.mark.parametrize("editor_cls", [EditableTrainingEditor, KnowledgeEditor])
def test_core_training_loop_with_l0_masks_checkpoints_and_resumes(world, tmp_path, editor_cls):
    """``lime_toolkit.training.train`` on the toy data: steps, validation, checkpoints, resume."""
    from lime_toolkit.config import defaults
    from lime_toolkit.training import train

    config = defaults()
    config["train"].update(max_steps=2, accumulate=1, val_every=2, val_edits=1, retain_per_edit=1, patience=0)
    torch.manual_seed(0)
    editor, masks = editor_cls(world.setup()), world.l0()
    run = Run(config, world.data, world.model, world.tok, world.system(editor, masks), tmp_path / "run",
              torch.device("cpu"))
    before = {k: v.clone() for k, v in editor.state_dict().items()}
    monitor = QuietMonitor()
    result = train(run, monitor)
    assert result.steps == 2 and len(monitor.steps) == 2 and len(monitor.validations) == 1
    assert all(math.isfinite(t["loss"]) for t in monitor.steps)
    after = editor.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the optimiser moved the editor
    for name in ("init", "last", "best"):
        assert (tmp_path / "run" / "checkpoints" / name).is_dir()
    # A fresh system loads the last checkpoint exactly (weight-norm and ParameterDict state included).
    torch.manual_seed(1)
    fresh_editor, fresh_masks = editor_cls(world.setup()), world.l0()
    fresh = world.system(fresh_editor, fresh_masks)
    load_checkpoint(tmp_path / "run" / "checkpoints" / "last", fresh)
    for k, v in fresh_editor.state_dict().items():
        assert torch.equal(v, after[k]), k
    rerun = Run(config, world.data, world.model, world.tok, fresh, tmp_path / "run", torch.device("cpu"))
    assert train(rerun, QuietMonitor()).resumed_from == 2  # finished: nothing left to do
