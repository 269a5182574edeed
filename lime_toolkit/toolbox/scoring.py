"""How well a base model does, per language: recall of masked-slot facts, accuracy of a classifier.

Contract: the examples carry the expected answer as ``target`` and are encoded with the core's
:func:`~lime_toolkit.encoding.encode_examples`, exactly as a run encodes them, so a number measured
here is what an evaluation of the same model sees. Both scores are one forward pass per batch in
eval mode under ``torch.no_grad()``; the model's train/eval mode is restored afterwards. Results
map each language, in the order of its first example, to a share in [0, 1].

- :func:`slot_logits` / :func:`slot_predictions`: logits / argmax at chosen positions of a batch.
- :func:`recall_per_language`: masked-LM examples whose every ``[MASK]`` is predicted right.
- :func:`accuracy_per_language`: classification examples whose class is predicted right.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from lime_toolkit.data import CLASSIFICATION, MASKED_LM, Example
from lime_toolkit.encoding import encode_examples


def slot_logits(model, inputs: dict, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The masked LM's logits at positions ``(rows, cols)`` of the batch ``inputs``: [positions, vocab].

    For a ``BertForMaskedLM`` only those positions go through the LM head (the vocabulary
    projection dominates the cost); other models are run whole."""
    from transformers import BertForMaskedLM

    if isinstance(model, BertForMaskedLM):
        return model.cls(model.bert(**inputs).last_hidden_state[rows, cols])
    return model(**inputs).logits[rows, cols]


def slot_predictions(model, inputs: dict, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The argmax token id at positions ``(rows, cols)``: [positions]."""
    return slot_logits(model, inputs, rows, cols).argmax(-1)


def share_per_language(examples: Iterable[Example], correct: Iterable[bool]) -> dict[str, float]:
    """Per language (in the order of its first example), the share of ``examples`` that are ``correct``."""
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for ex, ok in zip(examples, correct):
        totals[ex.lang] = totals.get(ex.lang, 0) + 1
        hits[ex.lang] = hits.get(ex.lang, 0) + bool(ok)
    return {lang: hits[lang] / totals[lang] for lang in totals}


@torch.no_grad()
def recall_per_language(model, tokenizer, examples: Sequence[Example], *, device=None,
                        batch_size: int = 512) -> dict[str, float]:
    """Per language, the share of masked-LM ``examples`` whose every ``[MASK]`` position is
    argmax-correct (one forward pass, no iterative decoding)."""
    was_training = model.training
    model.eval()
    correct: list[bool] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = encode_examples(tokenizer, chunk, MASKED_LM)
        if device is not None:
            batch = batch.to(device)
        ok = (slot_predictions(model, batch.inputs, batch.rows, batch.cols) == batch.labels).cpu()
        wrong_rows = set(batch.rows.cpu()[~ok].tolist())
        correct += [i not in wrong_rows for i in range(len(chunk))]
    model.train(was_training)
    return share_per_language(examples, correct)


@torch.no_grad()
def accuracy_per_language(model, tokenizer, examples: Sequence[Example], *, device=None, max_length: int = 128,
                          batch_size: int = 256) -> dict[str, float]:
    """Per language, the share of classification ``examples`` (gold class index as ``target``)
    whose argmax class is the target."""
    was_training = model.training
    model.eval()
    correct: list[bool] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = encode_examples(tokenizer, chunk, CLASSIFICATION, max_length)
        if device is not None:
            batch = batch.to(device)
        predicted = model(**batch.inputs).logits.argmax(-1).cpu().tolist()
        correct += [p == ex.target for ex, p in zip(chunk, predicted)]
    model.train(was_training)
    return share_per_language(examples, correct)
