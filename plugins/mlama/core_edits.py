"""Leak-free edit cases of the ``core`` preset (the demo's protocol on real facts).

A counterfactual target must not be something the unedited model already says, or an untrained
editor scores by luck, and the number of ``[MASK]`` tokens must not tell the target apart from the
true object. So the desired object of a fact is drawn (seeded by the run's seed and the fact) among
the objects of its relation in the core world that

- differ from the true object and have another label than it in every language;
- the unedited model predicts for the fact in *no* language (when the core passes ``predict``);
- have as many word pieces as the true object in every language, in the run's tokenizer (with
  the prepared model's tokenizer every object is one piece; with mBERT's, this is what keeps the
  mask count from revealing the target).

Every other such object is an alternative training target (``EditCase.alternatives``). When no
object has the true object's piece count in every language (mBERT splits Chinese labels into
characters), the case keeps the languages of a candidate that has it in the most of them (at least
two; the others are listed in ``meta["dropped_languages"]``); a fact with none is left out.
"""
from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING, Callable

from lime_toolkit.data import EditCase, Example
from lime_toolkit.dataset_api import Predictor

if TYPE_CHECKING:
    from .dataset import MlamaDataset

_SPACE = re.compile(r"\s+")


def same_label(a: str, b: str) -> bool:
    """Labels equal up to white space (a tokenizer's decoding may put spaces between CJK pieces)."""
    return _SPACE.sub("", a) == _SPACE.sub("", b)


def predicted_objects(ds: MlamaDataset, uuids: list[str], predict: Predictor) -> dict[str, set[str]]:
    """uuid -> the objects of its relation the model predicts for it in some selected language
    (queried with the true object's mask count)."""
    index = ds.index
    queries = [Example(u, l, ds.prompt(l, index["facts"][u]), index["labels"][l][u][1])
               for u in uuids for l in ds.languages]
    answers = predict(queries) if queries else []
    found: dict[str, set[str]] = {}
    for query, answer in zip(queries, answers):
        fact = index["facts"][query.id]
        for obj, label in index["objects"][query.lang][fact.relation].items():
            if same_label(label, str(answer)):
                found.setdefault(query.id, set()).add(obj)
    return found


def core_edit_cases(ds: MlamaDataset, split: str, predict: Predictor | None,
                    pieces: Callable[[str, str], int]) -> list[EditCase]:
    """The core preset's edit cases of ``split``; ``pieces(lang, label)`` counts word pieces."""
    index = ds.index
    langs = ds.languages
    uuids = ds.items(split)
    predicted = predicted_objects(ds, uuids, predict) if predict is not None else {}
    cases = []
    for uuid in uuids:
        fact = index["facts"][uuid]
        objects = {l: index["objects"][l][fact.relation] for l in langs}
        true = {l: index["labels"][l][uuid][1] for l in langs}
        exclude = predicted.get(uuid, set()) | {fact.obj_uri}
        fits = {}  # candidate -> the languages where it has the true object's piece count
        for o in sorted(objects[langs[0]]):
            if o not in exclude and not any(same_label(objects[l][o], true[l]) for l in langs):
                fits[o] = tuple(l for l in langs if pieces(l, objects[l][o]) == pieces(l, true[l]))
        best = max((len(f) for f in fits.values()), default=0)
        if best < min(2, len(langs)):
            continue
        rng = random.Random(f"mlama-core-edit/{ds.options.seed}/{uuid}")
        new = rng.choice([o for o, f in fits.items() if len(f) == best])
        kept = fits[new]
        inputs = {l: Example(uuid, l, ds.prompt(l, fact), objects[l][new]) for l in kept}
        alternatives = tuple({l: objects[l][o] for l in kept} for o, f in fits.items() if o != new and set(kept) <= set(f))
        meta = {"relation": fact.relation, "lineid": fact.lineid, "sub_uri": fact.sub_uri,
                "true_obj_uri": fact.obj_uri, "new_obj_uri": new, "true_object": true,
                "predicted_obj_uris": sorted(predicted.get(uuid, set()))}
        if len(kept) < len(langs):
            meta["dropped_languages"] = [l for l in langs if l not in kept]
        cases.append(EditCase(uuid, inputs, meta, alternatives=alternatives))
    return cases
