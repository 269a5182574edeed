"""Build, offline, a tiny BERT-style masked LM that knows the demo world's facts.

The build trains a cased WordPiece tokenizer on the corpus, pre-trains ``BertForMaskedLM`` on the
facts (object slot always masked, plus some random masking; optionally code-switched sentences with
the subject written in another language's script), measures recall per language and saves
everything under ``cache_root()/demo/<settings key>/model``. The directory is written atomically:
an interrupted build never leaves a model directory that a later run would load.
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from transformers import BertConfig, BertForMaskedLM, BertTokenizer

from lime_toolkit.cache import atomic_directory, cache_root, settings_key, write_json_atomic
from lime_toolkit.data import MASKED_LM, TARGET_SLOT, Example
from lime_toolkit.encoding import encode_examples

from .corpus import SCRIPT, DemoCorpus, DemoSettings
from .vocabulary import RELATIONS

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
RECALL_FILE = "recall.json"

Log = Callable[[str], None]


def demo_cache_dir(settings: DemoSettings) -> Path:
    """``cache_root()/demo/<settings key>``: everything built for these settings."""
    return cache_root() / "demo" / settings_key(settings.key_dict())


def demo_model_dir(settings: DemoSettings) -> Path:
    """Where the model for ``settings`` lives once built (it may not exist yet)."""
    return demo_cache_dir(settings) / "model"


def is_built(settings: DemoSettings) -> bool:
    """Whether a complete model for ``settings`` is in the cache."""
    return (demo_model_dir(settings) / RECALL_FILE).is_file()


# -- tokenizer ----------------------------------------------------------------------------------


def train_tokenizer(corpus: DemoCorpus) -> BertTokenizer:
    """Train a cased WordPiece tokenizer (BERT normalisation, Chinese characters split) on the
    corpus sentences and every object word, and wrap it as a transformers ``BertTokenizer``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    settings = corpus.settings
    texts = [corpus.sentence(f, lang) for f in corpus.facts for lang in corpus.languages]
    # Every object, so counterfactual targets that no subject holds still get proper word pieces.
    texts += [" ".join(RELATIONS[rel][1][lang]).replace(",", " ") for rel in corpus.relations for lang in corpus.languages]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=settings.vocab_size, special_tokens=SPECIAL_TOKENS, continuing_subword_prefix="##", show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return BertTokenizer(vocab=tok.get_vocab(), do_lower_case=False, strip_accents=False, tokenize_chinese_chars=True)


def demo_tokenizer(settings: DemoSettings) -> BertTokenizer:
    """The tokenizer for ``settings``: the built model's if there is one, else a cached (or newly
    trained and cached) tokenizer. Cheap: never trains the model."""
    model_dir = demo_model_dir(settings)
    if is_built(settings):
        return BertTokenizer.from_pretrained(model_dir)
    tok_dir = demo_cache_dir(settings) / "tokenizer"
    if not (tok_dir / "tokenizer_config.json").is_file():
        tokenizer = train_tokenizer(DemoCorpus(settings))
        with atomic_directory(tok_dir) as tmp:
            tokenizer.save_pretrained(tmp)
    return BertTokenizer.from_pretrained(tok_dir)


# -- recall -------------------------------------------------------------------------------------


@torch.no_grad()
def measure_recall(
    model, tokenizer, examples: Sequence[Example], batch_size: int = 512
) -> dict[str, float]:
    """Share of ``examples`` per language whose every ``[MASK]`` position is argmax-correct.

    Examples carry their expected object as ``target``; one forward pass, no iterative decoding."""
    was_training = model.training
    model.eval()
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = encode_examples(tokenizer, chunk, MASKED_LM)
        correct = _slot_predictions(model, batch.inputs, batch.rows, batch.cols) == batch.labels
        wrong_rows = set(batch.rows[~correct].tolist())
        for i, ex in enumerate(chunk):
            totals[ex.lang] = totals.get(ex.lang, 0) + 1
            hits[ex.lang] = hits.get(ex.lang, 0) + (i not in wrong_rows)
    model.train(was_training)
    return {lang: hits[lang] / totals[lang] for lang in totals}


