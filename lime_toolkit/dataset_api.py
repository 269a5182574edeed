"""The contract a dataset plugin implements (see docs/plugins.md).

A dataset plugin registers a subclass of :class:`Dataset` under a name. The core constructs it with
:class:`DatasetOptions`, then asks it for edit cases and locality inputs per split. Everything a
dataset returns must be in a defined order (sorted ids, configured language order) so that the same
seed gives the same run.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from lime_toolkit.data import EditCase, Example

#: ``predict(examples) -> predictions``: the base model's prediction for each example (a string for
#: masked-LM tasks, a class index for classification). Passed to datasets whose test edits depend on
#: what the base model gets wrong.
Predictor = Callable[[Sequence[Example]], list]


@dataclass
class DatasetOptions:
    """Settings every dataset understands; ``extra`` holds dataset-specific ones."""

    data_dir: Path | None = None
    languages: list[str] | None = None  # None: every language the data has, in its own order
    limit: int | None = None  # at most this many items per split (quick runs)
    seed: int = 0
    cache_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Dataset(ABC):
    """A parallel multilingual dataset for cross-lingual editing.

    Subclasses set ``task`` (``"masked-lm"`` or ``"classification"``), ``num_labels`` for
    classification, and implement the abstract methods.
    """

    task: str
    num_labels: int | None = None
    description: str = ""

    def __init__(self, options: DatasetOptions):
        self.options = options

    @property
    @abstractmethod
    def languages(self) -> list[str]:
        """The dataset's languages in their defined order (``options.languages`` if given)."""

    @abstractmethod
    def edit_cases(self, split: str, *, predict: Predictor | None = None) -> list[EditCase]:
        """Edit requests of ``split`` ("train", "dev" or "test"), each with desired targets in every
        language. ``predict`` is the base model's predictor, for datasets whose edits depend on it
        (XNLI's test edits are the base model's errors); datasets that do not need it ignore it."""

    @abstractmethod
    def locality_pool(self, split: str) -> dict[str, list[Example]]:
        """Unrelated inputs per language for measuring locality (targets ``None``)."""

    @abstractmethod
    def default_model(self) -> str:
        """A model name or directory to use when the user gives no ``--model``. May build and cache
        a model (the demo does); raises :class:`lime_toolkit.errors.UserError` saying how to get one
        when none is available."""

    def bind_tokenizer(self, tokenizer) -> None:
        """Called by the core with the base model's tokenizer once it is loaded, before any
        ``edit_cases`` / ``locality_pool`` call of a run (mLAMA counts its locality inputs' masks in
        this tokenizer's word pieces). Optional: the default ignores it."""

    def prepare_base_model(self, out_dir: Path | None = None, *, progress=None) -> Path:
        """Build the base model for this dataset (``lime-toolkit prepare-base``); returns its
        directory. Optional: the default says the dataset has no such step."""
        from lime_toolkit.errors import UserError

        raise UserError(f"dataset '{type(self).__name__}' has no prepare-base step; pass --model")

    def describe(self) -> dict[str, dict[str, int]]:
        """Row counts as read: ``{language: {split: count}}``."""
        return {
            lang: {split: sum(1 for c in self.edit_cases(split) if lang in c.inputs) for split in ("train", "dev", "test")}
            for lang in self.languages
        }
