"""The ``xnli`` dataset: parallel premise/hypothesis pairs in 15 languages, three labels.

Editing splits. XNLI has no split meant for editor training, so the pairs the user has are divided
into train/dev/test *by premise group* (each premise comes with three hypotheses, one per label;
the three stay in one split, so no premise is seen both while training the editor and in its test
edits). With one file split (the shared copy has only ``dev``) its premise groups are shuffled
with ``split_seed`` and cut ``split`` (default 60/10/30); with both ``dev`` and ``test`` files, the
dev file is cut into train/dev by ``dev_split`` (default 85/15) and the test file is the test split.
Groups are keyed by the premise in the anchor language (English when present), so the split does
not depend on which languages a run selects.

Edits. Train and dev edits ask for a uniformly random label (``exclude_current``: a label the raw
model predicts in none of the pair's languages, else one other than its prediction in the first
language). Test edits are the base model's errors: one case
per pair the base model gets wrong in at least one selected language, every language's input carries
the gold label, and the case may be edited only in the languages where the base model is wrong
(``EditCase.edit_langs`` when the core has it; always ``meta["edit_langs"]``).
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import fields as dataclass_fields
from pathlib import Path

from lime_toolkit.cache import cache_root, settings_key
from lime_toolkit.data import CLASSIFICATION, SPLITS, EditCase, Example
from lime_toolkit.dataset_api import Dataset, DatasetOptions, Predictor
from lime_toolkit.errors import UserError

from .reader import LABELS, PAPER_ORDER, XnliTable, fingerprint, locate, order_languages, read_table
from .settings import XnliSettings


def make_case(case_id: str, inputs: dict[str, Example], meta: dict, edit_langs: list[str] | None) -> EditCase:
    """An :class:`EditCase`, restricted to ``edit_langs`` as edit languages when the core supports it.

    The restriction is always recorded in ``meta["edit_langs"]``; it is passed as the
    ``EditCase.edit_langs`` field when the core's data model has that field."""
    if edit_langs is not None:
        meta = {**meta, "edit_langs": list(edit_langs)}
        if "edit_langs" in {f.name for f in dataclass_fields(EditCase)}:
            return EditCase(case_id, inputs, meta, edit_langs=tuple(edit_langs))
    return EditCase(case_id, inputs, meta)


def stable_rank(*parts) -> str:
    """A hash that orders items the same way on every machine and Python version."""
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


