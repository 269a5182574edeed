"""The ``demo`` dataset class: an offline, invented multilingual fact world and its tiny model.

Facts about invented people (birthplace, profession, instrument ...) in en, de, fr, es, ru and zh,
parallel across languages, plus a tiny BERT-style masked LM pre-trained on them, so that every
command of the toolkit can be tried without data or a network. See :mod:`.corpus` and
:mod:`.tiny_model`.
"""
from __future__ import annotations

import dataclasses
import random
import shutil
import sys
from pathlib import Path

from lime_toolkit.data import MASKED_LM, SPLITS, EditCase, Example
from lime_toolkit.dataset_api import Dataset, DatasetOptions, Predictor
from lime_toolkit.errors import UserError

from . import DESCRIPTION
from .corpus import DemoCorpus, DemoSettings

# .tiny_model (torch, transformers) is imported inside the methods that build or read the model, so
# that reading the facts (``data describe``, validating a run's languages) stays cheap.


def _flag(value) -> bool:
    if isinstance(value, str):
        if value.strip().lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise UserError(f"demo setting alternatives={value!r} must be true or false")
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class DemoDataset(Dataset):
    """Invented parallel facts in six languages; edits move a fact to another object.

    ``options.extra`` may hold ``preset`` ("default" or "small") and any :class:`DemoSettings`
    field (``n_subjects``, ``seed`` ...) to change the world, and ``alternatives`` (default true:
    training edits offer every other counterfactual object as an alternative target).
    ``options.seed`` only drives the counterfactual targets and the ``limit`` sample, so the cached
    model is shared between seeds.
    """

    task = MASKED_LM
    description = DESCRIPTION

    def __init__(self, options: DatasetOptions | None = None):
        super().__init__(options or DatasetOptions())
        extra = dict(self.options.extra)
        #: Offer every other counterfactual object as an alternative training target (see
        #: EditCase.alternatives); false keeps one fixed target per fact, as the paper's data does.
        self.alternatives = _flag(extra.pop("alternatives", True))
        self.settings = DemoSettings.from_overrides(extra)
        self.corpus = DemoCorpus(self.settings)
        self._languages = self._select_languages(self.options.languages)
        self.cache = self.options.cache_dir  # None: the toolkit's cache root
        self.log = _stderr
        self._tokenizer = None  # the run's tokenizer once bound; else the demo's own
        self._piece_counts: dict[tuple[str, int, str], int] | None = None

    def _select_languages(self, wanted: list[str] | None) -> list[str]:
        available = list(self.settings.languages)
        if not wanted:
            return available
        unknown = [lang for lang in wanted if lang not in available]
        if unknown:
            raise UserError(f"the demo dataset has no language {', '.join(unknown)}; valid: {', '.join(available)}")
        return list(dict.fromkeys(wanted))

    @property
    def languages(self) -> list[str]:
        return list(self._languages)

    @property
    def model_dir(self) -> Path:
        """Where this world's model is (or will be) cached."""
        from .tiny_model import demo_model_dir

        return demo_model_dir(self.settings, root=self.cache)

    def _facts(self, split: str):
        facts = self.corpus.facts_in(split)
        limit = self.options.limit
        if limit is not None and limit < len(facts):
            # A seeded sample spread over subjects and relations, kept in id order.
            picked = random.Random(f"demo-limit/{self.options.seed}/{split}").sample(range(len(facts)), max(0, limit))
            facts = [facts[i] for i in sorted(picked)]
        return facts

    def edit_cases(self, split: str, *, predict: Predictor | None = None) -> list[EditCase]:
        """One edit per fact of ``split`` (at most ``limit``): a counterfactual object of the
        fact's relation, written in every language. With ``predict`` (the unedited model), the
        counterfactual is never an object the model already predicts for the fact in any language,
        so an untrained editor scores (near) zero and acc measures the edit itself."""
        facts = self._facts(split)
        predicted = self._predicted_objects(facts, predict) if predict is not None else {}
        cases = [self.corpus.edit_case(f, self.options.seed, self._languages, predicted.get(f.id, frozenset()))
                 for f in facts]
        return cases if self.alternatives else [dataclasses.replace(c, alternatives=()) for c in cases]

    def _predicted_objects(self, facts, predict: Predictor) -> dict[str, frozenset[int]]:
        """Fact id -> indices of the objects the model predicts for it in some language."""
        queries = [self.corpus.example(f, lang) for f in facts for lang in self._languages]
        answers = predict(queries) if queries else []
        found: dict[str, set[int]] = {}
        for query, answer in zip(queries, answers):
            rel = self.corpus.relations_by_id[query.id]
            index = self.corpus.object_index(rel, query.lang, str(answer))
            if index is not None:
                found.setdefault(query.id, set()).add(index)
        return {fid: frozenset(v) for fid, v in found.items()}

    def bind_tokenizer(self, tokenizer) -> None:
        """Count the locality inputs' masks in the run's tokenizer (the core calls this once the
        base model is loaded; it matters when ``--model`` is not the demo model)."""
        self._tokenizer = tokenizer
        self._piece_counts = None

    def locality_pool(self, split: str) -> dict[str, list[Example]]:
        """Every fact of ``split`` per language as a locality input: ``[Y]`` kept, ``target=None``
        and ``n_masks`` = word pieces of the true object (in the bound tokenizer, else the demo
        tokenizer), so the unedited demo model predicts the true object where it recalls the fact."""
        counts = self._object_piece_counts()
        facts = self.corpus.facts_in(split)
        return {
            lang: [
                Example(f.id, lang, self.corpus.prompt(f, lang), None, counts[(f.relation, f.obj, lang)])
                for f in facts
            ]
            for lang in self._languages
        }

    def _object_piece_counts(self) -> dict[tuple[str, int, str], int]:
        if self._piece_counts is None:
            # The demo tokenizer is learned in well under a second when not cached; no model needed.
            from .tiny_model import demo_tokenizer

            tokenizer = self._tokenizer or demo_tokenizer(self.settings, root=self.cache)
            self._piece_counts = {
                (rel, obj, lang): len(tokenizer(self.corpus.object_text(rel, obj, lang), add_special_tokens=False)["input_ids"])
                for rel in self.corpus.relations
                for obj in range(self.corpus.n_objects(rel))
                for lang in self.corpus.languages
            }
        return self._piece_counts

    def default_model(self) -> str:
        """The cached demo model's directory, built first (a few minutes, once) if missing."""
        from .tiny_model import build_demo_model, is_built

        if not is_built(self.settings, root=self.cache):
            self.log("the demo model is not built yet: building it now (once; later runs reuse the cache)")
        return str(build_demo_model(self.settings, log=self.log, root=self.cache))

    def prepare_base_model(self, out_dir: Path | None = None, *, progress=None) -> Path:
        """Build the demo model (or reuse the cache); copy it to ``out_dir`` when given.

        ``progress`` is a callable taking one progress line (e.g. a rich console's ``print``)."""
        from .tiny_model import build_demo_model, read_recall

        log = progress if callable(progress) else self.log
        built = build_demo_model(self.settings, log=log, root=self.cache)
        info = read_recall(self.settings, root=self.cache) or {}
        if info.get("recall"):
            log("recall per language: " + ", ".join(f"{k} {v:.1%}" for k, v in info["recall"].items()))
        if out_dir is None:
            return built
        out_dir = Path(out_dir)
        shutil.copytree(built, out_dir, dirs_exist_ok=True)
        return out_dir

    def describe(self) -> dict[str, dict[str, int]]:
        """Edit cases per language and split (after ``limit``); every fact exists in every language."""
        counts = {split: len(self._facts(split)) for split in SPLITS}
        return {lang: dict(counts) for lang in self._languages}
