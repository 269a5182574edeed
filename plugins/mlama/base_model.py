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

import json
import math
import random
import time
from pathlib import Path
from typing import Callable

import torch

from lime_toolkit.data import MASKED_LM, TARGET_SLOT, Example
from lime_toolkit.encoding import encode_examples
from lime_toolkit.errors import UserError
from lime_toolkit.files import atomic_directory, write_json_atomic

from .dataset import RECALL_FILE, MlamaDataset

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
Log = Callable[[str], None]


def is_prepared(path: Path) -> bool:
    return (Path(path) / RECALL_FILE).is_file() and (Path(path) / "config.json").is_file()


def find_prepared(ds: MlamaDataset) -> Path | None:
    """The prepared model for ``ds``'s settings; else the newest prepared model built from the same
    data whose languages cover ``ds.languages``."""
    exact = ds.model_dir()
    if is_prepared(exact) and set(ds.languages) <= set(ds.model_languages()):
        return exact
    found = []
    for info in (ds.cache_dir / "mlama").glob(f"*/model/{RECALL_FILE}"):
        try:
            key = json.loads(info.read_text(encoding="utf-8")).get("key", {})
        except ValueError:
            continue
        if key.get("data") == str(ds.root) and set(ds.languages) <= set(key.get("languages", [])):
            found.append((info.stat().st_mtime, info.parent))
    return max(found)[1] if found else None


def prepared_languages(ds: MlamaDataset) -> list[list[str]]:
    """The language lists of every prepared model built from ``ds``'s data (for error messages)."""
    out = []
    for info in sorted((ds.cache_dir / "mlama").glob(f"*/model/{RECALL_FILE}")):
        try:
            key = json.loads(info.read_text(encoding="utf-8")).get("key", {})
        except ValueError:
            continue
        if key.get("data") == str(ds.root):
            out.append(list(key.get("languages", [])))
    return out


def train_wordpiece(texts, vocab_size: int):
    """A cased WordPiece tokenizer (no accent stripping, CJK characters split) as a ``BertTokenizer``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                                lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                        continuing_subword_prefix="##", show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return BertTokenizer(vocab=tok.get_vocab(), do_lower_case=False, strip_accents=False, tokenize_chinese_chars=True)


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


def _slot_logits(model, inputs, rows, cols):
    hidden = model.bert(**inputs).last_hidden_state
    return model.cls(hidden[rows, cols])


@torch.no_grad()
def recall(model, tokenizer, examples: list[Example], device, batch_size: int = 512) -> dict[str, float]:
    """Per language, the share of ``examples`` whose every [MASK] position predicts its target."""
    was = model.training
    model.eval()
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = encode_examples(tokenizer, chunk, MASKED_LM).to(device)
        ok = _slot_logits(model, batch.inputs, batch.rows, batch.cols).argmax(-1) == batch.labels
        wrong = set(batch.rows[~ok].tolist())
        for i, ex in enumerate(chunk):
            totals[ex.lang] = totals.get(ex.lang, 0) + 1
            hits[ex.lang] = hits.get(ex.lang, 0) + (i not in wrong)
    model.train(was)
    return {lang: hits[lang] / totals[lang] for lang in totals}


def _encode(tokenizer, examples: list[Example], chunk: int = 4096) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input ids, labels at the object slots, -100 elsewhere) per example, unpadded."""
    out = []
    for start in range(0, len(examples), chunk):
        batch = encode_examples(tokenizer, examples[start:start + chunk], MASKED_LM)
        ids = batch.inputs["input_ids"]
        labels = torch.full_like(ids, -100)
        labels[batch.rows, batch.cols] = batch.labels
        lengths = batch.inputs["attention_mask"].sum(1).tolist()
        out += [(ids[i, :n].clone(), labels[i, :n].clone()) for i, n in enumerate(lengths)]
    return out


