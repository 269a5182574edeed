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
    train_langs: tuple[str, ...] = ("en",)  # languages the classifier is fine-tuned on; "all": every selected one
    vocab_size: int = 16000
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 256
    dropout: float = 0.0  # the tiny model's dropout (0: it fits its pairs with confident predictions)
    # pre-training of the tiny encoder (masked LM + alignment of parallel pairs; unlabelled text)
    pretrain_splits: tuple[str, ...] = ("train", "dev", "test")  # editing splits whose text it reads
    pretrain_epochs: int = 6
    pretrain_minutes: float = 10.0  # a safety net: pre-training stops after this long (epochs decide first)
    pretrain_lr: float = 1e-3
    mask_prob: float = 0.15
    align_weight: float = 1.0  # 0: masked LM only
    align_layers: tuple[int, ...] = (-1, 0)  # layers whose [CLS] states are aligned (0: the last, -1: the one before)
    align_temperature: float = 0.1
    align_pairs: int = 16  # pairs per pre-training batch ...
    align_langs: int = 4  # ... each in this many languages
    finetune_align_weight: float = 1.0  # alignment of the train split's parallel pairs while fine-tuning
    consistency_weight: float = 0.0  # ... and agreement of their predictions across languages (measured: no gain)
    # fine-tuning the classifier
    epochs: int = 30
    max_minutes: float = 10.0  # a safety net: fine-tuning stops after this long (epochs decide first)
    keep: str = "auto"  # best (dev accuracy) | last epoch | auto: best for base_model, last for the tiny model
    batch_size: int = 32
    learning_rate: float = 2e-3
    max_length: int = 128
    builder_version: int = 2

    @classmethod
    def from_extra(cls, extra: dict[str, Any] | None) -> "XnliSettings":
        """Settings from ``DatasetOptions.extra`` (unknown keys and unreadable values are errors)."""
        return settings_from_options(cls, extra, owner="xnli")

    def validate(self) -> None:
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) <= 0:
            raise UserError(f"xnli split {self.split} must be three positive shares (train, dev, test) summing to 1")
        if len(self.dev_split) != 2 or abs(sum(self.dev_split) - 1) > 1e-6 or min(self.dev_split) <= 0:
            raise UserError(f"xnli dev_split {self.dev_split} must be two positive shares (train, dev) summing to 1")
        bad = [x for x in self.pretrain_splits if x not in ("train", "dev", "test")]
        if bad:
            raise UserError(f"xnli pretrain_splits {', '.join(bad)} unknown; choose from train, dev, test")
        if self.align_pairs < 2 or self.align_langs < 1:
            raise UserError("xnli align_pairs must be at least 2 and align_langs at least 1")
        if self.keep not in ("auto", "best", "last"):
            raise UserError(f"xnli keep={self.keep!r} is not one of auto, best, last")
        if self.source not in ("auto", "jsonl", "tsv", "hf"):
            raise UserError(f"unknown xnli source {self.source!r}; choose auto, jsonl, tsv or hf")

    def fine_tune_languages(self, available: list[str]) -> list[str]:
        """``train_langs`` with "all" read as every language in ``available``."""
        if "all" in self.train_langs:
            return list(available)
        return list(dict.fromkeys(self.train_langs))

    def model_dict(self) -> dict[str, Any]:
        """The settings that decide the base model (keys its cache entry)."""
        skip = {"exclude_current"}
        return {k: v for k, v in asdict(self).items() if k not in skip}