def _slot_logits(model: BertForMaskedLM, inputs: dict, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    # Only the answer slots go through the LM head: the vocabulary projection dominates the cost.
    hidden = model.bert(**inputs).last_hidden_state
    return model.cls(hidden[rows, cols])


def _slot_predictions(model, inputs, rows, cols) -> torch.Tensor:
    return _slot_logits(model, inputs, rows, cols).argmax(-1)


def read_recall(settings: DemoSettings) -> dict | None:
    """The built model's ``recall.json`` (recall per language and build facts), or ``None``."""
    import json

    path = demo_model_dir(settings) / RECALL_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# -- pre-training -------------------------------------------------------------------------------


def build_demo_model(settings: DemoSettings | None = None, *, log: Log = print, force: bool = False) -> Path:
    """Build (or reuse from the cache) the demo masked LM for ``settings``; return its directory.

    The directory holds the model and tokenizer (``save_pretrained``) and ``recall.json``.
    ``force`` rebuilds even when a complete model is cached."""
    settings = settings or DemoSettings()
    final = demo_model_dir(settings)
    if is_built(settings) and not force:
        return final
    if force and final.exists():
        shutil.rmtree(final)
    corpus = DemoCorpus(settings)
    tokenizer = demo_tokenizer(settings)
    log(
        f"building the demo model: {len(corpus.facts)} facts x {len(corpus.languages)} languages, "
        f"vocabulary {len(tokenizer)}, cache {final}"
    )
    with atomic_directory(final) as tmp:
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
            torch.manual_seed(settings.seed)
            model, info = _pretrain(settings, corpus, tokenizer, log)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / RECALL_FILE, {**info, "settings": settings.key_dict()})
    return final


def _new_model(settings: DemoSettings, tokenizer: BertTokenizer) -> BertForMaskedLM:
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads,
        intermediate_size=settings.intermediate_size,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,  # memorising facts: dropout only slows it down
        attention_probs_dropout_prob=0.0,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="eager",  # second-order gradients (Editable Training) fail through CPU SDPA
    )
    return BertForMaskedLM(config)


def _training_examples(corpus: DemoCorpus) -> tuple[list[Example], list[Example]]:
    """(native examples: every fact in every language; code-switched ones: the subject written in
    each other script than the template language's)."""
    native = [corpus.example(f, lang) for f in corpus.facts for lang in corpus.languages]
    by_script: dict[str, str] = {}
    for lang in corpus.languages:
        by_script.setdefault(SCRIPT[lang], lang)
    switched = []
    for f in corpus.facts:
        for lang in corpus.languages:
            target = corpus.object_text(f.relation, f.obj, lang)
            for script, other in by_script.items():
                if script != SCRIPT[lang]:
                    switched.append(Example(f.id, lang, corpus.prompt(f, lang, subject_lang=other), target))
    return native, switched


