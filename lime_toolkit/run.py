"""What one run holds: its configuration, dataset, model, tokenizer, editing system, directory and
device (:class:`Run`). :mod:`lime_toolkit.runs.build` assembles one from a configuration.

Importing this module is cheap (no torch), so that the checks made before a model is loaded can
name the type."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lime_toolkit.data import SPLITS, EditCase, Example
from lime_toolkit.dataset_api import Dataset
from lime_toolkit.errors import UserError
from lime_toolkit.sampler import LanguageRoles

if TYPE_CHECKING:
    import torch

    from lime_toolkit.editing import EditingSystem


@dataclass
class Run:
    """Everything one training or evaluation run works with."""

    config: dict
    dataset: Dataset
    model: torch.nn.Module
    tokenizer: object
    system: EditingSystem
    out: Path
    device: torch.device

    @property
    def task(self) -> str:
        return self.dataset.task

    def roles(self, spec) -> LanguageRoles:
        return LanguageRoles.parse(spec, self.dataset.languages)

    def cases(self, split: str) -> list[EditCase]:
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
        return self.dataset.edit_cases(split, predict=self.predictor())

    def pool(self, split: str) -> dict[str, list[Example]]:
        return self.dataset.locality_pool(split)

    def predictor(self):
        import torch

        from lime_toolkit.encoding import encode_examples
        from lime_toolkit.models import decode_predictions, position_logits

        def predict(examples):
            out = []
            for i in range(0, len(examples), 64):
                batch = encode_examples(self.tokenizer, examples[i:i + 64], self.task).to(self.device)
                with torch.no_grad():
                    pred = position_logits(self.model, batch).argmax(-1)
                out += decode_predictions(self.tokenizer, batch, pred.cpu())
            return out

        return predict
