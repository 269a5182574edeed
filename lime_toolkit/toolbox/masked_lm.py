"""Building and pre-training a small BERT from a dataset's examples.

Contract: the functions here are the deterministic pieces of a training loop; the loop itself (what
is trained on, when to stop, what to log) stays with the dataset. None of them draws from torch's
global random generator except model construction (:func:`new_masked_lm`, or a transformers model
built from :func:`bert_config`), which initialises weights from it; the random ones take an explicit
``torch.Generator``. So a build that seeds its generators gives the same model every time.

- :func:`bert_config`: a ``BertConfig`` from the tokenizer and a settings object with the usual
  size fields (``hidden_size``, ``num_layers``, ``num_heads``, ``intermediate_size``).
- :func:`new_masked_lm`: a randomly initialised ``BertForMaskedLM`` from that config.
- :func:`encode_slot_rows`, :func:`pad_rows`, :func:`model_inputs`: masked-LM examples (object slot
  masked, ``target`` its answer) as unpadded ``(ids, labels)`` rows, padded batches of them, and
  the model's inputs for a batch.
- :func:`random_mask`: BERT-style extra masking of the ordinary tokens.
- :class:`WarmupDecay`: linear warm-up, then linear decay (to a floor) of the learning rate.
- :func:`optimizer_step`: backward, gradient clipping, optimiser and scheduler step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from lime_toolkit.data import MASKED_LM, Example
from lime_toolkit.encoding import encode_examples

IGNORE = -100  # the label of a position that is not predicted (cross_entropy's ignore_index)


def bert_config(tokenizer, size: Any, **overrides: Any):
    """A ``BertConfig`` for ``tokenizer``'s vocabulary with the sizes of ``size`` (any object with
    ``hidden_size``, ``num_layers``, ``num_heads`` and ``intermediate_size``), 128 positions and
    eager attention (second-order gradients, Editable Training, fail through CPU SDPA).
    ``overrides`` are further ``BertConfig`` fields (``num_labels``, dropout ...)."""
    from transformers import BertConfig

    values = dict(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads,
        intermediate_size=size.intermediate_size,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="eager",
    )
    values.update(overrides)
    return BertConfig(**values)


def new_masked_lm(tokenizer, size: Any, **overrides: Any):
    """A randomly initialised ``BertForMaskedLM`` (from torch's global generator) of
    :func:`bert_config`."""
    from transformers import BertForMaskedLM

    return BertForMaskedLM(bert_config(tokenizer, size, **overrides))


def encode_slot_rows(tokenizer, examples: Sequence[Example], chunk: int = 4096) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per example, ``(input ids, labels)`` without padding: the core's masked-LM encoding (the
    ``[Y]`` slot replaced by as many ``[MASK]`` as the target has pieces), labels the target's
    pieces at the slot and :data:`IGNORE` elsewhere. Every example needs a ``target``."""
    out = []
    for start in range(0, len(examples), chunk):
        batch = encode_examples(tokenizer, examples[start:start + chunk], MASKED_LM)
        ids = batch.inputs["input_ids"]
        labels = torch.full_like(ids, IGNORE)
        labels[batch.rows, batch.cols] = batch.labels
        lengths = batch.inputs["attention_mask"].sum(1).tolist()
        out += [(ids[i, :n].clone(), labels[i, :n].clone()) for i, n in enumerate(lengths)]
    return out


def pad_rows(rows: Sequence[tuple[torch.Tensor, torch.Tensor]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of :func:`encode_slot_rows` as one ``[rows, longest]`` id matrix (padded with
    ``pad_id``) and label matrix (padded with :data:`IGNORE`)."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x)], labels[i, :len(y)] = x, y
    return ids, labels


def model_inputs(ids: torch.Tensor, pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids`` and the ``attention_mask`` that hides the padding."""
    return {"input_ids": ids, "attention_mask": (ids != pad_id).long()}


def special_ids(tokenizer) -> torch.Tensor:
    """The ids :func:`random_mask` never masks: ``[CLS]``, ``[SEP]`` and ``[PAD]``."""
    return torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id])


def random_mask(ids: torch.Tensor, labels: torch.Tensor, prob: float, mask_id: int, special: torch.Tensor,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask a share ``prob`` of the ordinary tokens (label :data:`IGNORE`, not in ``special``),
    BERT-style: they become ``mask_id`` and are labelled with the token they hid.

    Draws one uniform number per position from ``gen`` (none when ``prob <= 0``)."""
    if prob <= 0:
        return ids, labels
    eligible = (labels == IGNORE) & ~torch.isin(ids, special)
    chosen = eligible & (torch.rand(ids.shape, generator=gen) < prob)
    return ids.masked_fill(chosen, mask_id), torch.where(chosen, ids, labels)


@dataclass
class WarmupDecay:
    """The learning-rate factor at step ``s``: ``(s + 1) / warmup`` while warming up, then a linear
    decay that reaches 0 at step ``total`` and never goes below ``floor``. ``total`` may be changed
    while training (e.g. once the time budget tells how many steps fit)."""

    warmup: int
    total: int
    floor: float = 0.0

    def __call__(self, step: int) -> float:
        decay = (self.total - step) / max(1, self.total - self.warmup)
        return min((step + 1) / self.warmup, max(self.floor, decay))

    def scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """A ``LambdaLR`` on ``optimizer`` following this schedule."""
        return torch.optim.lr_scheduler.LambdaLR(optimizer, self)


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, loss: torch.Tensor,
                   max_norm: float = 1.0) -> None:
    """One training step on ``loss``: clear the gradients, backpropagate, clip their norm to
    ``max_norm``, step the optimiser and the scheduler."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    scheduler.step()
