"""Build, offline, a tiny BERT-style masked LM that knows the demo world's facts.

The build learns a cased WordPiece vocabulary from the corpus, pre-trains ``BertForMaskedLM`` on
the facts (object slot always masked, plus a little random-token masking; code-switched sentences
with the subject written in another language's script, to tie the scripts together; extra passes
over the facts still missed), measures recall per language and saves everything under
``cache_root()/demo/<settings key>/model``. The directory is written atomically: an interrupted
build never leaves a model directory that a later run would load. Loading it for second-order
gradients needs ``attn_implementation="eager"`` (transformers does not save that choice).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from tokenizers import AddedToken
from transformers import BertForMaskedLM, BertTokenizer

from lime_toolkit.cache import cache_root, settings_key
from lime_toolkit.data import Example
from lime_toolkit.files import atomic_directory
from lime_toolkit.toolbox.masked_lm import WarmupDecay, new_masked_lm, optimizer_step, special_ids
from lime_toolkit.toolbox.parallel import ParallelRows, batch_loss, native_recall
from lime_toolkit.toolbox.prepared import Log, is_prepared, save_prepared
from lime_toolkit.toolbox.scoring import recall_per_language
from lime_toolkit.toolbox.wordpiece import bert_tokenizer, bert_words, learn_vocabulary

from .corpus import SCRIPT, DemoCorpus, DemoSettings
from .vocabulary import RELATIONS

RECALL_FILE = "recall.json"


def demo_cache_dir(settings: DemoSettings, *, root: Path | None = None) -> Path:
    """``<root>/demo/<settings key>``: everything built for these settings. ``root`` defaults to
    the toolkit's :func:`~lime_toolkit.cache.cache_root`."""
    return Path(root or cache_root()) / "demo" / settings_key(settings.key_dict())


def demo_model_dir(settings: DemoSettings, *, root: Path | None = None) -> Path:
    """Where the model for ``settings`` lives once built (it may not exist yet)."""
    return demo_cache_dir(settings, root=root) / "model"


def is_built(settings: DemoSettings, *, root: Path | None = None) -> bool:
    """Whether a complete model for ``settings`` is in the cache."""
    return is_prepared(demo_model_dir(settings, root=root), RECALL_FILE)


# -- tokenizer ----------------------------------------------------------------------------------


def train_tokenizer(corpus: DemoCorpus) -> BertTokenizer:
    """A cased WordPiece tokenizer (BERT normalisation, Chinese characters split) learned from the
    corpus sentences, as a transformers ``BertTokenizer``. Deterministic.

    Every object word is exactly one token in every language (Latin and Cyrillic objects are whole
    vocabulary entries; Chinese objects, which BERT would split into characters, are added tokens),
    so the number of ``[MASK]`` tokens in a query never reveals which object is asked for."""
    texts = [corpus.sentence(f, lang) for f in corpus.facts for lang in corpus.languages]
    vocab = learn_vocabulary(bert_words(texts), corpus.settings.vocab_size)
    chinese = []
    for rel in corpus.relations:
        for lang in corpus.languages:
            for word in RELATIONS[rel][1][lang]:
                if SCRIPT[lang] == "han":
                    chinese.append(word)
                elif word not in vocab:
                    vocab[word] = len(vocab)
    tokenizer = bert_tokenizer(vocab)
    tokenizer.add_tokens([AddedToken(w, single_word=False, normalized=False) for w in sorted(set(chinese))])
    return tokenizer


def demo_tokenizer(settings: DemoSettings, *, root: Path | None = None) -> BertTokenizer:
    """The tokenizer for ``settings``: the built model's if there is one, else a cached (or newly
    trained and cached) tokenizer. Cheap: never trains the model."""
    if is_built(settings, root=root):
        return BertTokenizer.from_pretrained(demo_model_dir(settings, root=root))
    tok_dir = demo_cache_dir(settings, root=root) / "tokenizer"
    if not (tok_dir / "tokenizer_config.json").is_file():
        tokenizer = train_tokenizer(DemoCorpus(settings))
        with atomic_directory(tok_dir) as tmp:
            tokenizer.save_pretrained(tmp)
    return BertTokenizer.from_pretrained(tok_dir)


# -- recall -------------------------------------------------------------------------------------


def read_recall(settings: DemoSettings, *, root: Path | None = None) -> dict | None:
    """The built model's ``recall.json`` (recall per language and build facts), or ``None``."""
    path = demo_model_dir(settings, root=root) / RECALL_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# -- pre-training -------------------------------------------------------------------------------


