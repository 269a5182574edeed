"""Turn :class:`~lime_toolkit.data.Example` lists into model inputs for either task kind."""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Sequence

import torch

from lime_toolkit.data import CLASSIFICATION, MASKED_LM, TARGET_SLOT, Example
from lime_toolkit.errors import UserError


@dataclass
class Batch:
    """Encoded examples.

    ``inputs`` go to the model. Predictions are read at ``positions`` (masked-LM: (row, column)
    index tensors of the answer slots; classification: one position per row), and
    ``example_index`` says which example each prediction position belongs to. ``labels`` holds one
    label per position (-100 where the example has no target).
    """

    task: str
    inputs: dict[str, torch.Tensor]
    rows: torch.Tensor
    cols: torch.Tensor | None
    labels: torch.Tensor
    examples: list[Example]

    @property
    def example_index(self) -> torch.Tensor:
        return self.rows

    def to(self, device) -> "Batch":
        return Batch(
            self.task,
            {k: v.to(device) for k, v in self.inputs.items()},
            self.rows.to(device),
            None if self.cols is None else self.cols.to(device),
            self.labels.to(device),
            self.examples,
        )


#: Per tokenizer, the word-piece ids of the targets encoded so far (training encodes the same few
#: hundred targets thousands of times).
_TARGET_IDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def target_token_ids(tokenizer, target: str) -> list[int]:
    """Word-piece ids of a masked-LM target as it would appear inside a sentence."""
    try:
        known = _TARGET_IDS.setdefault(tokenizer, {})
    except TypeError:  # a tokenizer that cannot be weakly referenced: no cache
        known = {}
    if target not in known:
        ids = tokenizer(target, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UserError(f"target {target!r} encodes to no tokens with this tokenizer; use a non-empty target")
        known[target] = tuple(ids)
    return list(known[target])


def _slot_text(tokenizer, ex: Example) -> tuple[str, list[int] | None]:
    if not isinstance(ex.text, str) or TARGET_SLOT not in ex.text:
        raise UserError(
            f"masked-LM example {ex.id!r} ({ex.lang}) has no {TARGET_SLOT} slot in its text {ex.text!r}"
        )
    if ex.target is not None:
        ids = target_token_ids(tokenizer, str(ex.target))
        n = len(ids)
    elif ex.n_masks:
        ids, n = None, ex.n_masks
    else:
        raise UserError(f"masked-LM example {ex.id!r} ({ex.lang}) needs a target or n_masks")
    mask = tokenizer.mask_token
    return ex.text.replace(TARGET_SLOT, " ".join([mask] * n), 1), ids


def encode_examples(tokenizer, examples: Sequence[Example], task: str, max_length: int = 128) -> Batch:
    """Encode examples for ``task`` ("masked-lm" or "classification")."""
    examples = list(examples)
    if not examples:
        raise ValueError("encode_examples needs at least one example")
    if task == MASKED_LM:
        if tokenizer.mask_token is None:
            raise UserError("this tokenizer has no mask token; masked-LM datasets need a masked LM")
        texts, targets = zip(*(_slot_text(tokenizer, ex) for ex in examples))
        enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        is_mask = enc["input_ids"] == tokenizer.mask_token_id
        rows, cols = is_mask.nonzero(as_tuple=True)
        labels = torch.full_like(rows, -100)
        for i, ids in enumerate(targets):
            slot = (rows == i).nonzero(as_tuple=True)[0]
            if ids is not None:
                if len(slot) != len(ids):
                    raise UserError(
                        f"example {examples[i].id!r} ({examples[i].lang}) was truncated or already held a "
                        f"mask token: {len(slot)} mask positions for a {len(ids)}-piece target"
                    )
                labels[slot] = torch.tensor(ids)
        return Batch(task, dict(enc), rows, cols, labels, examples)
    if task == CLASSIFICATION:
        firsts = [ex.text[0] if isinstance(ex.text, tuple) else ex.text for ex in examples]
        seconds = [ex.text[1] for ex in examples if isinstance(ex.text, tuple)]
        pair = len(seconds) == len(examples)
        enc = tokenizer(firsts, seconds if pair else None, padding=True, truncation=True,
                        max_length=max_length, return_tensors="pt")
        rows = torch.arange(len(examples))
        labels = torch.tensor([-100 if ex.target is None else int(ex.target) for ex in examples])
        return Batch(task, dict(enc), rows, None, labels, examples)
    raise UserError(f"unknown task {task!r}; expected one of {MASKED_LM!r}, {CLASSIFICATION!r}")


def per_example(flags: torch.Tensor, rows: torch.Tensor, n: int) -> list[bool]:
    """True for an example when every one of its prediction positions is flagged."""
    ok = torch.ones(n, dtype=torch.long, device=flags.device)
    ok.scatter_reduce_(0, rows, flags.long(), reduce="amin")
    return [bool(v) for v in ok.tolist()]
