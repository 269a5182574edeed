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
from lime_toolkit.toolbox.prepared import Log, is_prepared, save_prepared
from lime_toolkit.toolbox.scoring import recall_per_language, slot_predictions
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


class _TrainingRows:
    """Every training sentence encoded once: the native rows (each fact in each language, the
    evaluation format, fact-major) first, then the code-switched ones."""

    def __init__(self, corpus: DemoCorpus, tokenizer: BertTokenizer, settings: DemoSettings):
        native, switched = _training_examples(corpus)
        if settings.code_switch <= 0:
            switched = []
        self.native = native
        self.n_langs = len(corpus.languages)
        self.n_facts = len(corpus.facts)
        self.ids, self.labels = pad_rows(encode_slot_rows(tokenizer, native + switched), tokenizer.pad_token_id)
        self.pad = tokenizer.pad_token_id
        self.lengths = (self.ids != self.pad).sum(1)
        self.n_native = len(native)
        self.n_switched_pool = len(switched)
        self.code_switch = settings.code_switch
        self.replay = settings.replay
        self.missed = torch.ones(self.n_native, dtype=torch.bool)  # native rows wrong at their last pass

    def epoch_batches(self, batch_size: int, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch as ``(parallel rows, extra rows)`` batches. The parallel rows are whole facts,
        every language of each (so the alignment objective can compare them); the extra rows are a
        sample of code-switched rows and of native rows still missed (hard-example replay, so the
        languages whose subjects take many word pieces, like zh, are not left behind)."""
        per_batch = max(1, batch_size // self.n_langs)
        facts = torch.randperm(self.n_facts, generator=gen).split(per_batch)
        langs = torch.arange(self.n_langs)
        batches = []
        for group in facts:
            parallel = (group[:, None] * self.n_langs + langs[None, :]).reshape(-1)
            extra = []
            n_switch = round(self.code_switch * len(parallel))
            if n_switch and self.n_switched_pool:
                extra.append(self.n_native + torch.randint(self.n_switched_pool, (n_switch,), generator=gen))
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


def alignment_loss(states: list[torch.Tensor], n_langs: int, temperature: float = 0.1) -> torch.Tensor:
    """A contrastive objective that makes parallel sentences look alike and different facts not.

    ``states`` are object-slot hidden states [facts * n_langs, hidden] (fact-major), one tensor per
    aligned layer. Every state must pick out, among all others of the batch, the same fact in the
    other languages (cross-entropy over cosine similarities / ``temperature``, targets spread
    evenly over the parallel states): aligned, yet still telling facts apart."""
    total = states[0].new_zeros(())
    for h in states:
        v = torch.nn.functional.normalize(h, dim=-1)
        logits = (v @ v.T) / temperature
        n = len(v)
        fact = torch.arange(n, device=v.device) // n_langs
        self_mask = torch.eye(n, dtype=torch.bool, device=v.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        positive = (fact[:, None] == fact[None, :]) & ~self_mask
        log_p = torch.log_softmax(logits, dim=-1).masked_fill(~positive, 0.0)
        total = total - (log_p.sum(-1) / positive.sum(-1)).mean()
    return total / len(states)


def _pretrain(settings: DemoSettings, corpus: DemoCorpus, tokenizer: BertTokenizer, log: Log):
    """Masked-LM pre-training (plus the cross-lingual alignment objective) until every language
    recalls ``target_recall`` of the facts (or ``max_epochs``). Returns the model and the build
    facts for ``recall.json``."""
    started = time.monotonic()
    gen = torch.Generator().manual_seed(settings.seed)
    model = _new_model(settings, tokenizer)
    model.train()
    data = _TrainingRows(corpus, tokenizer, settings)
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
            rows = torch.cat([parallel, extra])
            width = int(data.lengths[rows].max())
            slot_labels = data.labels[rows, :width]
            ids, labels = random_mask(data.ids[rows, :width], slot_labels, settings.random_mask_prob,
                                      tokenizer.mask_token_id, special, gen)
            out = model.bert(**model_inputs(ids, data.pad), output_hidden_states=bool(aligned))
            r, c = (labels != IGNORE).nonzero(as_tuple=True)
            logits = model.cls(out.last_hidden_state[r, c])
            loss = torch.nn.functional.cross_entropy(logits, labels[r, c])
            if aligned:
                # the object slot of each parallel row (one word piece: exactly one slot per row)
                sr, sc = (slot_labels[: len(parallel)] != IGNORE).nonzero(as_tuple=True)
                align = alignment_loss([out.hidden_states[k][sr, sc] for k in aligned], data.n_langs,
                                       settings.align_temperature)
                loss = loss + settings.align_weight * align
                total_align += float(align.detach())
            data.note_misses(rows, r, slot_labels[r, c], logits.detach().argmax(-1))
            optimizer_step(model, optimizer, schedule, loss)
            step += 1
            total_loss, n_batches = total_loss + loss.item(), n_batches + 1
        if epoch % settings.eval_every and epoch < settings.max_epochs:
            continue
        line = f"epoch {epoch}/{settings.max_epochs}  loss {total_loss / n_batches:.3f}"
        if aligned:
            line += f"  align {total_align / n_batches:.3f}"
        if 2 * epoch > settings.max_epochs:  # recall is near chance in the first half: skip measuring
            recall = _native_recall(model, data, corpus.languages)
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


@torch.no_grad()
def _native_recall(model, data: _TrainingRows, languages: list[str], batch_size: int = 512) -> dict[str, float]:
    """Recall per language on the pre-encoded native rows (a fast path for progress lines)."""
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
