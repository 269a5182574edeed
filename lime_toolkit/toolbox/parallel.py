"""Pre-training on parallel facts so that what is learned in one language holds in the others.

Contract: the training rows are *native* examples, fact-major (row ``f * n_langs + l`` is fact
``f`` in language ``l``: the same fact in every language, with one-piece targets at the object
slot), plus optional *extra* examples (code-switched sentences, ...). Everything random takes an
explicit ``torch.Generator``; nothing draws from torch's global generator.

- :class:`ParallelRows`: every row encoded once; :meth:`ParallelRows.epoch_batches` makes an
  epoch of batches of whole facts (every language of each) plus a sample of extra rows and of
  native rows still missed (hard-example replay); :meth:`ParallelRows.note_misses` records them.
- :func:`alignment_loss` (over :func:`contrastive_alignment`): a contrastive objective pulling the
  object-slot states of a fact's languages together and pushing other facts' apart;
  :func:`layers_alignment` the same for any grouping of the rows (e.g. a sentence pair's
  translations).
- :func:`batch_loss`: one batch's masked-LM loss plus the weighted alignment loss (and the misses
  noted for replay).
- :func:`native_recall`: recall per language on the pre-encoded native rows (progress lines).
"""
from __future__ import annotations

from typing import Sequence

import torch

from lime_toolkit.data import Example

from .masked_lm import IGNORE, encode_slot_rows, model_inputs, pad_rows, random_mask
from .scoring import slot_predictions


