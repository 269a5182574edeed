"""The ``mlama`` dataset: facts <subject, relation, object> in up to 53 languages, linked by uuid.

Two presets (``dataset_options: {preset: ...}``): ``core`` (the default) is the world of
:mod:`.preset`, eight languages and closed-set relations, with the leak-free edits of
:mod:`.core_edits` and the model of :mod:`.core_model`; ``full`` is the whole release as described
below (its edits do not consult the model).

Languages (full): the release's languages sorted alphabetically (its directory order), or
``options.languages`` in the given order.

Facts are ordered by (relation, lineid). The editing split is made at the *subject* level: every
subject (``sub_uri``) is assigned to train/dev/test by a seeded hash (shares ``split``, default
8:1:1), so a subject appears in one split only and nothing else is dropped. The assignment does not
depend on which languages are selected.

Edit input: the relation's template in the language with ``[X]`` filled by the subject and ``[Y]``
kept as the target slot; the desired object is drawn uniformly, seeded by the fact, among the
relation's objects (the objects of that relation's facts) that exist in *every* language of the
case, other than the true object (and whose label differs from the true label), so the desired
object is the same entity in every language. Locality inputs: the split's facts with ``[Y]`` as
``k`` masks, ``k`` drawn from the language's distribution of object lengths in word pieces (with
the run's tokenizer once :meth:`MlamaDataset.bind_tokenizer` has been called, else the one given
as ``dataset_options.tokenizer``, else a word/character estimate).
"""
from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lime_toolkit.cache import cache_root, settings_key
from lime_toolkit.data import MASKED_LM, SPLITS, TARGET_SLOT, EditCase, Example
from lime_toolkit.dataset_api import Dataset, DatasetOptions, Predictor
from lime_toolkit.errors import UserError

from .linked import load_or_link
from .preset import CORE_LANGUAGES, restrict, select_core
from .reader import OBJECT_SLOT, SUBJECT_SLOT, LanguageData, available_languages, locate, read_language
from .settings import MlamaSettings


@dataclass(frozen=True)
class Fact:
    """A fact as linked across languages (by uuid)."""

    uuid: str
    relation: str
    lineid: int
    sub_uri: str
    obj_uri: str


def subject_split(sub_uri: str, shares: tuple[float, float, float], seed: int) -> str:
    """The split of subject ``sub_uri``: a seeded hash mapped onto the shares."""
    digest = hashlib.sha256(f"mlama-split/{seed}/{sub_uri}".encode()).hexdigest()
    u = int(digest[:12], 16) / float(16 ** 12)
    return "train" if u < shares[0] else "dev" if u < shares[0] + shares[1] else "test"


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_WORD = re.compile(r"\w+|[^\w\s]")


def estimate_pieces(label: str) -> int:
    """Word pieces of ``label`` estimated without a tokenizer: BERT pre-tokenisation (words and
    punctuation marks, every CJK character on its own), one piece each."""
    n = 0
    for token in _WORD.findall(label):
        cjk = len(_CJK.findall(token))
        n += cjk + (1 if len(token) > cjk else 0)
    return max(1, n)


