"""Dataset-specific settings of the ``xnli`` dataset (``DatasetOptions.extra`` / ``dataset_options``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lime_toolkit.errors import UserError
from lime_toolkit.toolbox.settings import settings_from_options


@dataclass(frozen=True)
class XnliSettings:
    """Every XNLI setting. The first group decides what is read and how it is split into editing
    splits, the second the editing targets, the third the base model ``prepare-base`` builds."""

    source: str = "auto"  # auto | jsonl | tsv | hf
    hf_name: str = "facebook/xnli"
    split: tuple[float, float, float] = (0.6, 0.1, 0.3)  # train/dev/test shares of premise groups (one file)
    dev_split: tuple[float, float] = (0.85, 0.15)  # train/dev shares of the dev file when a test file exists
    split_seed: int = 0  # the split does not move with the run's seed

    exclude_current: bool = False  # train/dev edits: never ask for the base model's current prediction

    base_model: str | None = None  # a hub id or directory to fine-tune instead of the tiny BERT
    train_langs: tuple[str, ...] = ("en",)  # languages the base model is fine-tuned on
    vocab_size: int = 8000
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 256
    epochs: int = 10
    max_minutes: float = 5.0  # training stops after this long (the best epoch so far is kept)
    batch_size: int = 32
    learning_rate: float = 1e-3
    max_length: int = 128
    builder_version: int = 1

    @classmethod
    def from_extra(cls, extra: dict[str, Any] | None) -> "XnliSettings":
        """Settings from ``DatasetOptions.extra`` (unknown keys and unreadable values are errors)."""
        return settings_from_options(cls, extra, owner="xnli")

    def validate(self) -> None:
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) <= 0:
            raise UserError(f"xnli split {self.split} must be three positive shares (train, dev, test) summing to 1")
        if len(self.dev_split) != 2 or abs(sum(self.dev_split) - 1) > 1e-6 or min(self.dev_split) <= 0:
            raise UserError(f"xnli dev_split {self.dev_split} must be two positive shares (train, dev) summing to 1")
        if self.source not in ("auto", "jsonl", "tsv", "hf"):
            raise UserError(f"unknown xnli source {self.source!r}; choose auto, jsonl, tsv or hf")

    def model_dict(self) -> dict[str, Any]:
        """The settings that decide the base model (keys its cache entry)."""
        skip = {"exclude_current"}
        return {k: v for k, v in asdict(self).items() if k not in skip}
