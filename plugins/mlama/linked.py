"""The selected mLAMA languages linked by uuid, cached as one JSON file.

Reading 53 languages' per-language parses (``reader.py``) and linking their 843k rows by uuid takes
seconds; the linked form is what the dataset works from. It is written once, as one compact
column-wise JSON file under ``<cache>/mlama/linked/``, keyed by the selected languages and every
source file's name, size and modification time (``reader._fingerprint``): a changed or added file
gives a new key, so a stale entry is never read. A damaged entry is rebuilt.

The index (a plain dict) holds ``facts`` (uuid -> :class:`~.dataset.Fact`), ``order`` (uuids by
relation, lineid), ``labels`` (lang -> uuid -> (sub_label, obj_label)), ``objects`` (lang ->
relation -> obj_uri -> obj_label, the first label read), ``templates`` (lang -> relation ->
template) and ``object_labels`` (lang -> the object label of every row, in file order: the
distribution the locality inputs' mask counts are drawn from).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from lime_toolkit.cache import settings_key
from lime_toolkit.errors import UserError
from lime_toolkit.files import write_text_atomic

from .reader import PARSER_VERSION, LanguageData, _fingerprint

LINKED_VERSION = 1


def linked_path(cache_dir: Path, root: Path, languages: list[str]) -> Path:
    """Where the linked form of ``languages`` of the release at ``root`` is cached."""
    key = settings_key({"v": LINKED_VERSION, "parser": PARSER_VERSION, "root": str(root), "languages": languages,
                        "files": [_fingerprint(root / lang) for lang in languages]})
    return Path(cache_dir) / "mlama" / "linked" / f"{key}.json"


def link(root: Path, languages: list[str], read: Callable[[str], LanguageData], fact_type) -> dict:
    """The index of ``languages`` built from their parses (``read(lang)``); a uuid whose relation,
    lineid, subject or object differ between languages is an error."""
    facts: dict = {}
    labels: dict[str, dict[str, tuple[str, str]]] = {}
    objects: dict[str, dict[str, dict[str, str]]] = {}
    templates: dict[str, dict[str, str]] = {}
    object_labels: dict[str, list[str]] = {}
    keys: dict[str, tuple] = {}  # uuid -> (relation, lineid, sub_uri, obj_uri), as first read
    for lang in languages:
        data = read(lang)
        templates[lang] = dict(data.templates)
        mine = labels[lang] = {}
        objs = objects[lang] = {}
        column = object_labels[lang] = []
        for rel, rows in data.facts.items():
            rel_objs = objs.setdefault(rel, {})
            for lineid, uuid, sub_uri, obj_uri, sub_label, obj_label in rows:
                key = (rel, lineid, sub_uri, obj_uri)
                known = keys.get(uuid)
                if known is None:  # one Fact per uuid, not one per row (843k rows, 37.5k facts)
                    keys[uuid] = key
                    facts[uuid] = fact_type(uuid, *key)
                elif known != key:
                    raise UserError(f"{root / lang / (rel + '.jsonl')}: fact uuid {uuid} (lineid {lineid}) "
                                    f"disagrees with the same uuid in another language")
                mine[uuid] = (sub_label, obj_label)
                rel_objs.setdefault(obj_uri, obj_label)
                column.append(obj_label)
    order = sorted(facts.values(), key=lambda f: (f.relation, f.lineid, f.uuid))
    return {"facts": facts, "order": [f.uuid for f in order], "labels": labels, "objects": objects,
            "templates": templates, "object_labels": object_labels}


def to_json(index: dict) -> dict:
    """The index column-wise: each fact once, each language's rows as fact numbers and labels."""
    order = index["order"]
    number = {u: i for i, u in enumerate(order)}
    facts = [index["facts"][u] for u in order]
    langs = {}
    for lang, mine in index["labels"].items():
        obj_label = [o for _, o in mine.values()]
        column = index["object_labels"][lang]
        langs[lang] = {"templates": index["templates"][lang], "fact": [number[u] for u in mine],
                       "sub_label": [s for s, _ in mine.values()], "obj_label": obj_label,
                       "objects": index["objects"][lang],  # null: the same as obj_label (one row per uuid)
                       "object_labels": None if column == obj_label else column}
    return {"v": LINKED_VERSION, "facts": {"uuid": order, "relation": [f.relation for f in facts],
                                          "lineid": [f.lineid for f in facts], "sub_uri": [f.sub_uri for f in facts],
                                          "obj_uri": [f.obj_uri for f in facts]}, "languages": langs}


def from_json(obj: dict, fact_type) -> dict:
    """The index :func:`to_json` wrote."""
    if obj.get("v") != LINKED_VERSION:
        raise ValueError("another version of the linked form")
    columns = obj["facts"]
    order = columns["uuid"]
    fact_list = [fact_type(*row) for row in zip(order, columns["relation"], columns["lineid"], columns["sub_uri"],
                                                columns["obj_uri"])]
    labels, objects, templates, object_labels = {}, {}, {}, {}
    for lang, data in obj["languages"].items():
        uuids = map(order.__getitem__, data["fact"])
        labels[lang] = dict(zip(uuids, zip(data["sub_label"], data["obj_label"])))
        objects[lang] = data["objects"]
        templates[lang] = data["templates"]
        object_labels[lang] = data["obj_label"] if data["object_labels"] is None else data["object_labels"]
    return {"facts": dict(zip(order, fact_list)), "order": list(order), "labels": labels, "objects": objects,
            "templates": templates, "object_labels": object_labels}


def load_or_link(cache_dir: Path | None, root: Path, languages: list[str], read: Callable[[str], LanguageData],
                 fact_type) -> dict:
    """The index from the one-file cache when it is there and whole, else linked and written."""
    path = linked_path(cache_dir, root, languages) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            return from_json(json.loads(path.read_bytes()), fact_type)
        except (ValueError, KeyError, TypeError, IndexError):
            pass  # damaged or from another version: rebuilt below
    index = link(root, languages, read, fact_type)
    if path is not None:
        write_text_atomic(path, json.dumps(to_json(index), ensure_ascii=False, separators=(",", ":")))
    return index
