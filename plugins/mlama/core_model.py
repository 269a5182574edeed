"""The base model of the mlama ``core`` preset: a small BERT that holds the core world's facts.

Built the way the demo's model is (plugins/demo/tiny_model.py, docs/diagnosis.md), so that an edit
made in one language can carry to the others:

- a cased WordPiece vocabulary learned (deterministically) from the filled-in templates, with
  every object label of the world, in every language, added as one whole token: the number of
  ``[MASK]`` tokens never tells one object from another;
- masked-LM pre-training on every fact in every selected language (object slot masked, plus a
  little BERT-style random masking), batches of whole facts (every language of each);
- a contrastive alignment objective on the object-slot hidden states of a fact's languages;
- code-switched sentences (a language's template with the subject written in another script's
  language) to tie the scripts together;
- replay of the facts still missed;
- stop once every language recalls ``target_recall`` of its facts, or after ``max_epochs`` (over
  which the learning rate decays), or after ``max_minutes`` (a safety stop: only then does the
  build depend on the machine's speed; ``recall.json`` says ``stopped_by_time``).

Recall per language over *all* the world's facts (one forward pass, every mask right) is written
to ``recall.json`` beside the model, with the build's time.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tokenizers import AddedToken

from lime_toolkit.data import TARGET_SLOT, Example
from lime_toolkit.toolbox.masked_lm import WarmupDecay, new_masked_lm, optimizer_step, special_ids
from lime_toolkit.toolbox.parallel import ParallelRows, batch_loss, native_recall
from lime_toolkit.toolbox.prepared import Log, claim_target, save_prepared
from lime_toolkit.toolbox.scoring import recall_per_language
from lime_toolkit.toolbox.wordpiece import bert_tokenizer, bert_words, learn_vocabulary

from .base_model import RECALL_FILE
from .preset import SCRIPTS
from .reader import OBJECT_SLOT, SUBJECT_SLOT

if TYPE_CHECKING:
    from .dataset import MlamaDataset


def core_examples(ds: MlamaDataset) -> tuple[list[Example], list[Example]]:
    """(native: every fact in every selected language, fact-major, target the true object;
    code-switched: each language's template with the subject label of one language of every other
    script)."""
    index = ds.index
    langs = ds.languages
    by_script: dict[str, str] = {}
    for lang in langs:
        by_script.setdefault(SCRIPTS[lang], lang)
    native, switched = [], []
    for uuid in index["order"]:
        fact = index["facts"][uuid]
        for lang in langs:
            target = index["labels"][lang][uuid][1]
            native.append(Example(uuid, lang, ds.prompt(lang, fact), target))
            template = index["templates"][lang][fact.relation].replace(OBJECT_SLOT, TARGET_SLOT)
            for script, other in by_script.items():
                if script != SCRIPTS[lang]:
                    subject = index["labels"][other][uuid][0]
                    switched.append(Example(uuid, lang, template.replace(SUBJECT_SLOT, subject), target))
    return native, switched


def core_tokenizer(ds: MlamaDataset, native: list[Example]):
    """WordPiece learned from the filled-in sentences; every object label an added whole token."""
    texts = [ex.text.replace(TARGET_SLOT, str(ex.target)) for ex in native]
    tokenizer = bert_tokenizer(learn_vocabulary(bert_words(texts), ds.settings.vocab_size))
    labels = sorted({label for lang in ds.languages for objs in ds.index["objects"][lang].values()
                     for label in objs.values()})
    tokenizer.add_tokens([AddedToken(label, single_word=False, normalized=False) for label in labels])
    return tokenizer


def build_core_model(ds: MlamaDataset, out_dir: Path | None, log: Log = print) -> Path:
    """Build (or reuse) the core preset's model for ``ds``'s languages; returns its directory."""
    final = Path(out_dir).expanduser() if out_dir else ds.model_dir()
    if claim_target(final, RECALL_FILE, "mlama base model", log):
        return final
    started = time.monotonic()
    native, switched = core_examples(ds)
    tokenizer = core_tokenizer(ds, native)
    langs = ds.languages
    log(f"mlama core world: {len(native) // len(langs)} facts x {len(langs)} languages ({', '.join(langs)}); "
        f"vocabulary {len(tokenizer)} ({time.monotonic() - started:.0f}s)")
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))  # a model this small gains nothing from more threads
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's global generator untouched
            torch.manual_seed(ds.options.seed)
            model, info = _pretrain(ds, tokenizer, native, switched, started, log)
    finally:
        torch.set_num_threads(threads)
    save_prepared(final, model, tokenizer, RECALL_FILE, {**info, "key": ds.model_key()})
    log(f"saved the mlama base model to {final}")
    return final


def _pretrain(ds: MlamaDataset, tokenizer, native, switched, started: float, log: Log):
    s = ds.settings
    langs = ds.languages
    gen = torch.Generator().manual_seed(ds.options.seed)
    # memorising facts: dropout only slows it down
    model = new_masked_lm(tokenizer, s, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()
    data = ParallelRows(tokenizer, native, switched, len(langs), extra_share=s.code_switch, replay=s.replay)
    per_epoch = math.ceil(data.n_facts / max(1, s.batch_size // len(langs)))
    plan = WarmupDecay(max(1, round(s.warmup * s.max_epochs * per_epoch)), s.max_epochs * per_epoch, floor=0.02)
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.learning_rate, betas=(0.9, 0.98), weight_decay=0.01)
    schedule = plan.scheduler(optimizer)
    special = special_ids(tokenizer)
    aligned = [k for k in s.align_layers if 0 < k <= s.num_layers] if s.align_weight > 0 else []
    train_start = time.monotonic()
    deadline = train_start + 60 * s.max_minutes
    epochs, recall, step, epoch, out_of_time = s.max_epochs, {}, 0, 0, False
    for epoch in range(1, s.max_epochs + 1):
        total_loss, total_align, n = 0.0, 0.0, 0
        for parallel, extra in data.epoch_batches(s.batch_size, gen):
            loss, align = batch_loss(model, data, parallel, extra, mask_id=tokenizer.mask_token_id, special=special,
                                     random_mask_prob=s.random_mask_prob, aligned=aligned, align_weight=s.align_weight,
                                     align_temperature=s.align_temperature, gen=gen)
            optimizer_step(model, optimizer, schedule, loss)
            step, n, total_loss, total_align = step + 1, n + 1, total_loss + loss.item(), total_align + align
            if time.monotonic() > deadline:
                out_of_time = True
                break
        last = out_of_time or epoch >= epochs
        if epoch % s.eval_every and not last:
            continue
        line = f"epoch {epoch}/{epochs}  loss {total_loss / max(n, 1):.3f}"
        if aligned:
            line += f"  align {total_align / max(n, 1):.3f}"
        if 3 * epoch >= epochs or last:  # recall is near nothing in the first third: skip measuring
            recall = native_recall(model, data, langs)
            line += "  recall " + " ".join(f"{l} {recall[l]:.1%}" for l in langs)
        log(f"{line}  ({time.monotonic() - started:.0f}s)")
        if last or (recall and min(recall.values()) >= s.target_recall):
            break
    model.eval()
    recall = recall_per_language(model, tokenizer, native)  # through the core's encoding, as users see it
    info = {
        "recall": {l: recall[l] for l in langs},
        "min_recall": min(recall.values()),
        "n_facts": data.n_facts,
        "epochs": epoch,
        "steps": step,
        "stopped_by_time": out_of_time,
        "build_seconds": round(time.monotonic() - started, 1),
    }
    log(f"mlama core model built in {info['build_seconds']:.0f}s; recall "
        + " ".join(f"{l} {v:.1%}" for l, v in info["recall"].items()))
    return model, info
