"""Dataset-specific settings of the ``mlama`` dataset (``DatasetOptions.extra`` / ``dataset_options``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lime_toolkit.errors import UserError
from lime_toolkit.toolbox.settings import settings_from_options

#: Languages the prepared tiny model is pre-trained on when no --langs is given: a handful of
#: scripts (Latin, Cyrillic, Han) that fit a few minutes of CPU.
DEFAULT_MODEL_LANGUAGES = ("en", "de", "fr", "es", "ru", "zh")


@dataclass(frozen=True)
class MlamaSettings:
    """Every mLAMA setting. ``tokenizer`` (not a field: see :meth:`from_extra`) may also be given."""

    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train/dev/test shares of subjects
    split_seed: int = 0  # the split does not move with the run's seed

    model_languages: tuple[str, ...] = DEFAULT_MODEL_LANGUAGES  # prepare-base without --langs
    vocab_size: int = 12000
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 256
    max_epochs: int = 30
    max_minutes: float = 6.0  # pre-training stops after this long (then finishes the epoch's report)
    batch_size: int = 256
    learning_rate: float = 2e-3
    random_mask_prob: float = 0.1  # extra BERT-style masking of non-object tokens
    recall_sample: int = 2000  # facts per language used to report recall
    builder_version: int = 1

    @classmethod
    def from_extra(cls, extra: dict[str, Any] | None) -> tuple["MlamaSettings", Any]:
        """``(settings, tokenizer)`` from ``DatasetOptions.extra``; ``tokenizer`` is a tokenizer object,
        a directory / hub id to load one from, or ``None``."""
        extra = dict(extra or {})
        tokenizer = extra.pop("tokenizer", None)
        return settings_from_options(cls, extra, owner="mlama", also=("tokenizer",)), tokenizer

    def validate(self) -> None:
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) <= 0:
            raise UserError(f"mlama split {self.split} must be three positive shares (train, dev, test) summing to 1")

    def model_dict(self) -> dict[str, Any]:
        """The settings that decide the base model (key its cache entry)."""
        return {k: v for k, v in asdict(self).items() if k not in ("split", "split_seed")}
