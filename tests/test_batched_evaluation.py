"""Batched evaluation gives every edit the same outcome as the one-edit-at-a-time loop.

On the tiny random masked LM (``lime_toolkit.testing``), with MEND whose networks are moved off
their identity start and LiME masks with spread-out gates, and with Editable Training whose base
weights differ from the model's: the records (per edit, each update input took or not, each retain
input kept or not) of batches of several sizes equal the loop's, record for record. The step sizes
are chosen so that the records are mixed (some edits take, some retain inputs change): identical
all-False records would prove nothing.
"""
from __future__ import annotations

import pytest
import torch

from lime_toolkit.architectures import editable_parameters
from lime_toolkit.batched_evaluation import (
    DEFAULT_BATCH_SIZE,
    ROWS_PER_PASS,
    capture_example_factors,
    resolve_batch_size,
)
from lime_toolkit.editing import EditingSystem
from lime_toolkit.editor_api import EditorSetup
from lime_toolkit.encoding import encode_examples
from lime_toolkit.evaluation import EvalSettings, edit_records, evaluate, plan_edits
from lime_toolkit.factored_updates import FactoredUpdates, edits_are_low_rank
from lime_toolkit.factors import capture_factors
from lime_toolkit.mask_api import MaskSetup
from lime_toolkit.shared_prefix import layer_stack
from lime_toolkit.testing import ToyDataset, tiny_masked_lm
from lime_toolkit_plugins.et.editor import EditableTrainingEditor
from lime_toolkit_plugins.ft.editor import FinetuneEditor
from lime_toolkit_plugins.ke.editor import KnowledgeEditor
from lime_toolkit_plugins.masks.strategies import L0Masks
from lime_toolkit_plugins.mend.editor import MendEditor

SPLITS = ("train", "dev", "test")
SETTINGS = EvalSettings(["en", "de"], ["en", "de"], n_update=0, n_retain=4)


class World:
    def __init__(self, layers: int = 2):
        self.model, self.tok = tiny_masked_lm(layers=layers)
        self.names = editable_parameters(self.model, last_n_layers=2)
        self.shapes = {n: tuple(p.shape) for n, p in self.model.named_parameters() if n in self.names}
        self.data = ToyDataset()
        self.cases = [c for s in SPLITS for c in self.data.edit_cases(s)]
        self.pool = {l: [e for s in SPLITS for e in self.data.locality_pool(s)[l]] for l in self.data.languages}

    def setup(self, **options) -> EditorSetup:
        return EditorSetup(self.model, dict(self.shapes), self.data.languages, options)

    def mend(self, step: float) -> MendEditor:
        torch.manual_seed(1)
        editor = MendEditor(self.setup(rank=8, step_size_init=step))
        with torch.no_grad():  # off the identity start: the transform really changes the factors
            for network in editor.networks.values():
                for layer in network.layers:
                    layer.u.normal_(0, 0.05)
        return editor

    def l0(self) -> L0Masks:
        torch.manual_seed(2)
        return L0Masks(MaskSetup(dict(self.shapes), self.data.languages, {"log_alpha_init_std": 2.0}))

    def records(self, system: EditingSystem, batch_size: int):
        return edit_records(system.eval(), self.tok, "masked-lm", plan_edits(self.cases, self.pool, SETTINGS),
                            batch_size)


@pytest.fixture(scope="module")
def world():
    return World()


@pytest.fixture(scope="module")
def deep_world():
    """Four layers, the last two edited: the edited pass starts at layer 2 from recorded states."""
    return World(layers=4)


def mixed(records) -> bool:
    took = [ok for r in records for _, ok in r.updates]
    kept = [ok for r in records for _, ok in r.retains]
    return 0 < sum(took) < len(took) and 0 < sum(kept) < len(kept)


@pytest.mark.parametrize("masks, step", [(False, 20.0), (True, 10.0)], ids=["mend", "mend+l0"])
def test_batched_records_equal_the_loops(world, masks, step):
    system = EditingSystem(world.model, world.names, world.mend(step), world.l0() if masks else None)
    loop = world.records(system, 1)
    assert len(loop) == 16 and mixed(loop)
    for size in (2, 5, 16, 64):  # uneven last batches, one batch, a batch larger than the edits
        assert world.records(system, size) == loop


