"""One edit by hand (``lime-toolkit edit``): apply it, show predictions before and after on the
parallel inputs in every language and on a few unrelated inputs, and optionally save the edited
model so that plain ``transformers`` loads it.

Masked-LM input: a sentence with ``[MASK]`` (one, or several adjacent ones, standing for the answer
slot; the core gives the slot as many mask tokens as the target has word pieces) or the core's
``[Y]``. Classification input: a text, or ``"premise ||| hypothesis"``; the target is a class index
or a label name.
"""
from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lime_toolkit.data import CLASSIFICATION, MASKED_LM, TARGET_SLOT, Example
from lime_toolkit.encoding import encode_examples, per_example, target_token_ids
from lime_toolkit.errors import UserError
from lime_toolkit.models import Params, decode_predictions, position_logits
from lime_toolkit.run import Run

PAIR_SEPARATOR = "|||"
SEARCH_ORDER = ("test", "dev", "train")  # where a user's input is looked for, smallest split first
_MASK_RUN = re.compile(r"\[MASK\](?:\s*\[MASK\])*")


def parse_input(text: str, task: str):
    """The user's input as an :class:`Example` text: ``[MASK]`` runs become :data:`TARGET_SLOT`
    (masked LM); ``a ||| b`` becomes a pair (classification)."""
    text = text.strip()
    if task == MASKED_LM:
        slots = _MASK_RUN.findall(text)
        if TARGET_SLOT in text:
            if slots:
                raise UserError(f"use either [MASK] or {TARGET_SLOT} for the answer slot, not both")
            if text.count(TARGET_SLOT) > 1:
                raise UserError(f"the input has several {TARGET_SLOT} slots; give exactly one")
            return text
        if len(slots) != 1:
            raise UserError("a masked-LM input needs exactly one answer slot: [MASK] (or several adjacent "
                            f"[MASK]s) where the answer goes; found {len(slots)} separate slot(s)")
        return _MASK_RUN.sub(TARGET_SLOT, text)
    if PAIR_SEPARATOR in text:
        first, second = (part.strip() for part in text.split(PAIR_SEPARATOR, 1))
        return (first, second)
    return text


def label_names(run: Run) -> list[str] | None:
    """Class names of a classification run: the dataset's ``label_names`` if it has them, else the
    model's ``id2label`` unless it is the generic ``LABEL_i``."""
    names = getattr(run.dataset, "label_names", None)
    if names:
        return list(names)
    id2label = getattr(run.model.config, "id2label", None) or {}
    names = [id2label[i] for i in sorted(id2label)]
    return names if names and not all(str(n).startswith("LABEL_") for n in names) else None


def parse_target(target: str, run: Run):
    """A masked-LM target string, or a class index (from an integer or a label name)."""
    if run.task == MASKED_LM:
        if not target.strip():
            raise UserError("--target is empty")
        return target.strip()
    names = label_names(run) or []
    n = run.dataset.num_labels or len(names)
    if target.strip().lstrip("-").isdigit():
        value = int(target)
    elif target.strip().lower() in [str(x).lower() for x in names]:
        value = [str(x).lower() for x in names].index(target.strip().lower())
    else:
        raise UserError(f"target '{target}' is neither a class index nor a label name"
                        + (f" ({', '.join(names)})" if names else ""))
    if n and not 0 <= value < n:
        raise UserError(f"class index {value} is out of range for {n} labels")
    return value


def _norm(text) -> str:
    if isinstance(text, tuple):
        return " ||| ".join(_norm(t) for t in text)
    return " ".join(str(text).lower().split())


@dataclass
class ParallelItem:
    """The known item the user's input matched: its id, its example per language, and the desired
    target per language where the dataset knows how the target reads there."""

    id: str
    inputs: dict[str, Example]
    targets: dict = field(default_factory=dict)


def _cases(run: Run, split: str):
    try:
        return run.cases(split)
    except UserError:
        return []


def find_parallel(run: Run, lang: str, text, target) -> ParallelItem | None:
    """Find the item in ``lang`` whose text equals ``text`` (case and spacing ignored), searching the
    locality pools and (masked LM) the edit cases of every split; None if none matches. For a
    masked-LM target, the target's form in the other languages is taken from any edit case whose
    target in ``lang`` is ``target``."""
    want = _norm(text)
    item = None
    for split in SEARCH_ORDER:
        pool = run.pool(split)
        hit = next((ex for ex in pool.get(lang, []) if _norm(ex.text) == want), None)
        if hit is not None:
            inputs = {l: next((ex for ex in exs if ex.id == hit.id), None) for l, exs in pool.items()}
            item = ParallelItem(hit.id, {l: ex for l, ex in inputs.items() if ex is not None})
            break
    if run.task == CLASSIFICATION:
        if item is not None:
            item.targets = {l: target for l in item.inputs}
        return item
    targets: dict = {}
    for split in SEARCH_ORDER:
        for case in _cases(run, split):
            mine = case.inputs.get(lang)
            if mine is None:
                continue
            if item is None and _norm(mine.text) == want:
                item = ParallelItem(case.id, dict(case.inputs))
            if not targets and _norm(mine.target) == _norm(target):
                targets = {l: ex.target for l, ex in case.inputs.items()}
        if item is not None and targets:
            break
    if item is not None:
        item.targets = targets or {lang: target}
        item.targets[lang] = target
    return item


