"""The data model every dataset plugin produces and the core consumes.

A dataset is a set of *parallel items*: the same content (a fact, a sentence pair) expressed in
several languages and linked by an ``id``. An :class:`Example` is one item in one language. An
:class:`EditCase` is one edit request: the item's parallel inputs, each carrying the *desired*
target in its own language. Locality ("retain") inputs are plain examples whose prediction must
not change.

Two task kinds are supported by the core:

* ``"masked-lm"``: ``text`` holds the placeholder :data:`TARGET_SLOT` where the answer goes. The
  core replaces it by as many mask tokens as the target has word pieces (or ``n_masks`` when the
  example has no target, as locality inputs do) and predicts those positions.
* ``"classification"``: ``text`` is a string or a ``(premise, hypothesis)`` pair and ``target``
  a class index.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union

TARGET_SLOT = "[Y]"
MASKED_LM = "masked-lm"
CLASSIFICATION = "classification"
TASKS = (MASKED_LM, CLASSIFICATION)
SPLITS = ("train", "dev", "test")

Text = Union[str, tuple[str, str]]


@dataclass(frozen=True)
class Example:
    """One input in one language.

    ``id`` links parallel examples across languages. ``target`` is the label to predict (a string
    for masked-LM tasks, a class index for classification) or ``None`` for a locality input, in
    which case masked-LM examples give ``n_masks`` instead.
    """

    id: str
    lang: str
    text: Text
    target: Union[str, int, None] = None
    n_masks: int | None = None


@dataclass(frozen=True)
class EditCase:
    """One edit: a parallel item with its desired target in every language it exists in.

    ``inputs`` maps language -> example whose ``target`` is the desired (edited) prediction in that
    language. ``meta`` is free-form information for reports (relation, true object ...).
    ``edit_langs`` restricts the languages in which the case may be the *edit* input (``None``: every
    language of ``inputs``); the other languages' inputs still serve as update inputs. XNLI's test
    edits use it: a pair is edited only in the languages where the base model gets it wrong.
    ``alternatives`` are other desired targets that are just as valid for this item (language ->
    target each, e.g. every other object of the relation): the training sampler draws among the
    case's own targets and these, so an editor meets each item with many targets and cannot learn
    a fixed item -> target table. Evaluation always uses ``inputs``.
    """

    id: str
    inputs: dict[str, Example]
    meta: dict = field(default_factory=dict, compare=False)
    edit_langs: tuple[str, ...] | None = None
    alternatives: tuple[dict[str, Union[str, int]], ...] = ()

    def with_targets(self, targets: dict[str, Union[str, int]]) -> "EditCase":
        """The same edit with other desired targets (language -> target; languages not named keep
        theirs)."""
        inputs = {lang: replace(ex, target=targets.get(lang, ex.target)) for lang, ex in self.inputs.items()}
        return replace(self, inputs=inputs, alternatives=())

    def can_edit_in(self, lang: str) -> bool:
        """Whether ``lang`` may be this case's edit language."""
        return lang in self.inputs and (self.edit_langs is None or lang in self.edit_langs)

    @property
    def languages(self) -> list[str]:
        return list(self.inputs)