def _encode_all(tokenizer, examples: list[Example], chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode examples (object slot masked) into one padded id matrix and a dense label matrix."""
    ids_parts, label_parts = [], []
    for start in range(0, len(examples), chunk):
        batch = encode_examples(tokenizer, examples[start : start + chunk], MASKED_LM)
        ids = batch.inputs["input_ids"]
        labels = torch.full_like(ids, -100)
        labels[batch.rows, batch.cols] = batch.labels
        ids_parts.append(ids)
        label_parts.append(labels)
    width = max(t.shape[1] for t in ids_parts)
    pad = tokenizer.pad_token_id
    ids = torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=pad) for t in ids_parts])
    labels = torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=-100) for t in label_parts])
    return ids, labels


def _pretrain(settings: DemoSettings, corpus: DemoCorpus, tokenizer: BertTokenizer, log: Log):
    started = time.monotonic()
    gen = torch.Generator().manual_seed(settings.seed)
    model = _new_model(settings, tokenizer)
    model.train()
    native, switched = _training_examples(corpus)
    native_ids, native_labels = _encode_all(tokenizer, native)
    if switched and settings.code_switch > 0:
        switched_ids, switched_labels = _encode_all(tokenizer, switched)
    else:
        switched_ids = switched_labels = None
    n_switched = 0 if switched_ids is None else min(len(switched_ids), round(settings.code_switch * len(native_ids)))
    per_epoch = len(native_ids) + n_switched
    steps_per_epoch = math.ceil(per_epoch / settings.batch_size)
    total_steps = settings.max_epochs * steps_per_epoch
    warmup = max(1, min(200, total_steps // 20))
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    )
    special = torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id])
    recall: dict[str, float] = {}
    epoch = step = 0
    for epoch in range(1, settings.max_epochs + 1):
        ids, labels = native_ids, native_labels
        if n_switched:
            pick = torch.randperm(len(switched_ids), generator=gen)[:n_switched]
            ids, labels = _concat_padded(ids, labels, switched_ids[pick], switched_labels[pick], tokenizer.pad_token_id)
        total_loss = 0.0
        for rows in _length_bucketed_batches(ids != tokenizer.pad_token_id, settings.batch_size, gen):
            batch_ids, batch_labels = _random_mask(ids[rows], labels[rows], settings.random_mask_prob, tokenizer, special, gen)
            attention = batch_ids != tokenizer.pad_token_id
            width = int(attention.sum(1).max())
            batch_ids, batch_labels, attention = batch_ids[:, :width], batch_labels[:, :width], attention[:, :width]
            r, c = (batch_labels != -100).nonzero(as_tuple=True)
            logits = _slot_logits(model, {"input_ids": batch_ids, "attention_mask": attention.long()}, r, c)
            loss = torch.nn.functional.cross_entropy(logits, batch_labels[r, c])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            total_loss += loss.item() * len(rows)
        if epoch % settings.eval_every == 0 or epoch == settings.max_epochs:
            recall = measure_recall(model, tokenizer, native)
            log(
                f"epoch {epoch}/{settings.max_epochs}  loss {total_loss / len(ids):.3f}  recall "
                + " ".join(f"{lang} {recall[lang]:.1%}" for lang in corpus.languages)
                + f"  ({time.monotonic() - started:.0f}s)"
            )
            if min(recall.values()) >= settings.target_recall:
                break
    model.eval()
    info = {
        "recall": {lang: recall[lang] for lang in corpus.languages},
        "min_recall": min(recall.values()),
        "n_facts": len(corpus.facts),
        "epochs": epoch,
        "steps": step,
        "build_seconds": round(time.monotonic() - started, 1),
    }
    log(f"demo model built in {info['build_seconds']:.0f}s, lowest recall {info['min_recall']:.1%}")
    return model, info


def _length_bucketed_batches(attention: torch.Tensor, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Shuffled batches of row indices; rows of similar length share a batch to cut padding."""
    lengths = attention.sum(1)
    order = torch.randperm(len(lengths), generator=gen)
    pool = batch_size * 16
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches += list(chunk.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def _concat_padded(a_ids, a_labels, b_ids, b_labels, pad_id):
    width = max(a_ids.shape[1], b_ids.shape[1])

    def widen(t, value):
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    return (
        torch.cat([widen(a_ids, pad_id), widen(b_ids, pad_id)]),
        torch.cat([widen(a_labels, -100), widen(b_labels, -100)]),
    )


def _random_mask(ids, labels, prob, tokenizer, special, gen):
    """Mask a share ``prob`` of the ordinary (non-object, non-special) tokens, BERT-style."""
    if prob <= 0:
        return ids, labels
    eligible = (labels == -100) & ~torch.isin(ids, special)
    chosen = eligible & (torch.rand(ids.shape, generator=gen) < prob)
    return ids.masked_fill(chosen, tokenizer.mask_token_id), torch.where(chosen, ids, labels)