class MlamaDataset(Dataset):
    """mLAMA for cross-lingual editing (see the module docstring)."""

    task = MASKED_LM
    description = "mLAMA 1.1: factual probes in 53 languages linked by uuid; edits ask for another object"

    def __init__(self, options: DatasetOptions):
        super().__init__(options)
        self.settings, tokenizer = MlamaSettings.from_extra(options.extra)
        self.root = locate(options.data_dir)
        self._tokenizer: Any = None
        self._tokenizer_spec = tokenizer
        self._available = available_languages(self.root)
        self._languages: list[str] | None = None
        self._data: dict[str, LanguageData] = {}
        self._index: dict | None = None
        self._lengths: dict[str, list[int]] = {}
        self._common: dict = {}
        self._pieces: dict[tuple[str, str], int] = {}
        self._prompts: dict[tuple[str, str], str] = {}

    # -- languages and reading ---------------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        return Path(self.options.cache_dir).expanduser() if self.options.cache_dir else cache_root()

    def available_languages(self) -> list[str]:
        return list(self._available)

    @property
    def core(self) -> bool:
        """Whether this is the ``core`` preset."""
        return self.settings.preset == "core"

    def _core_languages(self) -> list[str]:
        missing = [l for l in CORE_LANGUAGES if l not in self._available]
        if missing:
            raise UserError(f"the mlama core preset needs languages {', '.join(CORE_LANGUAGES)} and {self.root} lacks "
                            f"{', '.join(missing)}; set dataset_options.preset=full (--set dataset_options.preset=full) "
                            f"to use the languages it has")
        wanted = self.options.languages or list(CORE_LANGUAGES)
        other = [l for l in wanted if l not in CORE_LANGUAGES]
        if other:
            raise UserError(f"the mlama core preset has languages {', '.join(CORE_LANGUAGES)}, not "
                            f"{', '.join(other)}; choose among them or set dataset_options.preset=full "
                            f"(--set dataset_options.preset=full)")
        return list(dict.fromkeys(wanted))

    @property
    def languages(self) -> list[str]:
        if self._languages is None and self.core:
            self._languages = self._core_languages()
        if self._languages is None:
            if self.options.languages:
                unknown = [l for l in self.options.languages if l not in self._available]
                if unknown:
                    raise UserError(f"mLAMA has no language(s) {', '.join(unknown)} in {self.root}; available: "
                                    f"{', '.join(self._available)}")
                self._languages = list(dict.fromkeys(self.options.languages))
            else:
                self._languages = list(self._available)
            if not self._languages:
                raise UserError(f"no mLAMA languages in {self.root}")
        return list(self._languages)

    def language_data(self, lang: str, keep: bool = True) -> LanguageData:
        """One language as read (cached on disk; kept in memory when ``keep``)."""
        if lang in self._data:
            return self._data[lang]
        if lang not in self._available:
            raise UserError(f"mLAMA has no language '{lang}' in {self.root}; available: {', '.join(self._available)}")
        data = read_language(self.root, lang, self.cache_dir)
        if data.n_rows == 0:
            raise UserError(f"mLAMA language '{lang}' in {self.root / lang} has no facts (no <relation>.jsonl rows "
                            f"for its templates)")
        if keep:
            self._data[lang] = data
        return data

    @property
    def index(self) -> dict:
        """Facts of the selected languages linked by uuid, with per-language labels and templates."""
        if self._index is None:
            if self.core:  # the world is chosen over all eight languages, whichever are selected
                if any(l not in self._available for l in CORE_LANGUAGES):
                    for lang in CORE_LANGUAGES:  # a malformed file is named before a missing language
                        if lang in self._available:
                            self.language_data(lang)
                langs = self.languages
                index = load_or_link(self.cache_dir, self.root, list(CORE_LANGUAGES), self.language_data, Fact)
                index = restrict(index, select_core(index), langs)
            else:
                index = load_or_link(self.cache_dir, self.root, self.languages, self.language_data, Fact)
            facts = index["facts"]
            index["split_of"] = {u: subject_split(facts[u].sub_uri, self.settings.split, self.settings.split_seed)
                                 for u in index["order"]}
            self._index = index
        return self._index

    def prompt(self, lang: str, fact: Fact) -> str:
        """The template in ``lang`` with the subject filled in and the object slot kept."""
        key = (lang, fact.uuid)
        text = self._prompts.get(key)
        if text is None:  # edit cases and locality inputs of a split share their prompts
            index = self.index
            template = index["templates"][lang][fact.relation]
            sub_label = index["labels"][lang][fact.uuid][0]
            text = self._prompts[key] = template.replace(SUBJECT_SLOT, sub_label).replace(OBJECT_SLOT, TARGET_SLOT)
        return text

    # -- splits --------------------------------------------------------------------------------

    def items(self, split: str) -> list[str]:
        """uuids of ``split`` in (relation, lineid) order; at most ``options.limit`` (a stable choice)."""
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
        index = self.index
        uuids = [u for u in index["order"] if index["split_of"][u] == split]
        limit = self.options.limit
        if limit is not None and len(uuids) > limit:
            rank = lambda u: hashlib.sha256(f"mlama-limit/{self.settings.split_seed}/{split}/{u}".encode()).hexdigest()  # noqa: E731
            keep = set(sorted(uuids, key=rank)[:limit])
            uuids = [u for u in uuids if u in keep]
        return uuids

    def split_sizes(self) -> dict[str, dict[str, int]]:
        """Facts per split: linked facts (``facts``), and rows per selected language."""
        index = self.index
        out = {s: {"facts": 0} for s in SPLITS}
        for u, s in index["split_of"].items():
            out[s]["facts"] += 1
        for lang in self.languages:
            counts = Counter(index["split_of"][u] for u in index["labels"][lang])
            for s in SPLITS:
                out[s][lang] = counts.get(s, 0)
        return out

    # -- edits -----------------------------------------------------------------------------------

    def _candidates(self, relation: str, langs: tuple[str, ...]) -> list[str]:
        key = (relation, langs)
        if key not in self._common:
            objects = self.index["objects"]
            sets = []
            for lang in langs:  # each language's objects of the relation, as a set made once
                if (relation, lang) not in self._common:
                    self._common[relation, lang] = set(objects[lang].get(relation, {}))
                sets.append(self._common[relation, lang])
            self._common[key] = sorted(set.intersection(*sets)) if sets else []
        return self._common[key]

    def desired_object(self, fact: Fact, langs: list[str]) -> tuple[str | None, list[str]]:
        """``(obj_uri, languages)``: a counterfactual object of the fact's relation available in every
        one of ``langs`` (seeded by the fact). When no object other than the true one exists in all of
        them, one available in the most languages is used and the languages lacking it are dropped."""
        index = self.index
        labels, objects = index["labels"], index["objects"]
        rng = random.Random(f"mlama-edit/{self.options.seed}/{fact.uuid}")

        def usable(obj: str, among: list[str]) -> bool:
            return obj != fact.obj_uri and all(objects[l][fact.relation][obj] != labels[l][fact.uuid][1] for l in among)

        pool = [o for o in self._candidates(fact.relation, tuple(langs)) if o != fact.obj_uri]
        for _ in range(50):
            if not pool:
                break
            obj = rng.choice(pool)
            if usable(obj, langs):
                return obj, list(langs)
        pool = [o for o in pool if usable(o, langs)]
        if pool:
            return rng.choice(pool), list(langs)
        coverage = Counter(o for l in langs for o in objects[l].get(fact.relation, {}) if o != fact.obj_uri)
        for obj, _ in sorted(coverage.items(), key=lambda kv: (-kv[1], kv[0])):
            among = [l for l in langs if obj in objects[l][fact.relation]]
            if usable(obj, among):
                return obj, among
        return None, []

    def edit_cases(self, split: str, *, predict: Predictor | None = None) -> list[EditCase]:
        if self.core:
            from .core_edits import core_edit_cases

            return core_edit_cases(self, split, predict, self.piece_count)
        index = self.index
        cases = []
        for uuid in self.items(split):
            fact = index["facts"][uuid]
            present = [l for l in self.languages if uuid in index["labels"][l]]
            new, langs = self.desired_object(fact, present)
            if new is None:
                continue  # a relation with a single object: no counterfactual exists
            inputs = {l: Example(uuid, l, self.prompt(l, fact), index["objects"][l][fact.relation][new]) for l in langs}
            meta = {
                "relation": fact.relation, "lineid": fact.lineid, "sub_uri": fact.sub_uri,
                "true_obj_uri": fact.obj_uri, "new_obj_uri": new,
                "true_object": {l: index["labels"][l][uuid][1] for l in langs},
            }
            if len(langs) < len(present):
                meta["dropped_languages"] = [l for l in present if l not in langs]
            cases.append(EditCase(uuid, inputs, meta))
        return cases

    # -- locality ------------------------------------------------------------------------------

    def bind_tokenizer(self, tokenizer) -> None:
        """Use the base model's tokenizer for the locality inputs' mask counts (called by the core
        once the model is loaded, where the core supports it; see docs/datasets.md)."""
        self._tokenizer = tokenizer
        self._lengths = {}
        self._pieces = {}

    def _resolve_tokenizer(self):
        if self._tokenizer is None and self._tokenizer_spec is not None:
            spec = self._tokenizer_spec
            if isinstance(spec, (str, Path)):
                from transformers import AutoTokenizer

                path = Path(spec).expanduser()
                try:
                    spec = AutoTokenizer.from_pretrained(str(path) if path.is_dir() else str(spec), local_files_only=True)
                except (OSError, ValueError) as exc:
                    raise UserError(f"mlama tokenizer '{self._tokenizer_spec}' could not be loaded ({exc}); pass a "
                                    f"model directory") from None
            self._tokenizer = spec
        return self._tokenizer

    def piece_count(self, lang: str, label: str) -> int:
        """Word pieces of ``label`` in the run's tokenizer (else the estimate), cached."""
        key = (lang, label)
        if key not in self._pieces:
            tokenizer = self._resolve_tokenizer()
            self._pieces[key] = (max(1, len(tokenizer(label, add_special_tokens=False)["input_ids"]))
                                 if tokenizer is not None else estimate_pieces(label))
        return self._pieces[key]

    def object_lengths(self, lang: str) -> list[int]:
        """Word pieces of the object label of every fact of ``lang`` (the distribution k is drawn from)."""
        if lang not in self._lengths:
            labels = self.index["object_labels"][lang]
            unique = sorted(set(labels))
            tokenizer = self._resolve_tokenizer()
            if tokenizer is not None:
                ids = tokenizer(unique, add_special_tokens=False)["input_ids"]
                size = {label: max(1, len(x)) for label, x in zip(unique, ids)}
            else:
                size = {label: estimate_pieces(label) for label in unique}
            self._lengths[lang] = [size[label] for label in labels]
        return self._lengths[lang]

    def locality_pool(self, split: str) -> dict[str, list[Example]]:
        index = self.index
        uuids = self.items(split)
        pool: dict[str, list[Example]] = {}
        for lang in self.languages:
            lengths = self.object_lengths(lang)
            mine = index["labels"][lang]
            rng = random.Random()

            def draw(u: str) -> int:  # reseeded per input: the same draw as a fresh Random(seed string)
                rng.seed(f"mlama-locality/{self.options.seed}/{u}/{lang}")
                return rng.choice(lengths)
            pool[lang] = [Example(u, lang, self.prompt(lang, index["facts"][u]), None, n_masks=draw(u))
                          for u in uuids if u in mine]
        return pool

    def describe(self) -> dict[str, dict[str, int]]:
        """Per language: rows of its fact files as read (``all``) and their subject split (for
        ``core``: the facts of the core world)."""
        if self.core:
            index = self.index
            counts = Counter(index["split_of"][u] for u in index["order"])
            return {l: {"all": len(index["order"]), **{s: counts.get(s, 0) for s in SPLITS}} for l in self.languages}
        out = {}
        for lang in self.languages:
            data = self.language_data(lang, keep=False)
            counts = Counter(subject_split(row[2], self.settings.split, self.settings.split_seed)
                             for rows in data.facts.values() for row in rows)
            out[lang] = {"all": data.n_rows, **{s: counts.get(s, 0) for s in SPLITS}}
        return out

    # -- the base model -----------------------------------------------------------------------------

    def model_languages(self) -> list[str]:
        """Languages the prepared model is pre-trained on: ``options.languages``, else the default
        handful (those the release has)."""
        if self.options.languages or self.core:
            return self.languages
        return [l for l in self.settings.model_languages if l in self._available] or self.languages[:6]

    def model_key(self) -> dict:
        return {"data": str(self.root), "languages": self.model_languages(), "seed": self.options.seed,
                **self.settings.model_dict()}

    def model_dir(self) -> Path:
        return self.cache_dir / "mlama" / settings_key(self.model_key()) / "model"

    def default_model(self) -> str:
        from .base_model import find_base_model, prepared_languages

        found = find_base_model(self)
        if found is None:
            preset = "" if self.core else " --set dataset_options.preset=full"
            command = f"lime-toolkit prepare-base --dataset mlama --data-dir {self.options.data_dir}{preset} --langs"
            built = prepared_languages(self)
            if built:
                raise UserError(f"the prepared mLAMA model(s) cover only {' / '.join(','.join(b) for b in built)}, "
                                f"not all of {', '.join(self.languages)}; pass --langs {','.join(built[-1])} (or a "
                                f"subset), prepare one for your languages with `{command} ...`, or pass --model")
            cost = "about 10 minutes on CPU" if self.core else "a few minutes on CPU"
            raise UserError(f"no prepared mLAMA model covers languages {', '.join(self.languages)}; build one with "
                            f"`{command} {','.join(self.model_languages())}` (a tiny BERT, {cost}) or pass --model "
                            f"bert-base-multilingual-cased")
        if self._tokenizer is None and self._tokenizer_spec is None:
            self._tokenizer_spec = found  # the run uses this model: count locality masks with its tokenizer
        return str(found)

    def prepare_base_model(self, out_dir: Path | None = None, *, progress=None) -> Path:
        if self.core:
            from .core_model import build_core_model

            return build_core_model(self, out_dir, log=progress or print)
        from .base_model import build_base_model

        return build_base_model(self, out_dir, log=progress or print)
