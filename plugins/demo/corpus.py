"""A parallel fact corpus about invented people, generated deterministically from a seed.

Every subject has exactly one object per relation, and every fact exists in every language, linked
by its id ``f{subject:04d}-{relation}``. Subjects are split into train/dev/test, so no person is
seen in two splits. All randomness comes from ``random.Random`` instances seeded from
:attr:`DemoSettings.seed` (never the global generator), and everything is produced in a defined
order, so the same settings always give the same corpus.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, replace
from typing import Any

from lime_toolkit.data import SPLITS, TARGET_SLOT, EditCase, Example
from lime_toolkit.errors import UserError
from lime_toolkit.toolbox.settings import settings_from_options

from .vocabulary import CYRILLIC, LANGUAGES, RELATIONS, SYLLABLES

SUBJECT_SLOT = "[X]"
#: Which writing system renders a language's subject names.
SCRIPT = {"en": "latin", "de": "latin", "fr": "latin", "es": "latin", "ru": "cyrillic", "zh": "han"}


@dataclass(frozen=True)
class DemoSettings:
    """Everything that determines the demo world and its model; ``asdict`` keys the model cache.

    The first group fixes the corpus, the second the tokenizer and network, the third the
    pre-training run. ``builder_version`` changes whenever the build code changes what it produces,
    so an old cache entry is never mistaken for a new one.
    """

    seed: int = 0
    n_subjects: int = 64
    languages: tuple[str, ...] = LANGUAGES
    relations: tuple[str, ...] = tuple(RELATIONS)
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    # how true objects are drawn: "balanced" (per relation, every object the true object of as many
    # subjects as the others, give or take one) or "random" (each fact on its own: the world before
    # issue #10's fifth round, whose rare objects were hard edit targets; docs/diagnosis.md)
    objects: str = "balanced"

    vocab_size: int = 2000
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 256

    max_epochs: int = 36
    batch_size: int = 96
    learning_rate: float = 4e-3
    warmup: float = 0.1  # share of the steps spent warming the learning rate up
    random_mask_prob: float = 0.05  # extra masking of non-object tokens, as in BERT pre-training
    code_switch: float = 0.2  # code-switched sentences (subject in another script) per epoch, per native one
    replay: float = 0.3  # extra rows per epoch, per native one, drawn from the facts still missed
    align_weight: float = 1.0  # weight of the cross-lingual alignment objective (0: plain masked LM)
    align_layers: tuple[int, ...] = (2, 3)  # hidden states (0: embeddings, k: layer k's output) aligned at the slot
    align_temperature: float = 0.1  # of the contrastive alignment objective
    target_recall: float = 0.98  # stop early once every language recalls this share of facts
    eval_every: int = 2  # epochs between recall measurements (second half of the run only)
    builder_version: int = 4

    @classmethod
    def small(cls, **overrides: Any) -> "DemoSettings":
        """A quick preset for tests: 12 subjects, builds in about a minute on 2 cores."""
        return replace(cls(n_subjects=12, max_epochs=48, batch_size=48), **overrides)

    @classmethod
    def from_overrides(cls, extra: dict[str, Any] | None) -> "DemoSettings":
        """Settings from ``DatasetOptions.extra``: ``preset`` ("default" or "small") plus any
        field of this class. String values (from a command line) are converted to the field's type."""
        extra = dict(extra or {})
        preset = str(extra.pop("preset", "default"))
        if preset not in ("default", "small"):
            raise UserError(f"unknown demo preset {preset!r}; use 'default' or 'small'")
        base = cls.small() if preset == "small" else cls()
        return settings_from_options(cls, extra, owner="demo", base=base, also=("preset",))

    def validate(self) -> None:
        """Raise :class:`UserError` for settings that cannot make a demo world."""
        bad_langs = [lang for lang in self.languages if lang not in LANGUAGES]
        bad_rels = [rel for rel in self.relations if rel not in RELATIONS]
        if bad_langs:
            raise UserError(f"unknown demo language(s) {bad_langs}; valid: {', '.join(LANGUAGES)}")
        if bad_rels:
            raise UserError(f"unknown demo relation(s) {bad_rels}; valid: {', '.join(RELATIONS)}")
        if self.objects not in ("random", "balanced"):
            raise UserError(f"unknown demo objects {self.objects!r}; use 'random' or 'balanced'")
        if self.n_subjects < 3:
            raise UserError("the demo world needs n_subjects >= 3 (one subject per split at least)")
        if len(self.split) != 3 or abs(sum(self.split) - 1.0) > 1e-6 or min(self.split) <= 0:
            raise UserError(f"demo split {self.split} must be three positive shares summing to 1")

    def key_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict`` in its JSON form (tuples as lists): keys the cache, and equals
        the ``settings`` recorded in ``recall.json``. ``objects`` appears only when it is not
        "random", so the worlds made before the setting existed keep their cache entries."""
        out = json.loads(json.dumps(asdict(self)))
        if out["objects"] == "random":
            del out["objects"]
        return out


@dataclass(frozen=True)
class Subject:
    """An invented person: a given name and a family name, each a sequence of Latin syllables."""

    index: int
    given: tuple[str, ...]
    family: tuple[str, ...]

    def name(self, lang: str) -> str:
        """The name written in ``lang``'s script (systematic transliteration of the syllables)."""
        script = SCRIPT[lang]
        if script == "han":
            return "".join(SYLLABLES[s] for s in self.given) + "·" + "".join(SYLLABLES[s] for s in self.family)
        parts = ["".join(self.given), "".join(self.family)]
        if script == "cyrillic":
            parts = ["".join(CYRILLIC[c] for c in part) for part in parts]
        return " ".join(part.capitalize() for part in parts)


