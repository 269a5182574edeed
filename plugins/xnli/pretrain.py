"""Pre-training the tiny XNLI encoder so that its languages share one representation.

XNLI is parallel: pair ``idx`` is the same premise/hypothesis in every language. The encoder is a
``BertForMaskedLM`` trained on the pairs exactly as the classifier will see them
(``[CLS] premise [SEP] hypothesis [SEP]``) with two objectives:

- masked LM on the ordinary tokens (BERT-style, ``mask_prob``), which learns the languages;
- a contrastive alignment of the ``[CLS]`` hidden states of parallel inputs (the toolbox's
  ``layers_alignment``, as for the demo's and mLAMA's models): every batch holds
  ``align_pairs`` pairs in ``align_langs`` languages, and each pair's state must pick out its
  translations among all states of the batch.

The second objective is what lets an edit made in one language reach the others: the edited MLP
sees nearly the same ``[CLS]`` input for a pair in every language (and a different one for other
pairs). Only unlabelled text is read here; which editing splits it comes from is the
``pretrain_splits`` setting. :class:`ParallelPairs` and the alignment are also used while
fine-tuning, to keep the languages together, with :func:`consistency_loss` (translations should
get the same prediction).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from lime_toolkit.toolbox.masked_lm import IGNORE, WarmupDecay, optimizer_step, random_mask, special_ids
from lime_toolkit.toolbox.parallel import layers_alignment
from lime_toolkit.toolbox.prepared import Log

if TYPE_CHECKING:
    from .settings import XnliSettings


class ParallelPairs:
    """Pairs of some editing splits in some languages, each encoded once (no padding).

    ``rows[i]`` is ``(input_ids, token_type_ids)``; ``table[p][l]`` the row of pair ``p`` in
    language ``l`` (-1 when that language lacks the pair)."""

    def __init__(self, tokenizer, pairs: Sequence[dict[str, tuple[str, str]]], langs: Sequence[str], max_length: int):
        self.langs = list(langs)
        self.pad = tokenizer.pad_token_id
        texts, where = [], []
        for p, per in enumerate(pairs):
            for l, lang in enumerate(self.langs):
                if lang in per:
                    texts.append(per[lang])
                    where.append((p, l))
        self.table = torch.full((len(pairs), len(self.langs)), -1, dtype=torch.long)
        self.rows: list[tuple[torch.Tensor, torch.Tensor]] = []
        for start in range(0, len(texts), 4096):
            chunk = texts[start:start + 4096]
            enc = tokenizer([t[0] for t in chunk], [t[1] for t in chunk], truncation=True, max_length=max_length)
            self.rows += [(torch.tensor(i), torch.tensor(t)) for i, t in zip(enc["input_ids"], enc["token_type_ids"])]
        for i, (p, l) in enumerate(where):
            self.table[p, l] = i

    def __len__(self) -> int:
        return len(self.table)

    def batches(self, n_pairs: int, n_langs: int, gen: torch.Generator) -> list[torch.Tensor]:
        """One pass over the pairs in random order: per batch, ``n_pairs`` pairs each in the same
        ``n_langs`` randomly chosen languages, as row indices ``[pairs, langs]`` (-1: missing)."""
        n_langs = min(n_langs, len(self.langs))
        out = []
        for group in torch.randperm(len(self), generator=gen).split(n_pairs):
            chosen = torch.randperm(len(self.langs), generator=gen)[:n_langs]
            out.append(self.table[group][:, chosen])
        return out

    def inputs(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Padded model inputs for the (present) ``rows``."""
        rows = [int(r) for r in rows if r >= 0]
        width = max(len(self.rows[r][0]) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            x, t = self.rows[r]
            ids[i, :len(x)], types[i, :len(t)] = x, t
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": (ids != self.pad).long()}


def aligned_states(encoder, inputs: dict, layers: Sequence[int]):
    """The encoder's output and the ``[CLS]`` states of ``layers`` (1-based), stacked [layers, n, hidden]."""
    out = encoder(**inputs, output_hidden_states=True)
    return out, torch.stack([out.hidden_states[k][:, 0] for k in layers])


def consistency_loss(logits: torch.Tensor, pair_of: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row's class distribution against the mean distribution of its pair's
    rows in all languages (held fixed): translations should get the same prediction."""
    probs = logits.softmax(-1).detach()
    groups = torch.unique(pair_of, return_inverse=True)[1]
    sums = torch.zeros(int(groups.max()) + 1, probs.shape[1], dtype=probs.dtype, device=probs.device)
    sums = sums.index_add_(0, groups, probs)
    counts = torch.bincount(groups).to(probs.dtype)
    target = (sums / counts[:, None])[groups]
    has = counts[groups] > 1
    if not has.any():
        return logits.new_zeros(())
    return -(target * logits.log_softmax(-1)).sum(-1)[has].mean()


def batch_alignment(encoder, data: ParallelPairs, block: torch.Tensor, layers: Sequence[int], temperature: float,
                    device=None):
    """``(encoder output, pair of each row, mean alignment loss over layers)`` for one ``[pairs, langs]`` block."""
    flat = block.reshape(-1)
    present = flat >= 0
    pair_of = torch.arange(block.shape[0]).repeat_interleave(block.shape[1])[present]
    inputs = {k: v.to(device) if device is not None else v for k, v in data.inputs(flat).items()}
    out, states = aligned_states(encoder, inputs, layers)
    pair_of = pair_of.to(states.device)
    return out, pair_of, layers_alignment(states, pair_of, temperature)


def pretrain(model, tokenizer, data: ParallelPairs, s: XnliSettings, gen: torch.Generator, log: Log,
             should_stop: Callable[[], bool]) -> dict:
    """Masked LM + alignment on ``data`` for ``pretrain_epochs`` epochs or until ``should_stop()``
    (checked before every step). ``model`` is a ``BertForMaskedLM``; returns build facts."""
    layers = align_layers(s)
    special = special_ids(tokenizer)
    n_batches = len(data.batches(s.align_pairs, s.align_langs, torch.Generator().manual_seed(0)))
    total = max(1, s.pretrain_epochs * n_batches)
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.pretrain_lr, betas=(0.9, 0.98), weight_decay=0.01)
    plan = WarmupDecay(max(1, total // 20), total, floor=0.1)
    schedule = plan.scheduler(optimizer)
    model.train()
    started, step, stopped = time.monotonic(), 0, False
    for epoch in range(1, s.pretrain_epochs + 1):
        mlm_sum = align_sum = 0.0
        n = 0
        for block in data.batches(s.align_pairs, s.align_langs, gen):
            if should_stop():
                stopped = True
                break
            flat = block.reshape(-1)
            inputs = data.inputs(flat)
            labels = torch.full_like(inputs["input_ids"], IGNORE)
            ids, labels = random_mask(inputs["input_ids"], labels, s.mask_prob, tokenizer.mask_token_id, special, gen)
            out, states = aligned_states(model.bert, {**inputs, "input_ids": ids}, layers)
            r, c = (labels != IGNORE).nonzero(as_tuple=True)
            mlm = torch.nn.functional.cross_entropy(model.cls(out.last_hidden_state[r, c]), labels[r, c])
            loss = mlm
            if s.align_weight > 0:
                pair_of = torch.arange(block.shape[0]).repeat_interleave(block.shape[1])[flat >= 0]
                align = layers_alignment(states, pair_of, s.align_temperature)
                loss = loss + s.align_weight * align
                align_sum += float(align.detach())
            optimizer_step(model, optimizer, schedule, loss)
            mlm_sum, n, step = mlm_sum + float(mlm.detach()), n + 1, step + 1
        if n:
            log(f"pre-training epoch {epoch}/{s.pretrain_epochs}  mlm {mlm_sum / n:.3f}  align {align_sum / n:.3f}  "
                f"({time.monotonic() - started:.0f}s)")
        if stopped:
            log(f"pre-training stopped by its time budget (pretrain_minutes {s.pretrain_minutes:g})")
            break
    return {"pretrain_steps": step, "pretrain_epochs_run": epoch, "pretrain_seconds": round(time.monotonic() - started, 1),
            "pretrain_pairs": len(data)}


def align_layers(s: XnliSettings) -> list[int]:
    """The aligned layers (1-based; 0 or less counts from the end: 0 is the last)."""
    picked = [k if k > 0 else s.num_layers + k for k in s.align_layers]
    return sorted({k for k in picked if 1 <= k <= s.num_layers})


@torch.no_grad()
def retrieval(encoder, data: ParallelPairs, anchor: int = 0, batch_size: int = 256) -> dict[str, float]:
    """Per language, the share of pairs whose last-layer ``[CLS]`` state's nearest neighbour (cosine)
    among the anchor language's states is the same pair (1/len(data) is chance)."""
    was = encoder.training
    encoder.eval()
    states = []
    for start in range(0, len(data.rows), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(data.rows)))
        out = encoder(**data.inputs(rows))
        states.append(torch.nn.functional.normalize(out.last_hidden_state[:, 0], dim=-1))
    states = torch.cat(states)
    encoder.train(was)
    keep = (data.table >= 0).all(1)
    table = data.table[keep]
    base = states[table[:, anchor]]
    out = {}
    for l, lang in enumerate(data.langs):
        nearest = (states[table[:, l]] @ base.T).argmax(-1)
        out[lang] = float((nearest == torch.arange(len(table))).float().mean())
    return out