@pytest.mark.parametrize("masks, step", [(False, 20.0), (True, 10.0)], ids=["mend", "mend+l0"])
def test_batched_records_equal_the_loops_when_the_first_layers_are_shared(deep_world, masks, step):
    system = EditingSystem(deep_world.model, deep_world.names, deep_world.mend(step),
                           deep_world.l0() if masks else None)
    stack = layer_stack(deep_world.model, deep_world.names)
    assert stack is not None and stack.first == 2 and stack.layers is deep_world.model.bert.encoder.layer
    entered = []
    first = deep_world.model.bert.encoder.layer[0]
    hook = first.register_forward_hook(lambda *_: entered.append(1))
    try:
        loop = deep_world.records(system, 1)
        runs_with_loop = len(entered)
        batched = deep_world.records(system, 16)
    finally:
        hook.remove()
    assert mixed(loop) and batched == loop
    # 16 edits in one batch: the first layer runs for the edit inputs (1 pass), the edited pass over
    # the 32 update inputs (1 group) and the unedited pass over the distinct retain inputs (groups of
    # at most 48), never for the retain inputs' edited pass
    jobs = list(plan_edits(deep_world.cases, deep_world.pool, SETTINGS))
    distinct = len({ex for job in jobs for ex in job.retains})
    assert distinct < sum(len(job.retains) for job in jobs)  # the draws repeat some inputs
    assert len(entered) - runs_with_loop == 1 + 1 + -(-distinct // ROWS_PER_PASS)
    assert list(deep_world.model.bert.encoder.layer)[0] is first  # the layers are put back


def test_the_unedited_results_shared_between_batches_and_dropped_when_full_change_nothing(deep_world):
    from lime_toolkit.batched_evaluation import check_edits
    from lime_toolkit.shared_prefix import UneditedCache

    system = EditingSystem(deep_world.model, deep_world.names, deep_world.mend(10.0), deep_world.l0()).eval()
    jobs = list(plan_edits(deep_world.cases, deep_world.pool, SETTINGS))
    loop = deep_world.records(system, 1)
    small = UneditedCache(max_inputs=3)  # fewer than one batch's retain inputs: entries are dropped
    records = [r for start in range(0, len(jobs), 4) for r in check_edits(system, deep_world.tok, "masked-lm",
                                                                            jobs[start:start + 4], small)]
    assert records == loop and len(small.entries) == 3
    shared = UneditedCache()
    for start in range(0, len(jobs), 4):
        check_edits(system, deep_world.tok, "masked-lm", jobs[start:start + 4], shared)
    assert len(shared.entries) == len({ex for job in jobs for ex in job.retains})


def test_no_sharing_when_an_edited_weight_is_in_the_first_layer_or_outside_the_layers(world, deep_world):
    assert layer_stack(world.model, world.names) is None  # the last 2 of 2 layers: layer 0 is edited
    assert layer_stack(deep_world.model, deep_world.names + ["bert.embeddings.word_embeddings.weight"]) is None
    assert layer_stack(deep_world.model, ["cls.predictions.transform.dense.weight"]) is None


def test_editable_training_uses_its_own_base_weights_in_batches_too(world):
    torch.manual_seed(3)
    editor = EditableTrainingEditor(world.setup(step_size_init=30.0))
    with torch.no_grad():
        for w in editor.base_weights.values():
            w.add_(torch.randn_like(w) * 0.2)
    system = EditingSystem(world.model, world.names, editor, world.l0())
    loop = world.records(system, 1)
    assert mixed(loop) and world.records(system, 3) == loop


def test_evaluate_reports_the_same_metrics_batched_and_in_a_loop(world):
    system = EditingSystem(world.model, world.names, world.mend(20.0), world.l0())
    import dataclasses

    one = evaluate(system, world.tok, "masked-lm", world.cases, world.pool, dataclasses.replace(SETTINGS, batch_size=1))
    many = evaluate(system, world.tok, "masked-lm", world.cases, world.pool, dataclasses.replace(SETTINGS, batch_size=7))
    assert one == many and one["edits"] == 16


def test_only_low_rank_editors_are_batched(world):
    mend = EditingSystem(world.model, world.names, world.mend(1.0), None)
    ke = EditingSystem(world.model, world.names, KnowledgeEditor(world.setup()), None)
    ft = EditingSystem(world.model, world.names, FinetuneEditor(world.setup(max_steps=2)), None)
    assert edits_are_low_rank(mend) and not edits_are_low_rank(ke) and not edits_are_low_rank(ft)
    assert resolve_batch_size(mend, None) == DEFAULT_BATCH_SIZE > 1 and resolve_batch_size(mend, 4) == 4
    assert resolve_batch_size(ke, 8) == 1 and resolve_batch_size(ft, None) == 1


def test_per_example_factors_are_each_inputs_own(world):
    """A padded batch of edit inputs gives each input the factors a pass on it alone gives."""
    params = {n: p for n, p in world.model.named_parameters() if n in world.names}
    examples = [world.cases[0].inputs["en"], world.cases[3].inputs["de"], world.cases[5].inputs["en"]]
    together = capture_example_factors(world.model, encode_examples(world.tok, examples, "masked-lm"), params)
    for example, got in zip(examples, together):
        _, alone = capture_factors(world.model, encode_examples(world.tok, [example], "masked-lm"), params)
        for name in world.names:
            assert got[name][0].shape == alone[name][0].shape
            torch.testing.assert_close(got[name][0], alone[name][0])
            torch.testing.assert_close(got[name][1], alone[name][1])


def test_a_factored_update_is_the_dense_update_applied():
    torch.manual_seed(0)
    x1, d1, x2, d2 = torch.randn(3, 6), torch.randn(3, 4), torch.randn(2, 6), torch.randn(2, 4)
    updates = FactoredUpdates([{"w": (x1, d1)}, {"w": (x2, d2)}])
    inputs = torch.randn(3, 5, 6)  # rows 0 and 2 belong to edit 1, row 1 to edit 0
    owner = torch.tensor([1, 0, 1])
    got = updates.correction("w", inputs, owner)
    dense = [d1.T @ x1, d2.T @ x2]
    for r in range(3):
        torch.testing.assert_close(got[r], inputs[r] @ dense[owner[r]].T)


# -- every supported architecture, both tasks --------------------------------------------------------

from test_architectures import (  # noqa: E402
    ARCHITECTURES,
    TASKS,
    built,  # noqa: E402,F401  (a fixture: pytest finds it by name)
    dataset_for,
)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_batched_records_equal_the_loops_on_every_architecture(built, model_type, task):  # noqa: F811 (the fixture)
    """BERT, XLM-R, DistilBERT and DeBERTa-v2, masked LM and classification, the last layer edited:
    the edited pass starts after the shared first layers (DeBERTa-v2: computes them again)."""
    model, tok = built(model_type, task)
    data = dataset_for(task)
    names = editable_parameters(model, last_n_layers=1)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in names}
    assert (layer_stack(model, names) is not None) == (model_type != "deberta-v2")
    torch.manual_seed(1)
    editor = MendEditor(EditorSetup(model, dict(shapes), data.languages, {"rank": 8, "step_size_init": 50.0}))
    with torch.no_grad():
        for network in editor.networks.values():
            for layer in network.layers:
                layer.u.normal_(0, 0.05)
    torch.manual_seed(2)
    masks = L0Masks(MaskSetup(dict(shapes), data.languages, {"log_alpha_init_std": 2.0}))
    system = EditingSystem(model, names, editor, masks).eval()
    cases = [c for s in SPLITS for c in data.edit_cases(s)]
    pool = {l: [e for s in SPLITS for e in data.locality_pool(s)[l]] for l in data.languages}

    def records(size):
        return edit_records(system, tok, task, plan_edits(cases, pool, SETTINGS), size)

    loop = records(1)
    assert len(loop) == 16 and records(5) == loop
    assert any(ok for r in loop for _, ok in r.updates)  # the edits do something