@dataclass
class Row:
    """One line of the edit table."""

    kind: str  # "edit", "parallel" or "unrelated"
    lang: str
    text: str
    target: str | None
    before: str
    after: str
    status: str  # "took", "missed", "kept", "changed" or "?" (no target known in that language)


@dataclass
class EditOutcome:
    params: Params
    rows: list[Row]
    item: ParallelItem | None


def _display(run: Run, ex: Example) -> str:
    if run.task == MASKED_LM:
        n = len(target_token_ids(run.tokenizer, str(ex.target))) if ex.target is not None else (ex.n_masks or 1)
        return ex.text.replace(TARGET_SLOT, " ".join(["[MASK]"] * n))
    return f"{ex.text[0]} {PAIR_SEPARATOR} {ex.text[1]}" if isinstance(ex.text, tuple) else ex.text


def _label(run: Run, value) -> str:
    names = label_names(run)
    if run.task == CLASSIFICATION and names and isinstance(value, int) and 0 <= value < len(names):
        return f"{value} ({names[value]})"
    return str(value)


def _predict(run: Run, examples: list[Example], params: Params | None):
    batch = encode_examples(run.tokenizer, examples, run.task).to(run.device)
    with torch.no_grad():
        pred = position_logits(run.model, batch, params).argmax(-1)
    decoded = decode_predictions(run.tokenizer, batch, pred.cpu())
    hit = per_example((pred == batch.labels).cpu(), batch.rows.cpu(), len(examples))
    return decoded, hit


def apply_edit(run: Run, text: str, target: str, lang: str, n_unrelated: int = 3, seed: int = 0) -> EditOutcome:
    """Edit ``run``'s model with (``text``, ``target``) in ``lang`` and compare predictions before
    and after on the edit input, its parallel versions (when the dataset knows the item) and
    ``n_unrelated`` unrelated inputs from the test locality pool."""
    if lang not in run.dataset.languages:
        raise UserError(f"unknown language '{lang}'; this dataset has: {', '.join(run.dataset.languages)}")
    parsed, goal = parse_input(text, run.task), parse_target(target, run)
    edit_ex = Example("user-input", lang, parsed, goal)
    run.system.eval()
    item = find_parallel(run, lang, parsed, goal)
    with torch.no_grad():
        params = run.system.edit(encode_examples(run.tokenizer, [edit_ex], run.task).to(run.device), lang)
    examples, kinds = [edit_ex], ["edit"]
    n_pieces = len(target_token_ids(run.tokenizer, goal)) if run.task == MASKED_LM else None
    if item is not None:
        for l in run.dataset.languages:
            ex = item.inputs.get(l)
            if ex is None or l == lang:
                continue
            want = item.targets.get(l)
            examples.append(Example(ex.id, l, ex.text, want, None if want is not None else n_pieces))
            kinds.append("parallel")
    pool = run.pool("test")
    rng = random.Random(f"{seed}:{_norm(parsed)}")
    langs = [l for l in run.dataset.languages if pool.get(l)]
    exclude = item.id if item else None
    for i in range(n_unrelated if langs else 0):
        candidates = [ex for ex in pool[langs[i % len(langs)]] if ex.id != exclude]
        if candidates:
            examples.append(rng.choice(candidates))
            kinds.append("unrelated")
    before, _ = _predict(run, examples, None)
    after, took = _predict(run, examples, params)
    rows = []
    for ex, kind, b, a, ok in zip(examples, kinds, before, after, took):
        if kind == "unrelated":
            status = "kept" if a == b else "changed"
        elif ex.target is None:
            status = "?"
        else:
            status = "took" if ok else "missed"
        rows.append(Row(kind, ex.lang, _display(run, ex), None if ex.target is None else _label(run, ex.target),
                        _label(run, b), _label(run, a), status))
    return EditOutcome(params, rows, item)


def save_edited_model(run: Run, params: Params, out_dir) -> Path:
    """Save a copy of the base model with the edited parameters (and the tokenizer) to ``out_dir``
    with ``save_pretrained``; ``AutoModelFor...from_pretrained(out_dir)`` then predicts as edited."""
    from lime_toolkit.files import atomic_directory

    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"--save '{out_dir}' already exists and is not empty; pass a new directory")
    model = copy.deepcopy(run.model).cpu()
    weights = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in params.items():
            weights[name].copy_(value.detach().to(device="cpu", dtype=weights[name].dtype))
    if out_dir.is_dir():
        out_dir.rmdir()  # empty: replaced by the complete save below
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(str(tmp))
        run.tokenizer.save_pretrained(str(tmp))
    return out_dir