def build_demo_model(
    settings: DemoSettings | None = None, *, log: Log = print, force: bool = False, root: Path | None = None
) -> Path:
    """Build (or reuse from the cache) the demo masked LM for ``settings``; return its directory.

    The directory holds the model and tokenizer (``save_pretrained``) and ``recall.json``.
    ``force`` rebuilds even when a complete model is cached; ``root`` overrides the cache root."""
    settings = settings or DemoSettings()
    final = demo_model_dir(settings, root=root)
    if is_built(settings, root=root) and not force:
        return final
    if force and final.exists():
        shutil.rmtree(final)
    corpus = DemoCorpus(settings)
    tokenizer = demo_tokenizer(settings, root=root)
    log(
        f"building the demo model: {len(corpus.facts)} facts x {len(corpus.languages)} languages, "
        f"vocabulary {len(tokenizer)}, cache {final}"
    )
    threads = torch.get_num_threads()
    # At most two threads: a model this small gains nothing from more, and more threads than
    # free cores slow it down several times (set OMP_NUM_THREADS=1 when other jobs run).
    torch.set_num_threads(min(2, threads))
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
            torch.manual_seed(settings.seed)
            model, info = _pretrain(settings, corpus, tokenizer, log)
    finally:
        torch.set_num_threads(threads)
    return save_prepared(final, model, tokenizer, RECALL_FILE, {**info, "settings": settings.key_dict()})


def _new_model(settings: DemoSettings, tokenizer: BertTokenizer) -> BertForMaskedLM:
    # memorising facts: dropout only slows it down
    return new_masked_lm(tokenizer, settings, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _training_examples(corpus: DemoCorpus) -> tuple[list[Example], list[Example]]:
    """(native examples: every fact in every language, fact-major: row ``f * L + l`` is fact ``f``
    in language ``l``; code-switched ones: the subject written in each other script than the
    template language's)."""
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


def _training_rows(corpus: DemoCorpus, tokenizer: BertTokenizer, settings: DemoSettings) -> ParallelRows:
    """Every training sentence encoded once: the native rows (each fact in each language, the
    evaluation format, fact-major) first, then the code-switched ones."""
    native, switched = _training_examples(corpus)
    return ParallelRows(tokenizer, native, switched, len(corpus.languages), extra_share=settings.code_switch,
                        replay=settings.replay)


def _pretrain(settings: DemoSettings, corpus: DemoCorpus, tokenizer: BertTokenizer, log: Log):
    """Masked-LM pre-training (plus the cross-lingual alignment objective) until every language
    recalls ``target_recall`` of the facts (or ``max_epochs``). Returns the model and the build
    facts for ``recall.json``."""
    started = time.monotonic()
    gen = torch.Generator().manual_seed(settings.seed)
    model = _new_model(settings, tokenizer)
    model.train()
    data = _training_rows(corpus, tokenizer, settings)
    n_batches = len(data.epoch_batches(settings.batch_size, torch.Generator().manual_seed(0)))
    total_steps = settings.max_epochs * n_batches
    warmup = max(1, round(settings.warmup * total_steps))
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, betas=(0.9, 0.98), weight_decay=0.01)
    schedule = WarmupDecay(warmup, total_steps).scheduler(optimizer)
    special = special_ids(tokenizer)
    aligned = [k for k in settings.align_layers if 0 < k <= settings.num_layers] if settings.align_weight > 0 else []
    recall: dict[str, float] = {}
    epoch = step = 0
    for epoch in range(1, settings.max_epochs + 1):
        total_loss, total_align, n_batches = 0.0, 0.0, 0
        for parallel, extra in data.epoch_batches(settings.batch_size, gen):
            loss, align = batch_loss(model, data, parallel, extra, mask_id=tokenizer.mask_token_id, special=special,
                                     random_mask_prob=settings.random_mask_prob, aligned=aligned,
                                     align_weight=settings.align_weight, align_temperature=settings.align_temperature,
                                     gen=gen)
            total_align += align
            optimizer_step(model, optimizer, schedule, loss)
            step += 1
            total_loss, n_batches = total_loss + loss.item(), n_batches + 1
        if epoch % settings.eval_every and epoch < settings.max_epochs:
            continue
        line = f"epoch {epoch}/{settings.max_epochs}  loss {total_loss / n_batches:.3f}"
        if aligned:
            line += f"  align {total_align / n_batches:.3f}"
        if 2 * epoch > settings.max_epochs:  # recall is near chance in the first half: skip measuring
            recall = native_recall(model, data, corpus.languages)
            line += "  recall " + " ".join(f"{lang} {recall[lang]:.1%}" for lang in corpus.languages)
        log(f"{line}  ({time.monotonic() - started:.0f}s)")
        if recall and min(recall.values()) >= settings.target_recall:
            break
    model.eval()
    recall = recall_per_language(model, tokenizer, data.native)  # through the core's encoding, as users see it
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
