"""The raw mLAMA model: a tiny BERT masked LM pre-trained, offline, on mLAMA's own sentences.

A cased WordPiece tokenizer is trained on the filled-in templates of the model languages (every
fact with its true object), then ``BertForMaskedLM`` (2 layers, hidden 64) is pre-trained on those
sentences with the object slot always masked (every word piece of it) and a share of the other
tokens masked as in BERT. Training stops after ``max_epochs`` or ``max_minutes``. Recall per
language (a fact counts only when every [MASK] is right, one forward pass) is measured on a sample
of ``recall_sample`` facts per language and written to ``recall.json`` beside the model. The model
directory is written atomically.

Such a model memorises facts from the sentences it saw; it has none of the world knowledge or the
shared multilingual representations mBERT learned from Wikipedia: see docs/datasets.md.
"""
from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lime_toolkit.data import TARGET_SLOT, Example
from lime_toolkit.errors import UserError
from lime_toolkit.toolbox.masked_lm import (
    IGNORE,
    WarmupDecay,
    encode_slot_rows,
    model_inputs,
    new_masked_lm,
    optimizer_step,
    pad_rows,
    random_mask,
    special_ids,
)
from lime_toolkit.toolbox.prepared import Log, claim_target, find_prepared, prepared_models, save_prepared
from lime_toolkit.toolbox.scoring import recall_per_language, slot_logits
from lime_toolkit.toolbox.wordpiece import train_wordpiece

if TYPE_CHECKING:
    from .dataset import MlamaDataset

RECALL_FILE = "recall.json"  # written beside a prepared base model


def find_base_model(ds: MlamaDataset) -> Path | None:
    """The prepared model for ``ds``'s settings (when its languages cover ``ds.languages``); else
    the newest prepared model built from the same data whose languages cover ``ds.languages``."""
    exact = ds.model_dir() if set(ds.languages) <= set(ds.model_languages()) else None
    return find_prepared(
        ds.cache_dir / "mlama", RECALL_FILE, exact=exact,
        accept=lambda key: key.get("data") == str(ds.root) and key.get("preset", "full") == ds.settings.preset
        and set(ds.languages) <= set(key.get("languages", [])),
    )


def prepared_languages(ds: MlamaDataset) -> list[list[str]]:
    """The language lists of every prepared model built from ``ds``'s data (for error messages)."""
    return [list(key.get("languages", [])) for _, key in prepared_models(ds.cache_dir / "mlama", RECALL_FILE)
            if key.get("data") == str(ds.root) and key.get("preset", "full") == ds.settings.preset]


def fact_examples(ds: MlamaDataset, langs: list[str]) -> list[Example]:
    """Every fact of ``langs`` as a masked-LM example whose target is its true object."""
    index = ds.index
    out = []
    for lang in langs:
        labels = index["labels"][lang]
        for uuid in index["order"]:
            if uuid in labels:
                out.append(Example(uuid, lang, ds.prompt(lang, index["facts"][uuid]), labels[uuid][1]))
    return out


def build_base_model(ds: MlamaDataset, out_dir: Path | None, log: Log = print) -> Path:
    """Build (or reuse) the tiny mLAMA masked LM for ``ds``; returns its directory."""
    s = ds.settings
    final = Path(out_dir).expanduser() if out_dir else ds.model_dir()
    if claim_target(final, RECALL_FILE, "mlama base model", log):
        return final
    langs = ds.model_languages()
    if ds.options.languages is None:
        ds._languages = list(langs)  # read only the model languages
    started = time.monotonic()
    examples = fact_examples(ds, langs)
    if not examples:
        raise UserError(f"no mLAMA facts in languages {', '.join(langs)}")
    sentences = (ex.text.replace(TARGET_SLOT, str(ex.target)) for ex in examples)
    tokenizer = train_wordpiece(sentences, s.vocab_size)
    log(f"{len(examples)} facts in {', '.join(langs)}; WordPiece tokenizer with {len(tokenizer)} pieces "
        f"({time.monotonic() - started:.0f}s)")
    torch.manual_seed(ds.options.seed)
    gen = torch.Generator().manual_seed(ds.options.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoded = encode_slot_rows(tokenizer, examples)
    rng = random.Random(f"mlama-recall/{ds.options.seed}")
    sample = []
    for lang in langs:
        mine = [ex for ex in examples if ex.lang == lang]
        sample += rng.sample(mine, min(s.recall_sample, len(mine)))
    model = new_masked_lm(tokenizer, s).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.learning_rate, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(encoded) / s.batch_size)
    # The schedule assumes the step budget the time limit allows is unknown: decay over max_epochs,
    # and rescale once the first epoch's speed tells how many epochs fit into max_minutes.
    plan = WarmupDecay(warmup=max(1, min(500, steps_per_epoch // 2)), total=s.max_epochs * steps_per_epoch, floor=0.02)
    schedule = plan.scheduler(optimizer)
    special = special_ids(tokenizer)
    log(f"pre-training on {len(encoded)} sentences ({steps_per_epoch} steps an epoch, at most {s.max_epochs} epochs "
        f"or {s.max_minutes:g} minutes, {device})")
    train_start, step, epoch, scores = time.monotonic(), 0, 0, {}
    deadline = train_start + 60 * s.max_minutes
    out_of_time = False
    for epoch in range(1, s.max_epochs + 1):
        order = torch.randperm(len(encoded), generator=gen).tolist()
        total_loss, seen = 0.0, 0
        for start in range(0, len(order), s.batch_size):
            ids, labels = pad_rows([encoded[i] for i in order[start:start + s.batch_size]], tokenizer.pad_token_id)
            ids, labels = random_mask(ids, labels, s.random_mask_prob, tokenizer.mask_token_id, special, gen)
            ids, labels = ids.to(device), labels.to(device)
            r, c = (labels != IGNORE).nonzero(as_tuple=True)
            logits = slot_logits(model, model_inputs(ids, tokenizer.pad_token_id), r, c)
            loss = torch.nn.functional.cross_entropy(logits, labels[r, c])
            optimizer_step(model, optimizer, schedule, loss)
            step += 1
            total_loss += loss.item() * len(ids)
            seen += len(ids)
            if time.monotonic() > deadline:
                out_of_time = True
                break
        if epoch == 1 and not out_of_time:
            per_epoch = time.monotonic() - train_start
            fit = max(1, min(s.max_epochs, int(60 * s.max_minutes / max(per_epoch, 1e-6))))
            plan.total = fit * steps_per_epoch
        scores = recall_per_language(model, tokenizer, sample, device=device)
        log(f"epoch {epoch}  loss {total_loss / max(seen, 1):.3f}  recall "
            + " ".join(f"{l} {v:.1%}" for l, v in scores.items()) + f"  ({time.monotonic() - train_start:.0f}s)")
        if out_of_time or step >= plan.total:
            break
    model.eval()
    info = {
        "recall": scores,
        "mean_recall": sum(scores.values()) / len(scores),
        "recall_sample_per_language": s.recall_sample,
        "n_facts": {l: sum(ex.lang == l for ex in examples) for l in langs},
        "epochs": epoch,
        "steps": step,
        "stopped_by_time": out_of_time,
        "build_seconds": round(time.monotonic() - started, 1),
        "key": ds.model_key(),
    }
    save_prepared(final, model, tokenizer, RECALL_FILE, info)
    log(f"saved the mlama base model to {final} (recall on {s.recall_sample} facts a language: "
        + " ".join(f"{l} {v:.1%}" for l, v in scores.items()) + ")")
    return final