class XnliDataset(Dataset):
    """XNLI for cross-lingual editing (see the module docstring for splits and edits)."""

    task = CLASSIFICATION
    num_labels = len(LABELS)
    description = "XNLI: premise/hypothesis pairs, 15 parallel languages, labels entailment/neutral/contradiction"

    def __init__(self, options: DatasetOptions):
        super().__init__(options)
        self.settings = XnliSettings.from_extra(options.extra)
        self.source, self.location = locate(options.data_dir, self.settings.source, self.settings.hf_name)
        self._table: XnliTable | None = None
        self._languages: list[str] | None = None
        self._plan: dict[str, tuple[str, list[str]]] | None = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        return Path(self.options.cache_dir).expanduser() if self.options.cache_dir else cache_root()

    def _hub_languages(self) -> list[str]:
        wanted = self._check_languages(list(PAPER_ORDER))
        return order_languages(set(wanted) | {"en"})

    @property
    def table(self) -> XnliTable:
        if self._table is None:
            langs = self._hub_languages() if self.source == "hf" else None
            self._table = read_table(self.source, self.location, self.cache_dir, langs)
        return self._table

    def available_languages(self) -> list[str]:
        """Every language the data has, in the paper's order."""
        return list(PAPER_ORDER) if self.source == "hf" else self.table.languages

    def _check_languages(self, available: list[str]) -> list[str]:
        if not self.options.languages:
            return list(available)
        unknown = [l for l in self.options.languages if l not in available]
        if unknown:
            raise UserError(f"XNLI has no language(s) {', '.join(unknown)} in {self.location}; available: "
                            f"{', '.join(available)}")
        return list(dict.fromkeys(self.options.languages))

    @property
    def languages(self) -> list[str]:
        if self._languages is None:
            langs = self._check_languages(self.available_languages())
            if self.source == "hf":
                have = self.table.languages
                langs = [l for l in langs if l in have]
            if not langs:
                raise UserError(f"XNLI data in {self.location} has no languages")
            self._languages = langs
        return list(self._languages)

    @property
    def anchor(self) -> str:
        """The language whose premise keys the premise groups (English when present)."""
        have = self.table.languages
        return "en" if "en" in have else have[0]

    # -- splits ----------------------------------------------------------------------------

    def _group_of(self, file_split: str, pid: str) -> str:
        per = self.table.rows[file_split]
        for lang in [self.anchor, *self.table.languages]:
            row = per.get(lang, {}).get(pid)
            if row is not None:
                return f"{lang}:{row[0]}"
        raise KeyError(pid)  # pragma: no cover - every ordered pid exists somewhere

    def _cut(self, file_split: str, shares: tuple[float, ...]) -> list[list[str]]:
        pids = self.table.order[file_split]
        groups = {pid: self._group_of(file_split, pid) for pid in pids}
        keys = sorted(set(groups.values()))
        random.Random(f"xnli-split/{self.settings.split_seed}").shuffle(keys)
        n = len(keys)
        sizes = [max(1, round(n * s)) if n >= len(shares) else 0 for s in shares[1:]]
        bounds, start = [], n - sum(sizes)
        bounds.append(start)
        for size in sizes[:-1]:
            start += size
            bounds.append(start)
        part_of = {}
        for rank, key in enumerate(keys):
            part_of[key] = sum(rank >= b for b in bounds)
        parts: list[list[str]] = [[] for _ in shares]
        for pid in pids:
            parts[part_of[groups[pid]]].append(pid)
        return parts

    def split_plan(self) -> dict[str, tuple[str, list[str]]]:
        """``{editing split: (file split, pair ids in file order)}`` before ``limit``."""
        if self._plan is None:
            file_splits = self.table.file_splits
            if not file_splits:
                raise UserError(f"no XNLI rows in {self.location}")
            if "dev" in file_splits and "test" in file_splits:
                train, dev = self._cut("dev", self.settings.dev_split)
                self._plan = {"train": ("dev", train), "dev": ("dev", dev), "test": ("test", list(self.table.order["test"]))}
            else:
                only = file_splits[0]
                train, dev, test = self._cut(only, self.settings.split)
                self._plan = {"train": (only, train), "dev": (only, dev), "test": (only, test)}
        return self._plan

    def items(self, split: str) -> tuple[str, list[str]]:
        """The pairs of editing ``split`` (at most ``options.limit``, a stable choice) in file order."""
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
        file_split, pids = self.split_plan()[split]
        langs = self.languages
        rows = self.table.rows[file_split]
        pids = [p for p in pids if any(p in rows.get(l, {}) for l in langs)]
        limit = self.options.limit
        if limit is not None and len(pids) > limit:
            keep = set(sorted(pids, key=lambda p: stable_rank("xnli-limit", self.settings.split_seed, split, p))[:limit])
            pids = [p for p in pids if p in keep]
        return file_split, pids

    # -- examples and edits ----------------------------------------------------------------

    def _examples(self, split: str) -> tuple[str, list[tuple[str, dict[str, Example]]]]:
        """``(file split, [(case id, {lang: example with the gold label})])`` of editing ``split``."""
        file_split, pids = self.items(split)
        rows = self.table.rows[file_split]
        out = []
        for pid in pids:
            case_id = f"{file_split}-{pid}"
            inputs = {}
            for lang in self.languages:
                row = rows.get(lang, {}).get(pid)
                if row is not None:
                    inputs[lang] = Example(case_id, lang, (row[0], row[1]), row[2])
            out.append((case_id, inputs))
        return file_split, out

    def edit_cases(self, split: str, *, predict: Predictor | None = None) -> list[EditCase]:
        if split == "test":
            return self._test_cases(predict)
        file_split, items = self._examples(split)
        preds: dict[str, list[int]] = {}  # case id -> the base model's predictions, in language order
        if self.settings.exclude_current:
            if predict is None:
                raise UserError("xnli setting exclude_current needs the base model's predictions (predict=...)")
            flat = [ex for _, inputs in items for ex in inputs.values()]
            for ex, p in zip(flat, predict([_unlabelled(ex) for ex in flat])):
                preds.setdefault(ex.id, []).append(int(p))
        cases = []
        for case_id, inputs in items:
            rng = random.Random(f"xnli-edit/{self.options.seed}/{case_id}")
            choices = list(range(len(LABELS)))
            if self.settings.exclude_current and preds.get(case_id):
                # a label predicted in none of the languages; else one other than the first language's
                mine = preds[case_id]
                choices = [y for y in choices if y not in mine] or [y for y in choices if y != mine[0]]
            label = rng.choice(choices)
            gold = next(iter(inputs.values())).target
            new_inputs = {l: Example(ex.id, l, ex.text, label) for l, ex in inputs.items()}
            cases.append(EditCase(case_id, new_inputs, {"gold": gold, "gold_label": LABELS[gold],
                                                        "file_split": file_split}))
        return cases

    def _test_cases(self, predict: Predictor | None) -> list[EditCase]:
        if predict is None:
            raise UserError("XNLI test edits are the base model's errors, so edit_cases('test') needs predict= "
                            "(the base model's predictor)")
        file_split, items = self._examples("test")
        flat = [ex for _, inputs in items for ex in inputs.values()]
        predicted = {(ex.id, ex.lang): int(p) for ex, p in zip(flat, predict([_unlabelled(ex) for ex in flat]))}
        cases = []
        for case_id, inputs in items:
            wrong = [l for l, ex in inputs.items() if predicted[(case_id, l)] != ex.target]
            if not wrong:
                continue
            gold = next(iter(inputs.values())).target
            meta = {"gold": gold, "gold_label": LABELS[gold], "file_split": file_split, "wrong_in": wrong,
                    "raw_predictions": {l: predicted[(case_id, l)] for l in inputs}}
            cases.append(make_case(case_id, inputs, meta, wrong))
        return cases

    def locality_pool(self, split: str) -> dict[str, list[Example]]:
        _, items = self._examples(split)
        pool: dict[str, list[Example]] = {l: [] for l in self.languages}
        for _, inputs in items:
            for lang, ex in inputs.items():
                pool[lang].append(_unlabelled(ex))
        return pool

    def describe(self) -> dict[str, dict[str, int]]:
        """Rows per language and file split, as read (``dev``, and ``test`` when there is one)."""
        rows = self.table.rows
        return {lang: {s: len(rows[s][lang]) for s in self.table.file_splits if lang in rows[s]}
                for lang in self.languages}

    def split_sizes(self) -> dict[str, int]:
        """Pairs per editing split (after ``limit``)."""
        return {s: len(self.items(s)[1]) for s in SPLITS}

    # -- the base model ---------------------------------------------------------------------

    def model_key(self) -> dict:
        return {
            "data": fingerprint(self.source, self.location, self._hub_languages() if self.source == "hf" else None),
            "languages": self.languages,
            "limit": self.options.limit,
            "seed": self.options.seed,
            **self.settings.model_dict(),
        }

    def model_dir(self) -> Path:
        """Where ``prepare_base_model`` caches the base model for these settings."""
        return self.cache_dir / "xnli" / settings_key(self.model_key()) / "model"

    def default_model(self) -> str:
        from .base_model import find_base_model

        found = find_base_model(self)
        if found is None:
            where = f" --data-dir {self.options.data_dir}" if self.options.data_dir else ""
            raise UserError(f"no prepared XNLI model for these settings; build one with `lime-toolkit prepare-base "
                            f"--dataset xnli{where}` (a tiny BERT, a few minutes on CPU) or pass --model with a "
                            f"fine-tuned multilingual classifier")
        return str(found)

    def prepare_base_model(self, out_dir: Path | None = None, *, progress=None) -> Path:
        from .base_model import build_base_model

        return build_base_model(self, out_dir, log=progress or print)


def _unlabelled(ex: Example) -> Example:
    return Example(ex.id, ex.lang, ex.text, None)
