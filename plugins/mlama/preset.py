"""The ``core`` preset of the mlama dataset: a world of real facts a small model can hold.

mLAMA's release has 37,535 facts, most of them about rare entities in a few languages, with
thousands of distinct objects: a tiny model built offline recalls a few percent of them, so an edit
has no known fact to change. The core preset keeps a part of it that a 4-layer model memorises in
minutes and on which the leak-free editing protocol of the demo holds:

- eight languages in five scripts (:data:`CORE_LANGUAGES`: Latin, Cyrillic, Han, Arabic and
  Japanese kana/kanji);
- relations whose objects come from a closed set (:data:`CORE_RELATIONS`: countries, continents,
  languages, religions, cities);
- facts present in every one of the eight languages;
- of each relation, the objects that are the answer of at least :data:`MIN_OBJECT_FACTS` such facts
  and have a label of their own in every language (no two objects of a relation share a label);
- no two kept facts with the same question (template and subject) in any language (P17 "located
  in a country" and P30 "located on a continent" share their template in several languages);
- at most :data:`MAX_FACTS_PER_RELATION` facts a relation, chosen by a fixed hash of the fact.

The selection depends on the release alone (not on ``--langs``, which picks a subset of the eight,
nor on the run's seed), so the prepared model serves every subset.
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict

from .reader import OBJECT_SLOT, SUBJECT_SLOT

CORE_LANGUAGES = ("en", "de", "fr", "es", "ru", "zh", "ar", "ja")
SCRIPTS = {"en": "latin", "de": "latin", "fr": "latin", "es": "latin", "ru": "cyrillic", "zh": "han",
           "ar": "arabic", "ja": "kana/kanji"}
#: relation -> the closed set its objects come from
CORE_RELATIONS = {
    "P17": "country", "P27": "country", "P495": "country", "P1001": "country",
    "P30": "continent",
    "P37": "language", "P103": "language", "P364": "language", "P407": "language", "P1412": "language",
    "P140": "religion",
    "P19": "city", "P20": "city", "P937": "city", "P159": "city", "P740": "city",
}
MIN_OBJECT_FACTS = 3
MAX_FACTS_PER_RELATION = 64
PRESETS = ("core", "full")


def _rank(uuid: str) -> str:
    return hashlib.sha256(f"mlama-core/{uuid}".encode()).hexdigest()


def select_core(index: dict) -> list[str]:
    """uuids of the core world (in the index's order), from an index linked over
    :data:`CORE_LANGUAGES` (see the module docstring for the rules)."""
    facts, labels, templates = index["facts"], index["labels"], index["templates"]
    langs = [l for l in CORE_LANGUAGES if l in labels]
    everywhere = [u for u in index["order"] if facts[u].relation in CORE_RELATIONS
                  and all(u in labels[l] for l in langs) and all(facts[u].relation in templates[l] for l in langs)]
    by_rel: dict[str, list[str]] = defaultdict(list)
    for u in everywhere:
        by_rel[facts[u].relation].append(u)
    kept: list[str] = []
    for rel, uuids in by_rel.items():
        counts = Counter(facts[u].obj_uri for u in uuids)
        closed = {o for o, n in counts.items() if n >= MIN_OBJECT_FACTS}
        for lang in langs:  # an object must have a label of its own in every language
            owners: dict[str, set[str]] = defaultdict(set)
            for u in uuids:
                if facts[u].obj_uri in closed:
                    owners[labels[lang][u][1]].add(facts[u].obj_uri)
            closed -= {o for objs in owners.values() if len(objs) > 1 for o in objs}
        kept += [u for u in uuids if facts[u].obj_uri in closed]
    # the same question (template with its subject) in one language must not have two answers
    questions: dict[tuple[str, str], set[str]] = defaultdict(set)
    for u in kept:
        for lang in langs:
            questions[lang, _question(templates[lang][facts[u].relation], labels[lang][u][0])].add(u)
    ambiguous = {u for group in questions.values() if len(group) > 1 for u in group}
    chosen: set[str] = set()
    per_rel: dict[str, list[str]] = defaultdict(list)
    for u in kept:
        if u not in ambiguous:
            per_rel[facts[u].relation].append(u)
    for uuids in per_rel.values():
        chosen.update(sorted(uuids, key=_rank)[:MAX_FACTS_PER_RELATION])
    return [u for u in index["order"] if u in chosen]


def _question(template: str, subject: str) -> str:
    return template.replace(SUBJECT_SLOT, subject).replace(OBJECT_SLOT, "")


def restrict(index: dict, uuids: list[str], languages: list[str]) -> dict:
    """The index with only ``uuids`` and ``languages``: facts, labels, each relation's objects (the
    objects of the kept facts) and the object labels the locality inputs' mask counts come from."""
    keep = set(uuids)
    facts = {u: index["facts"][u] for u in uuids}
    labels = {l: {u: v for u, v in index["labels"][l].items() if u in keep} for l in languages}
    objects: dict[str, dict[str, dict[str, str]]] = {}
    for lang in languages:
        rel_objs = objects[lang] = {}
        for u in uuids:
            fact = facts[u]
            rel_objs.setdefault(fact.relation, {}).setdefault(fact.obj_uri, labels[lang][u][1])
    return {"facts": facts, "order": list(uuids), "labels": labels, "objects": objects,
            "templates": {l: index["templates"][l] for l in languages},
            "object_labels": {l: [labels[l][u][1] for u in uuids] for l in languages}}
