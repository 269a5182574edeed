"""The raw XNLI model: a multilingual encoder fine-tuned for NLI.

Default: a tiny BERT built here, offline, in about ten minutes of one CPU thread, whose languages
share one representation (see :mod:`.pretrain`):

1. a WordPiece tokenizer trained on the XNLI text of the selected languages;
2. a ``BertForMaskedLM`` pre-trained on the unlabelled pairs of the ``pretrain_splits`` in every
   selected language: masked LM plus a contrastive alignment of parallel pairs' ``[CLS]`` states;
3. its encoder fine-tuned as ``BertForSequenceClassification`` on the labelled pairs of the editing
   *train* split in ``train_langs`` (English by default, as in the paper; "all": every language),
   with the alignment objective kept on the train split's parallel pairs, and selected on the dev
   split of the same languages.

With ``base_model`` (a hub id or directory, e.g. bert-base-multilingual-cased) that encoder is
fine-tuned instead, with nothing of the above; the paper fine-tunes on the full English training
set (392,702 pairs), which is a GPU job (see docs/datasets.md).

Accuracy per language on the test split (and, for the tiny model, how well parallel pairs retrieve
each other) is written to ``accuracy.json`` beside the model. The model directory is written
atomically.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lime_toolkit.data import CLASSIFICATION, Example
from lime_toolkit.encoding import encode_examples
from lime_toolkit.errors import UserError
from lime_toolkit.toolbox.masked_lm import WarmupDecay, bert_config, new_masked_lm, optimizer_step
from lime_toolkit.toolbox.prepared import Log, claim_target, find_prepared, save_prepared
from lime_toolkit.toolbox.scoring import accuracy_per_language
from lime_toolkit.toolbox.wordpiece import train_wordpiece

from .pretrain import ParallelPairs, align_layers, batch_alignment, consistency_loss, pretrain, retrieval
from .reader import LABELS

if TYPE_CHECKING:
    from .dataset import XnliDataset

ACCURACY_FILE = "accuracy.json"  # written beside a prepared base model


def find_base_model(ds: XnliDataset) -> Path | None:
    """The prepared model for ``ds``'s settings; else the newest prepared model built with the same
    settings from the same data whose languages cover ``ds.languages`` (prepare-base on all
    languages serves a run on a subset), whatever seed it was built with (the run's seed varies the
    editor, not the base model, as in the paper's seeds on one mBERT). A model built with other
    settings (``train_langs``, sizes, ...) is never served in their place."""
    free = ("languages", "seed")
    ours = {k: v for k, v in json.loads(json.dumps(ds.model_key())).items() if k not in free}  # as stored

    def same_settings(key: dict) -> bool:
        return ({k: v for k, v in key.items() if k not in free} == ours
                and set(ds.languages) <= set(key.get("languages", [])))

    return find_prepared(ds.cache_dir / "xnli", ACCURACY_FILE, exact=ds.model_dir(), accept=same_settings)


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


def _parallel_pairs(ds: XnliDataset, splits, langs, tokenizer) -> ParallelPairs:
    """The unlabelled pairs of editing ``splits`` in ``langs``, one entry per pair id."""
    pairs = []
    for split in splits:
        file_split, pids = ds.items(split)
        rows = ds.table.rows[file_split]
        pairs += [{l: rows[l][pid][:2] for l in langs if pid in rows.get(l, {})} for pid in pids]
    return ParallelPairs(tokenizer, pairs, langs, ds.settings.max_length)


def _new_tiny_model(ds: XnliDataset, langs: list[str], gen: torch.Generator, log: Log, should_stop):
    """The tokenizer and the pre-trained tiny classifier (its head still untrained), and build facts."""
    from transformers import BertForSequenceClassification

    s = ds.settings
    texts = (text for per in ds.table.rows.values() for lang in langs if lang in per
             for row in per[lang].values() for text in row[:2])
    started = time.monotonic()
    tokenizer = train_wordpiece(texts, s.vocab_size, lowercase=True)
    log(f"WordPiece tokenizer: {len(tokenizer)} pieces from the XNLI text of {len(langs)} language(s) "
        f"({time.monotonic() - started:.1f}s)")
    sizes = dict(max_position_embeddings=max(s.max_length, 64), type_vocab_size=2, hidden_dropout_prob=s.dropout,
                 attention_probs_dropout_prob=s.dropout)
    mlm = new_masked_lm(tokenizer, s, **sizes)
    info = {}
    if s.pretrain_epochs > 0 and s.pretrain_splits:
        data = _parallel_pairs(ds, s.pretrain_splits, langs, tokenizer)
        log(f"pre-training on {len(data)} unlabelled pairs ({'+'.join(s.pretrain_splits)}) x {len(langs)} languages: "
            f"masked LM" + (f" + alignment of layers {align_layers(s)}" if s.align_weight > 0 else ""))
        info = pretrain(mlm, tokenizer, data, s, gen, log, should_stop)
    model = BertForSequenceClassification(bert_config(tokenizer, s, **sizes, num_labels=len(LABELS)))
    model.bert.load_state_dict(mlm.bert.state_dict(), strict=False)  # the pooler and head start fresh
    return model, tokenizer, info


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
    train_langs = s.fine_tune_languages(ds.languages)
    missing = [l for l in train_langs if l not in have]
    if missing:
        raise UserError(f"xnli train_langs {', '.join(missing)} not in the data; available: {', '.join(have)} (or all)")
    langs = list(dict.fromkeys([*ds.languages, *train_langs]))
    with torch.random.fork_rng(devices=[]):  # leave the caller's global generator untouched
        torch.manual_seed(ds.options.seed)
        gen = torch.Generator().manual_seed(ds.options.seed)
        return _build(ds, final, train_langs, langs, gen, log)


def _build(ds: XnliDataset, final: Path, train_langs: list[str], langs: list[str], gen: torch.Generator,
           log: Log) -> Path:
    s = ds.settings
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_set = _examples(ds, "train", train_langs)
    dev_set = _examples(ds, "dev", train_langs)
    test_set = _examples(ds, "test", ds.languages)
    if not train_set:
        raise UserError("the xnli train split has no pairs in the train_langs; check --langs / --limit")
    build_started = time.monotonic()
    pre_deadline = build_started + 60 * s.pretrain_minutes
    info: dict = {}
    if s.base_model:
        model, tokenizer = _pretrained(ds, log)
    else:
        model, tokenizer, info = _new_tiny_model(ds, langs, gen, log, lambda: time.monotonic() > pre_deadline)
    model.config.id2label = dict(enumerate(LABELS))
    model.config.label2id = {name: i for i, name in enumerate(LABELS)}
    model.to(device).train()
    keep_together = s.finetune_align_weight > 0 or s.consistency_weight > 0
    aligned = align_layers(s) if not s.base_model and keep_together and len(langs) > 1 else []
    parallel = _parallel_pairs(ds, ["train"], langs, tokenizer) if aligned else None
    lr = s.learning_rate if not s.base_model else min(s.learning_rate, 3e-5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(train_set) / s.batch_size)
    total = s.epochs * steps_per_epoch
    warmup = max(1, total // 10)
    schedule = WarmupDecay(warmup, total).scheduler(optimizer)
    log(f"fine-tuning on {len(train_set)} {'+'.join(train_langs)} pairs ({s.epochs} epochs, batch {s.batch_size}, "
        f"{device}{', keeping the languages together' if aligned else ''}); dev pairs {len(dev_set)}")
    started = time.monotonic()
    deadline = started + 60 * s.max_minutes
    keep_best = s.keep == "best" or (s.keep == "auto" and bool(s.base_model))
    best, best_state, best_epoch, out_of_time, epoch = -math.inf, None, 0, False, 0
    for epoch in range(1, s.epochs + 1):
        total_loss = 0.0
        blocks = iter(parallel.batches(s.align_pairs, s.align_langs, gen)) if parallel else None
        for rows in _length_bucketed_batches(train_set, s.batch_size, gen):
            if time.monotonic() > deadline:
                out_of_time = True
                break
            chunk = [train_set[i] for i in rows]
            batch = encode_examples(tokenizer, chunk, CLASSIFICATION, s.max_length).to(device)
            loss = model(**batch.inputs, labels=batch.labels).loss
            total_loss += loss.item() * len(chunk)
            block = next(blocks, None) if blocks else None
            if block is not None:
                out, pair_of, align = batch_alignment(model.bert, parallel, block, aligned, s.align_temperature, device)
                loss = loss + s.finetune_align_weight * align
                if s.consistency_weight > 0:
                    logits = model.classifier(model.dropout(out.pooler_output))
                    loss = loss + s.consistency_weight * consistency_loss(logits, pair_of)
            optimizer_step(model, optimizer, schedule, loss)
        dev_acc = accuracy_per_language(model, tokenizer, dev_set, device=device, max_length=s.max_length) if dev_set else {}
        score = sum(dev_acc.values()) / len(dev_acc) if dev_acc else -float(total_loss)
        log(f"epoch {epoch}/{s.epochs}  loss {total_loss / len(train_set):.3f}  dev accuracy "
            + " ".join(f"{l} {v:.1%}" for l, v in dev_acc.items()) + f"  ({time.monotonic() - started:.0f}s)")
        if score > best or not keep_best:
            best, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if out_of_time:
            log(f"stopped after {s.max_minutes:g} minutes (max_minutes)")
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    test_acc = accuracy_per_language(model, tokenizer, test_set, device=device, max_length=s.max_length)
    log("test accuracy " + " ".join(f"{l} {v:.1%}" for l, v in test_acc.items())
        + f"  ({'best' if keep_best else 'last'} epoch {best_epoch}, chance {1 / len(LABELS):.1%})")
    if not s.base_model and len(ds.languages) > 1:
        info["retrieval"] = retrieval(model.bert, _parallel_pairs(ds, ["test"], ds.languages, tokenizer))
        log("test pairs retrieving their English/first-language version (last layer [CLS]) "
            + " ".join(f"{l} {v:.0%}" for l, v in info["retrieval"].items()))
    info.update({
        "accuracy": test_acc,
        "mean_accuracy": sum(test_acc.values()) / len(test_acc),
        "dev_accuracy": best,
        "best_epoch": best_epoch,
        "epochs_run": epoch,
        "stopped_by_time": out_of_time,
        "train_langs": train_langs,
        "n_train": len(train_set),
        "n_dev": len(dev_set),
        "n_test_per_language": {l: sum(ex.lang == l for ex in test_set) for l in test_acc},
        "train_seconds": round(time.monotonic() - started, 1),
        "build_seconds": round(time.monotonic() - build_started, 1),
        "base_model": s.base_model or "tiny BERT (built here)",
        "key": ds.model_key(),
    })
    save_prepared(final, model.to("cpu"), tokenizer, ACCURACY_FILE, info)
    log(f"saved the xnli base model to {final} (built in {info['build_seconds']:.0f}s)")
    return final