@dataclass(frozen=True)
class Fact:
    """``subject`` has object number ``obj`` (an index into the relation's object list)."""

    id: str
    subject: int
    relation: str
    obj: int


class DemoCorpus:
    """The demo world for one :class:`DemoSettings`: subjects, facts, splits and their texts."""

    def __init__(self, settings: DemoSettings | None = None):
        self.settings = settings = settings or DemoSettings()
        settings.validate()
        self.languages = list(settings.languages)
        self.relations = list(settings.relations)
        self.subjects = _make_subjects(settings.n_subjects, random.Random(f"demo-names/{settings.seed}"))
        objects_rng = random.Random(f"demo-objects/{settings.seed}")
        true_object = _balanced_objects(self.subjects, self.relations, objects_rng) if settings.objects == "balanced" \
            else {(s.index, rel): objects_rng.randrange(len(RELATIONS[rel][1]["en"]))
                  for s in self.subjects for rel in self.relations}
        facts = [Fact(f"f{subject.index:04d}-{rel}", subject.index, rel, true_object[subject.index, rel])
                 for subject in self.subjects for rel in self.relations]
        self.facts = sorted(facts, key=lambda f: f.id)
        self.relations_by_id = {f.id: f.relation for f in self.facts}
        self._object_index = {(rel, lang): {w.replace(" ", ""): i for i, w in enumerate(RELATIONS[rel][1][lang])}
                              for rel in self.relations for lang in self.languages}
        self.split_of = _split_subjects(settings.n_subjects, settings.split, random.Random(f"demo-split/{settings.seed}"))

    # -- texts -------------------------------------------------------------------------------

    def object_text(self, relation: str, obj: int, lang: str) -> str:
        """Object number ``obj`` of ``relation`` written in ``lang``."""
        return RELATIONS[relation][1][lang][obj]

    def object_index(self, relation: str, lang: str, text: str) -> int | None:
        """The index of the object written ``text`` in ``lang`` (spaces ignored, as a decoded
        prediction may have them), or ``None`` when ``text`` is no object of ``relation``."""
        return self._object_index[(relation, lang)].get(text.replace(" ", ""))

    def n_objects(self, relation: str) -> int:
        """How many objects ``relation`` has."""
        return len(RELATIONS[relation][1]["en"])

    def prompt(self, fact: Fact, lang: str, subject_lang: str | None = None) -> str:
        """``lang``'s template with the subject filled in and the ``[Y]`` slot kept.

        ``subject_lang`` writes the subject in another language's script (code-switching)."""
        template = RELATIONS[fact.relation][0][lang]
        return template.replace(SUBJECT_SLOT, self.subjects[fact.subject].name(subject_lang or lang))

    def sentence(self, fact: Fact, lang: str, obj: int | None = None, subject_lang: str | None = None) -> str:
        """The full sentence (true object unless ``obj`` is given)."""
        obj = fact.obj if obj is None else obj
        return self.prompt(fact, lang, subject_lang).replace(TARGET_SLOT, self.object_text(fact.relation, obj, lang))

    def example(self, fact: Fact, lang: str, obj: int | None = None) -> Example:
        """The fact as a masked-LM :class:`Example` with ``target`` = object ``obj`` (default: true)."""
        obj = fact.obj if obj is None else obj
        return Example(fact.id, lang, self.prompt(fact, lang), self.object_text(fact.relation, obj, lang))

    # -- splits and edits -------------------------------------------------------------------

    def facts_in(self, split: str) -> list[Fact]:
        """Facts of the subjects in ``split``, sorted by id."""
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        return [f for f in self.facts if self.split_of[f.subject] == split]

    def counterfactual(self, fact: Fact, seed: int, exclude: frozenset[int] = frozenset()) -> int:
        """A uniformly random object of the same relation other than the true one and those in
        ``exclude`` (the objects the unedited model already predicts for this fact in some language,
        so that an edit is needed to reach the target; ignored if it would leave nothing).

        Seeded by ``(seed, fact id)`` so the choice does not depend on which other facts are drawn."""
        rng = random.Random(f"demo-edit/{seed}/{fact.id}")
        others = [o for o in range(self.n_objects(fact.relation)) if o != fact.obj]
        return rng.choice([o for o in others if o not in exclude] or others)

    def edit_case(self, fact: Fact, seed: int, languages: list[str] | None = None,
                  exclude: frozenset[int] = frozenset()) -> EditCase:
        """The edit "make ``fact`` point at a counterfactual object", parallel in ``languages``; every
        other counterfactual object (not true, not in ``exclude``) is an alternative target."""
        new = self.counterfactual(fact, seed, exclude)
        langs = languages or self.languages
        others = [o for o in range(self.n_objects(fact.relation)) if o not in (fact.obj, new) and o not in exclude]
        return EditCase(
            id=fact.id,
            inputs={lang: self.example(fact, lang, new) for lang in langs},
            alternatives=tuple({lang: self.object_text(fact.relation, o, lang) for lang in langs} for o in others),
            meta={
                "relation": fact.relation,
                "subject": fact.subject,
                "true_object": {lang: self.object_text(fact.relation, fact.obj, lang) for lang in langs},
                "true_object_index": fact.obj,
                "new_object_index": new,
            },
        )

    # -- serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything the corpus contains, as plain JSON-ready data in a defined order."""
        return {
            "settings": self.settings.key_dict(),
            "subjects": [
                {"index": s.index, "split": self.split_of[s.index], "names": {lang: s.name(lang) for lang in self.languages}}
                for s in self.subjects
            ],
            "facts": [
                {
                    "id": f.id,
                    "subject": f.subject,
                    "relation": f.relation,
                    "object": f.obj,
                    "sentences": {lang: self.sentence(f, lang) for lang in self.languages},
                }
                for f in self.facts
            ],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` serialised with sorted keys (byte-identical for identical settings)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True, indent=1)


def _balanced_objects(subjects, relations, rng: random.Random) -> dict[tuple[int, str], int]:
    """Per relation, the objects dealt to the subjects in turn from a shuffled order (each object
    as often as the others, give or take one), the deal then shuffled over the subjects."""
    out = {}
    for rel in relations:
        n_objects = len(RELATIONS[rel][1]["en"])
        order = list(range(n_objects))
        rng.shuffle(order)
        dealt = [order[i % n_objects] for i in range(len(subjects))]
        rng.shuffle(dealt)
        out.update({(s.index, rel): obj for s, obj in zip(subjects, dealt)})
    return out


def _make_subjects(n: int, rng: random.Random) -> list[Subject]:
    syllables = sorted(SYLLABLES)
    seen: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    subjects = []
    while len(subjects) < n:
        given = tuple(rng.choice(syllables) for _ in range(2))
        family = tuple(rng.choice(syllables) for _ in range(rng.choice((2, 3))))
        if (given, family) in seen:
            continue
        seen.add((given, family))
        subjects.append(Subject(len(subjects), given, family))
    return subjects


def _split_subjects(n: int, shares: tuple[float, float, float], rng: random.Random) -> dict[int, str]:
    order = list(range(n))
    rng.shuffle(order)
    n_dev = max(1, round(n * shares[1]))
    n_test = max(1, round(n * shares[2]))
    n_train = n - n_dev - n_test
    split_of = {}
    for rank, subject in enumerate(order):
        split_of[subject] = "train" if rank < n_train else "dev" if rank < n_train + n_dev else "test"
    return split_of