class ParallelRows:
    """Every training sentence encoded once: the ``native`` rows (fact-major, ``n_langs`` a fact)
    first, then the ``extra`` ones. ``extra_share`` extra rows and ``replay`` missed native rows
    are added per parallel row of a batch."""

    def __init__(self, tokenizer, native: Sequence[Example], extra: Sequence[Example], n_langs: int, *,
                 extra_share: float, replay: float):
        if n_langs < 1 or len(native) % n_langs:
            raise ValueError(f"{len(native)} native rows are not whole facts of {n_langs} languages")
        extra = list(extra) if extra_share > 0 else []
        self.native = list(native)
        self.n_langs = n_langs
        self.n_facts = len(native) // n_langs
        self.ids, self.labels = pad_rows(encode_slot_rows(tokenizer, self.native + extra), tokenizer.pad_token_id)
        self.pad = tokenizer.pad_token_id
        self.lengths = (self.ids != self.pad).sum(1)
        self.n_native = len(native)
        self.n_extra_pool = len(extra)
        self.extra_share = extra_share
        self.replay = replay
        self.missed = torch.ones(self.n_native, dtype=torch.bool)  # native rows wrong at their last pass

    def epoch_batches(self, batch_size: int, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch as ``(parallel rows, extra rows)`` batches: the parallel rows are whole facts,
        every language of each (so :func:`alignment_loss` can compare them); the extra rows are a
        sample of the extra pool and of the native rows still missed (so the languages whose
        subjects take many word pieces are not left behind)."""
        per_batch = max(1, batch_size // self.n_langs)
        facts = torch.randperm(self.n_facts, generator=gen).split(per_batch)
        langs = torch.arange(self.n_langs)
        batches = []
        for group in facts:
            parallel = (group[:, None] * self.n_langs + langs[None, :]).reshape(-1)
            extra = []
            n_switch = round(self.extra_share * len(parallel))
            if n_switch and self.n_extra_pool:
                extra.append(self.n_native + torch.randint(self.n_extra_pool, (n_switch,), generator=gen))
            pool = self.missed.nonzero(as_tuple=True)[0]
            n_replay = round(self.replay * len(parallel))
            if n_replay and len(pool):
                extra.append(pool[torch.randint(len(pool), (n_replay,), generator=gen)])
            batches.append((parallel, torch.cat(extra) if extra else parallel.new_zeros(0)))
        return batches

    def note_misses(self, rows: torch.Tensor, slot_rows: torch.Tensor, slot_labels: torch.Tensor, predictions) -> None:
        """Record which native rows of a batch had a wrong object slot (``slot_labels`` are the
        unmasked labels: -100 at the positions masked only for the random-masking objective)."""
        native = rows < self.n_native
        self.missed[rows[native]] = False
        wrong = rows[slot_rows[(slot_labels != IGNORE) & (predictions != slot_labels)]]
        self.missed[wrong[wrong < self.n_native]] = True


def contrastive_alignment(states: torch.Tensor, group: torch.Tensor, temperature: float) -> torch.Tensor:
    """Contrastive loss over ``states`` [n, hidden]: each must pick out the other states of its
    ``group`` (the same fact or sentence pair in other languages) among all others of the batch
    (cross-entropy over cosine similarity / ``temperature``, the target spread evenly over the
    positives). States without a positive are skipped; with none at all the loss is 0."""
    v = torch.nn.functional.normalize(states, dim=-1)
    n = len(v)
    self_mask = torch.eye(n, dtype=torch.bool, device=v.device)
    logits = ((v @ v.T) / temperature).masked_fill(self_mask, float("-inf"))
    positive = (group[:, None] == group[None, :]) & ~self_mask
    has = positive.any(-1)
    if not has.any():
        return states.new_zeros(())
    log_p = torch.log_softmax(logits, dim=-1).masked_fill(~positive, 0.0)
    return -(log_p.sum(-1)[has] / positive.sum(-1)[has]).mean()


def layers_alignment(states, group: torch.Tensor, temperature: float) -> torch.Tensor:
    """:func:`contrastive_alignment` of each layer's ``states`` (a [layers, n, hidden] tensor or a
    list of [n, hidden]) with the same ``group``s, averaged over the layers."""
    return torch.stack([contrastive_alignment(h, group, temperature) for h in states]).mean()


def alignment_loss(states: list[torch.Tensor], n_langs: int, temperature: float = 0.1) -> torch.Tensor:
    """:func:`contrastive_alignment` averaged over aligned layers: makes parallel sentences look
    alike and different facts not. ``states`` are object-slot hidden states [facts * n_langs,
    hidden] (fact-major), one tensor per aligned layer: every state must pick out the same fact in
    the other languages. Aligned, yet still telling facts apart."""
    total = states[0].new_zeros(())
    for h in states:
        total = total + contrastive_alignment(h, torch.arange(len(h), device=h.device) // n_langs, temperature)
    return total / len(states)


def batch_loss(model, data: ParallelRows, parallel: torch.Tensor, extra: torch.Tensor, *, mask_id: int,
               special: torch.Tensor, random_mask_prob: float, aligned: Sequence[int], align_weight: float,
               align_temperature: float, gen: torch.Generator) -> tuple[torch.Tensor, float]:
    """``(loss, alignment loss)`` of one batch of a ``BertForMaskedLM``: cross-entropy at the object
    slots and at a share ``random_mask_prob`` of the other tokens (masked from ``gen``), plus
    ``align_weight`` times :func:`alignment_loss` of the parallel rows' object-slot states at the
    layers ``aligned`` (none: 0.0). Notes the native rows missed (:meth:`ParallelRows.note_misses`)."""
    rows = torch.cat([parallel, extra])
    width = int(data.lengths[rows].max())
    slot_labels = data.labels[rows, :width]
    ids, labels = random_mask(data.ids[rows, :width], slot_labels, random_mask_prob, mask_id, special, gen)
    out = model.bert(**model_inputs(ids, data.pad), output_hidden_states=bool(aligned))
    r, c = (labels != IGNORE).nonzero(as_tuple=True)
    logits = model.cls(out.last_hidden_state[r, c])
    loss = torch.nn.functional.cross_entropy(logits, labels[r, c])
    align_value = 0.0
    if aligned:
        # the object slot of each parallel row (one word piece: exactly one slot per row)
        sr, sc = (slot_labels[: len(parallel)] != IGNORE).nonzero(as_tuple=True)
        align = alignment_loss([out.hidden_states[k][sr, sc] for k in aligned], data.n_langs, align_temperature)
        loss = loss + align_weight * align
        align_value = float(align.detach())
    data.note_misses(rows, r, slot_labels[r, c], logits.detach().argmax(-1))
    return loss, align_value


@torch.no_grad()
def native_recall(model, data: ParallelRows, languages: list[str], batch_size: int = 512) -> dict[str, float]:
    """Recall per language on ``data``'s pre-encoded native rows, one forward pass (a fast path
    for progress lines; the model is left in training mode)."""
    model.eval()
    ok = torch.ones(data.n_native, dtype=torch.bool)
    for start in range(0, data.n_native, batch_size):
        rows = torch.arange(start, min(start + batch_size, data.n_native))
        width = int(data.lengths[rows].max())
        ids, labels = data.ids[rows, :width], data.labels[rows, :width]
        r, c = (labels != IGNORE).nonzero(as_tuple=True)
        predictions = slot_predictions(model, model_inputs(ids, data.pad), r, c)
        ok[rows[r[predictions != labels[r, c]]]] = False
    model.train()
    hits = {lang: [0, 0] for lang in languages}
    for correct, example in zip(ok.tolist(), data.native):
        hits[example.lang][0] += correct
        hits[example.lang][1] += 1
    return {lang: h / n for lang, (h, n) in hits.items()}
