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

import json
import math
import time
from pathlib import Path
from typing import Callable

import torch

from lime_toolkit.data import CLASSIFICATION, Example
from lime_toolkit.encoding import encode_examples
from lime_toolkit.errors import UserError
from lime_toolkit.files import atomic_directory, write_json_atomic

from .dataset import ACCURACY_FILE, XnliDataset
from .reader import LABELS

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
Log = Callable[[str], None]


def is_prepared(path: Path) -> bool:
    return (Path(path) / ACCURACY_FILE).is_file() and (Path(path) / "config.json").is_file()


def find_prepared(ds: XnliDataset) -> Path | None:
    """The prepared model for ``ds``'s settings; else the newest prepared model built from the same
    data whose languages cover ``ds.languages`` (prepare-base on all languages serves a run on a
    subset)."""
    exact = ds.model_dir()
    if is_prepared(exact):
        return exact
    data_key = ds.model_key()["data"]
    found = []
    root = ds.cache_dir / "xnli"
    for info in root.glob(f"*/model/{ACCURACY_FILE}"):
        try:
            meta = json.loads(info.read_text(encoding="utf-8"))
        except ValueError:
            continue
        key = meta.get("key", {})
        if key.get("data") == data_key and set(ds.languages) <= set(key.get("languages", [])):
            found.append((info.stat().st_mtime, info.parent))
    return max(found)[1] if found else None


def train_wordpiece(texts, vocab_size: int, lowercase: bool = True):
    """A WordPiece tokenizer (BERT normalisation without accent stripping, CJK characters split)
    trained on ``texts``, as a transformers ``BertTokenizer``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                                lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                        continuing_subword_prefix="##", show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return BertTokenizer(vocab=tok.get_vocab(), do_lower_case=lowercase, strip_accents=False,
                         tokenize_chinese_chars=True)


def _examples(ds: XnliDataset, split: str, langs) -> list[Example]:
    file_split, pids = ds.items(split)
    rows = ds.table.rows[file_split]
    return [Example(f"{file_split}-{pid}", lang, (rows[lang][pid][0], rows[lang][pid][1]), rows[lang][pid][2])
            for lang in langs for pid in pids if pid in rows.get(lang, {})]


@torch.no_grad()
def accuracy(model, tokenizer, examples: list[Example], device, max_length: int, batch_size: int = 256) -> dict[str, float]:
    """Share of ``examples`` (gold ``target``) classified right, per language."""
    was = model.training
    model.eval()
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = encode_examples(tokenizer, chunk, CLASSIFICATION, max_length).to(device)
        pred = model(**batch.inputs).logits.argmax(-1).cpu()
        for ex, p in zip(chunk, pred.tolist()):
            totals[ex.lang] = totals.get(ex.lang, 0) + 1
            hits[ex.lang] = hits.get(ex.lang, 0) + int(p == ex.target)
    model.train(was)
    return {lang: hits[lang] / totals[lang] for lang in totals}


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
    from transformers import BertConfig, BertForSequenceClassification

    s = ds.settings
    langs = list(dict.fromkeys([*ds.languages, *s.train_langs]))
    texts = (text for per in ds.table.rows.values() for lang in langs if lang in per
             for row in per[lang].values() for text in row[:2])
    started = time.monotonic()
    tokenizer = train_wordpiece(texts, s.vocab_size)
    log(f"WordPiece tokenizer: {len(tokenizer)} pieces from the XNLI text of {len(langs)} language(s) "
        f"({time.monotonic() - started:.1f}s)")
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=s.hidden_size, num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_heads, intermediate_size=s.intermediate_size,
        max_position_embeddings=max(s.max_length, 64), type_vocab_size=2, num_labels=len(LABELS),
        pad_token_id=tokenizer.pad_token_id, attn_implementation="eager",
    )
    return BertForSequenceClassification(config), tokenizer


def _pretrained(ds: XnliDataset, log: Log):
    from lime_toolkit.models import load_model

    model, tokenizer = load_model(ds.settings.base_model, CLASSIFICATION, len(LABELS))
    for p in model.parameters():
        p.requires_grad_(True)
    log(f"fine-tuning {ds.settings.base_model} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)")
    return model, tokenizer


def build_raw_model(ds: XnliDataset, out_dir: Path | None, log: Log = print) -> Path:
    """Build (or reuse) the raw model for ``ds``; returns its directory."""
    s = ds.settings
    final = Path(out_dir).expanduser() if out_dir else ds.model_dir()
    if is_prepared(final):
        log(f"xnli raw model already prepared: {final}")
        return final
    if final.exists() and any(final.iterdir()):
        raise UserError(f"'{final}' exists and is not a prepared xnli model; choose another --out or delete it")
    if final.exists():
        final.rmdir()
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
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: min((t + 1) / warmup, max(0.0, (total - t) / max(1, total - warmup))))
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
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(chunk)
        dev_acc = accuracy(model, tokenizer, dev_set, device, s.max_length) if dev_set else {}
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
    test_acc = accuracy(model, tokenizer, test_set, device, s.max_length)
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
    model.cpu()
    with atomic_directory(final) as tmp:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Writing model shards" bar between the build's lines
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / ACCURACY_FILE, info)
    log(f"saved the xnli raw model to {final}")
    return final
