"""Dataset-specific settings of the ``mlama`` dataset (``DatasetOptions.extra`` / ``dataset_options``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lime_toolkit.errors import UserError
from lime_toolkit.toolbox.settings import settings_from_options

from .preset import PRESETS

#: Languages the prepared tiny model of the ``full`` preset is pre-trained on when no --langs is
#: given: a handful of scripts (Latin, Cyrillic, Han) that fit a few minutes of CPU.
DEFAULT_MODEL_LANGUAGES = ("en", "de", "fr", "es", "ru", "zh")
#: Fields the ``core`` preset's builder adds (the ``full`` builder ignores them, and they do not
#: key its models, so a ``full`` model prepared before the presets existed is still found).
CORE_ONLY = ("preset", "warmup", "code_switch", "replay", "align_weight", "align_layers", "align_temperature",
             "target_recall", "eval_every")


@dataclass(frozen=True)
class MlamaSettings:
    """Every mLAMA setting. ``tokenizer`` (not a field: see :meth:`from_extra`) may also be given."""

    preset: str = "core"  # "core": the world of preset.py; "full": the whole release
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
    # the core builder's objectives (see core_model.py); the full builder ignores them
    warmup: float = 0.1  # share of the steps spent warming the learning rate up
    code_switch: float = 0.2  # code-switched rows (subject in another script) per epoch, per native one
    replay: float = 0.3  # extra rows per epoch, per native one, drawn from the facts still missed
    align_weight: float = 1.0  # weight of the cross-lingual alignment objective at the object slot
    align_layers: tuple[int, ...] = (2, 3)  # hidden states aligned (k: layer k's output)
    align_temperature: float = 0.1
    target_recall: float = 0.9  # stop once every language recalls this share of its facts
    eval_every: int = 2  # epochs between recall measurements
    builder_version: int = 1

    @classmethod
    def core(cls) -> "MlamaSettings":
        """The defaults of the ``core`` preset: a 4-layer model trained until it holds the world."""
        return cls(vocab_size=4000, hidden_size=128, num_layers=4, num_heads=4, intermediate_size=256,
                   max_epochs=36, max_minutes=14.0, batch_size=128, learning_rate=4e-3, random_mask_prob=0.05,
                   recall_sample=0)

    @classmethod
    def from_extra(cls, extra: dict[str, Any] | None) -> tuple["MlamaSettings", Any]:
        """``(settings, tokenizer)`` from ``DatasetOptions.extra``; ``tokenizer`` is a tokenizer object,
        a directory / hub id to load one from, or ``None``. ``preset`` ("core", the default, or
        "full") chooses the defaults the other options change."""
        extra = dict(extra or {})
        tokenizer = extra.pop("tokenizer", None)
        preset = extra.get("preset", "core")
        if preset not in PRESETS:
            raise UserError(f"unknown mlama preset {preset!r}; use one of {', '.join(PRESETS)} "
                            f"(dataset_options: {{preset: core}})")
        base = cls.core() if preset == "core" else cls(preset="full")
        return settings_from_options(cls, extra, owner="mlama", base=base, also=("tokenizer",)), tokenizer

    def validate(self) -> None:
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) <= 0:
            raise UserError(f"mlama split {self.split} must be three positive shares (train, dev, test) summing to 1")

    def model_dict(self) -> dict[str, Any]:
        """The settings that decide the base model (key its cache entry): for ``full``, the same
        keys as before the presets existed."""
        skip = ("split", "split_seed") + (CORE_ONLY if self.preset == "full" else ())
        return {k: v for k, v in asdict(self).items() if k not in skip}