def _collate(items, pad_id: int):
    width = max(len(x[0]) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    for i, (x, y) in enumerate(items):
        ids[i, :len(x)], labels[i, :len(y)] = x, y
    return ids, labels


def build_raw_model(ds: MlamaDataset, out_dir: Path | None, log: Log = print) -> Path:
    """Build (or reuse) the tiny mLAMA masked LM for ``ds``; returns its directory."""
    from transformers import BertConfig, BertForMaskedLM

    s = ds.settings
    final = Path(out_dir).expanduser() if out_dir else ds.model_dir()
    if is_prepared(final):
        log(f"mlama raw model already prepared: {final}")
        return final
    if final.exists() and any(final.iterdir()):
        raise UserError(f"'{final}' exists and is not a prepared mlama model; choose another --out or delete it")
    if final.exists():
        final.rmdir()
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
    encoded = _encode(tokenizer, examples)
    rng = random.Random(f"mlama-recall/{ds.options.seed}")
    sample = []
    for lang in langs:
        mine = [ex for ex in examples if ex.lang == lang]
        sample += rng.sample(mine, min(s.recall_sample, len(mine)))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=s.hidden_size, num_hidden_layers=s.num_layers,
                        num_attention_heads=s.num_heads, intermediate_size=s.intermediate_size,
                        max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id, attn_implementation="eager")
    model = BertForMaskedLM(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.learning_rate, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(encoded) / s.batch_size)
    # The schedule assumes the step budget the time limit allows is unknown: decay over max_epochs,
    # and rescale once the first epoch's speed tells how many epochs fit into max_minutes.
    plan = {"total": s.max_epochs * steps_per_epoch}
    warmup = max(1, min(500, steps_per_epoch // 2))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: min((t + 1) / warmup, max(0.02, (plan["total"] - t) / max(1, plan["total"] - warmup))))
    special = torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id])
    log(f"pre-training on {len(encoded)} sentences ({steps_per_epoch} steps an epoch, at most {s.max_epochs} epochs "
        f"or {s.max_minutes:g} minutes, {device})")
    train_start, step, epoch, scores = time.monotonic(), 0, 0, {}
    deadline = train_start + 60 * s.max_minutes
    out_of_time = False
    for epoch in range(1, s.max_epochs + 1):
        order = torch.randperm(len(encoded), generator=gen).tolist()
        total_loss, seen = 0.0, 0
        for start in range(0, len(order), s.batch_size):
            ids, labels = _collate([encoded[i] for i in order[start:start + s.batch_size]], tokenizer.pad_token_id)
            if s.random_mask_prob > 0:
                eligible = (labels == -100) & ~torch.isin(ids, special)
                chosen = eligible & (torch.rand(ids.shape, generator=gen) < s.random_mask_prob)
                labels = torch.where(chosen, ids, labels)
                ids = ids.masked_fill(chosen, tokenizer.mask_token_id)
            ids, labels = ids.to(device), labels.to(device)
            r, c = (labels != -100).nonzero(as_tuple=True)
            logits = _slot_logits(model, {"input_ids": ids, "attention_mask": (ids != tokenizer.pad_token_id).long()}, r, c)
            loss = torch.nn.functional.cross_entropy(logits, labels[r, c])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            total_loss += loss.item() * len(ids)
            seen += len(ids)
            if time.monotonic() > deadline:
                out_of_time = True
                break
        if epoch == 1 and not out_of_time:
            per_epoch = time.monotonic() - train_start
            fit = max(1, min(s.max_epochs, int(60 * s.max_minutes / max(per_epoch, 1e-6))))
            plan["total"] = fit * steps_per_epoch
        scores = recall(model, tokenizer, sample, device)
        log(f"epoch {epoch}  loss {total_loss / max(seen, 1):.3f}  recall "
            + " ".join(f"{l} {v:.1%}" for l, v in scores.items()) + f"  ({time.monotonic() - train_start:.0f}s)")
        if out_of_time or step >= plan["total"]:
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
    model.cpu()
    with atomic_directory(final) as tmp:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Writing model shards" bar between the build's lines
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / RECALL_FILE, info)
    log(f"saved the mlama raw model to {final} (recall on {s.recall_sample} facts a language: "
        + " ".join(f"{l} {v:.1%}" for l, v in scores.items()) + ")")
    return final
