"""The raw XNLI model: a multilingual encoder fine-tuned for NLI on English.

Default: a tiny BERT built here, offline, in a few minutes of CPU: a WordPiece tokenizer trained on
the XNLI text of the selected languages, ``BertForSequenceClassification`` (2 layers, hidden 64,
eager attention) trained on the English pairs of the editing *train* split and selected on the
English dev split, for at most ``epochs`` epochs or ``max_minutes``. With ``base_model`` (a hub id
or directory, e.g. bert-base-multilingual-cased) that encoder is fine-tuned instead; the paper
fine-tunes on the full English training set
(392,702 pairs), which is a GPU job (see docs/datasets.md).

Accuracy per language on the test split is written to ``accuracy.json`` beside the model. The
model directory is written atomically.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lime_toolkit.data import CLASSIFICATION, Example
from lime_toolkit.encoding import encode_examples
from lime_toolkit.errors import UserError
from lime_toolkit.toolbox.masked_lm import WarmupDecay, bert_config, optimizer_step
from lime_toolkit.toolbox.prepared import Log, claim_target, find_prepared, save_prepared
from lime_toolkit.toolbox.scoring import accuracy_per_language
from lime_toolkit.toolbox.wordpiece import train_wordpiece

from .reader import LABELS

if TYPE_CHECKING:
    from .dataset import XnliDataset

ACCURACY_FILE = "accuracy.json"  # written beside a prepared base model


def find_base_model(ds: XnliDataset) -> Path | None:
    """The prepared model for ``ds``'s settings; else the newest prepared model built from the same
    data whose languages cover ``ds.languages`` (prepare-base on all languages serves a run on a
    subset)."""
    data_key = ds.model_key()["data"]
    return find_prepared(
        ds.cache_dir / "xnli", ACCURACY_FILE, exact=ds.model_dir(),
        accept=lambda key: key.get("data") == data_key and set(ds.languages) <= set(key.get("languages", [])),
    )


def _examples(ds: XnliDataset, split: str, langs) -> list[Example]:
    file_split, pids = ds.items(split)
    rows = ds.table.rows[file_split]
    return [Example(f"{file_split}-{pid}", lang, (rows[lang][pid][0], rows[lang][pid][1]), rows[lang][pid][2])
            for lang in langs for pid in pids if pid in rows.get(lang, {})]


def _length_bucketed_batches(examples: list[Example], batch_size: int, gen: torch.Generator) -> list[list[int]]:
    """Shuffled batches of similar-length pairs (less padding): shuffle, sort windows of 20 batches
    by length, cut, shuffle the batches."""
    order = torch.randperm(len(examples), generator=gen).tolist()
    window = batch_size * 20
    batches = []
    for start in range(0, len(order), window):
        part = sorted(order[start:start + window], key=lambda i: len(examples[i].text[0]) + len(examples[i].text[1]))
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def _new_tiny_model(ds: XnliDataset, log: Log):
    from transformers import BertForSequenceClassification

    s = ds.settings
    langs = list(dict.fromkeys([*ds.languages, *s.train_langs]))
    texts = (text for per in ds.table.rows.values() for lang in langs if lang in per
             for row in per[lang].values() for text in row[:2])
    started = time.monotonic()
    tokenizer = train_wordpiece(texts, s.vocab_size, lowercase=True)
    log(f"WordPiece tokenizer: {len(tokenizer)} pieces from the XNLI text of {len(langs)} language(s) "
        f"({time.monotonic() - started:.1f}s)")
    config = bert_config(tokenizer, s, max_position_embeddings=max(s.max_length, 64), type_vocab_size=2,
                         num_labels=len(LABELS))
    return BertForSequenceClassification(config), tokenizer


def _pretrained(ds: XnliDataset, log: Log):
    from lime_toolkit.models import load_model

    model, tokenizer = load_model(ds.settings.base_model, CLASSIFICATION, len(LABELS))
    for p in model.parameters():
        p.requires_grad_(True)
    log(f"fine-tuning {ds.settings.base_model} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)")
    return model, tokenizer


def build_base_model(ds: XnliDataset, out_dir: Path | None, log: Log = print) -> Path:
    """Build (or reuse) the base model for ``ds``; returns its directory."""
    s = ds.settings
    final = Path(out_dir).expanduser() if out_dir else ds.model_dir()
    if claim_target(final, ACCURACY_FILE, "xnli base model", log):
        return final
    have = ds.table.languages
    missing = [l for l in s.train_langs if l not in have]
    if missing:
        raise UserError(f"xnli train_langs {', '.join(missing)} not in the data; available: {', '.join(have)}")
    torch.manual_seed(ds.options.seed)
    gen = torch.Generator().manual_seed(ds.options.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_set = _examples(ds, "train", s.train_langs)
    dev_set = _examples(ds, "dev", s.train_langs)
    test_set = _examples(ds, "test", ds.languages)
    if not train_set:
        raise UserError("the xnli train split has no pairs in the train_langs; check --langs / --limit")
    model, tokenizer = _pretrained(ds, log) if s.base_model else _new_tiny_model(ds, log)
    model.config.id2label = dict(enumerate(LABELS))
    model.config.label2id = {name: i for i, name in enumerate(LABELS)}
    model.to(device).train()
    lr = s.learning_rate if not s.base_model else min(s.learning_rate, 3e-5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(train_set) / s.batch_size)
    total = s.epochs * steps_per_epoch
    warmup = max(1, total // 10)
    schedule = WarmupDecay(warmup, total).scheduler(optimizer)
    log(f"training on {len(train_set)} {'+'.join(s.train_langs)} pairs ({s.epochs} epochs, batch {s.batch_size}, "
        f"{device}); selecting on {len(dev_set)} dev pairs")
    started = time.monotonic()
    deadline = started + 60 * s.max_minutes
    best, best_state, best_epoch, out_of_time = -math.inf, None, 0, False
    for epoch in range(1, s.epochs + 1):
        total_loss = 0.0
        for rows in _length_bucketed_batches(train_set, s.batch_size, gen):
            if time.monotonic() > deadline:
                out_of_time = True
                break
            chunk = [train_set[i] for i in rows]
            batch = encode_examples(tokenizer, chunk, CLASSIFICATION, s.max_length).to(device)
            loss = model(**batch.inputs, labels=batch.labels).loss
            optimizer_step(model, optimizer, schedule, loss)
            total_loss += loss.item() * len(chunk)
        dev_acc = accuracy_per_language(model, tokenizer, dev_set, device=device, max_length=s.max_length) if dev_set else {}
        score = sum(dev_acc.values()) / len(dev_acc) if dev_acc else -float(total_loss)
        log(f"epoch {epoch}/{s.epochs}  loss {total_loss / len(train_set):.3f}  dev accuracy "
            + " ".join(f"{l} {v:.1%}" for l, v in dev_acc.items()) + f"  ({time.monotonic() - started:.0f}s)")
        if score > best:
            best, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if out_of_time:
            log(f"stopped after {s.max_minutes:g} minutes (max_minutes)")
            break
    model.load_state_dict(best_state)
    model.eval()
    test_acc = accuracy_per_language(model, tokenizer, test_set, device=device, max_length=s.max_length)
    log("test accuracy " + " ".join(f"{l} {v:.1%}" for l, v in test_acc.items())
        + f"  (best epoch {best_epoch}, chance {1 / len(LABELS):.1%})")
    info = {
        "accuracy": test_acc,
        "mean_accuracy": sum(test_acc.values()) / len(test_acc),
        "dev_accuracy": best,
        "best_epoch": best_epoch,
        "epochs_run": epoch,
        "stopped_by_time": out_of_time,
        "n_train": len(train_set),
        "n_dev": len(dev_set),
        "n_test_per_language": {l: sum(ex.lang == l for ex in test_set) for l in test_acc},
        "train_seconds": round(time.monotonic() - started, 1),
        "base_model": s.base_model or "tiny BERT (built here)",
        "key": ds.model_key(),
    }
    save_prepared(final, model, tokenizer, ACCURACY_FILE, info)
    log(f"saved the xnli base model to {final}")
    return final
