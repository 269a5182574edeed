"""Reading the mLAMA 1.1 release layout, one language at a time.

``<root>/<lang>/templates.jsonl`` holds one ``{"relation", "template"}`` a line (templates contain
``[X]`` for the subject and ``[Y]`` for the object); ``<root>/<lang>/<relation>.jsonl`` holds the
facts, ``{"sub_uri", "obj_uri", "obj_label", "sub_label", "lineid", "uuid"}``. A relation is read
when it has both a template and a facts file (six of the 49 templates have no facts file in the
release: P102, P166, P1923, P54, P69, date_of_birth).

Each language's parse is cached as JSON under ``<cache>/mlama/parsed/`` keyed by the files' paths,
sizes and modification times.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lime_toolkit.cache import settings_key
from lime_toolkit.errors import UserError
from lime_toolkit.files import write_json_atomic
from lime_toolkit.jsonl import jsonl_rows

RELEASE_DIR = "mlama1.1"
SUBJECT_SLOT = "[X]"
OBJECT_SLOT = "[Y]"
FACT_KEYS = ("sub_uri", "obj_uri", "obj_label", "sub_label", "lineid", "uuid")
PARSER_VERSION = 1
LAYOUT_HELP = ("pass --data-dir with the mLAMA 1.1 release: a folder holding mlama1.1/<lang>/templates.jsonl "
               "and mlama1.1/<lang>/<relation>.jsonl (or the mlama1.1 folder itself)")

#: One fact in one language: (lineid, uuid, sub_uri, obj_uri, sub_label, obj_label).
Row = tuple[int, str, str, str, str, str]


@dataclass
class LanguageData:
    """One language as read: its templates and, per relation, its facts sorted by ``lineid``."""

    lang: str
    templates: dict[str, str]
    facts: dict[str, list[Row]]

    @property
    def n_rows(self) -> int:
        return sum(len(rows) for rows in self.facts.values())

    def to_json(self) -> dict:
        facts = {r: [list(x) for x in rows] for r, rows in self.facts.items()}
        return {"lang": self.lang, "templates": self.templates, "facts": facts}

    @classmethod
    def from_json(cls, obj: dict) -> "LanguageData":
        return cls(obj["lang"], dict(obj["templates"]), {r: list(map(tuple, rows)) for r, rows in obj["facts"].items()})


def locate(data_dir: Path | None) -> Path:
    """The folder holding ``<lang>/templates.jsonl``: ``data_dir/mlama1.1`` or ``data_dir`` itself."""
    if data_dir is None:
        raise UserError(f"the mlama dataset reads files and no --data-dir was given; {LAYOUT_HELP}")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise UserError(f"mLAMA data directory '{data_dir}' does not exist; {LAYOUT_HELP}")
    for root in (path / RELEASE_DIR, path / "mlama" / RELEASE_DIR, path):
        if root.is_dir() and any((sub / "templates.jsonl").is_file() for sub in root.iterdir() if sub.is_dir()):
            return root.resolve()
    raise UserError(f"no mLAMA languages (<lang>/templates.jsonl) found in '{data_dir}'; {LAYOUT_HELP}")


def available_languages(root: Path) -> list[str]:
    """Languages with a ``templates.jsonl``, sorted alphabetically (the release's directory order)."""
    return sorted(sub.name for sub in root.iterdir() if sub.is_dir() and (sub / "templates.jsonl").is_file())


def _fingerprint(folder: Path) -> str:
    stats = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.glob("*.jsonl"))
    return settings_key({"v": PARSER_VERSION, "path": str(folder), "files": stats})


def read_language(root: Path, lang: str, cache_dir: Path | None = None) -> LanguageData:
    """One language, from the JSON cache when its files are unchanged."""
    folder = root / lang
    if not (folder / "templates.jsonl").is_file():
        raise UserError(f"mLAMA language '{lang}' has no {folder / 'templates.jsonl'}; {LAYOUT_HELP}")
    cache = Path(cache_dir) / "mlama" / "parsed" / f"{lang}-{_fingerprint(folder)}.json" if cache_dir else None
    if cache is not None and cache.is_file():
        try:
            return LanguageData.from_json(json.loads(cache.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is rebuilt
    data = parse_language(folder, lang)
    if cache is not None:
        write_json_atomic(cache, data.to_json())
    return data


def _rows(path: Path):
    return jsonl_rows(path, "mLAMA row")


def parse_language(folder: Path, lang: str) -> LanguageData:
    """Parse ``folder`` (one language of the release); malformed rows name their file and line."""
    templates: dict[str, str] = {}
    for where, obj in _rows(folder / "templates.jsonl"):
        rel, template = obj.get("relation"), obj.get("template")
        if not isinstance(rel, str) or not rel or not isinstance(template, str):
            raise UserError(f"{where}: malformed mLAMA template row: needs string 'relation' and 'template'")
        if template.count(SUBJECT_SLOT) != 1 or template.count(OBJECT_SLOT) != 1:
            raise UserError(f"{where}: malformed mLAMA template {template!r}: needs one {SUBJECT_SLOT} and one "
                            f"{OBJECT_SLOT}")
        templates[rel] = template
    facts: dict[str, list[Row]] = {}
    for rel in sorted(templates):
        path = folder / f"{rel}.jsonl"
        if not path.is_file():
            continue  # a template without facts (six in the release)
        rows: list[Row] = []
        seen: set[int] = set()
        for where, obj in _rows(path):
            missing = [k for k in FACT_KEYS if k not in obj]
            if missing:
                raise UserError(f"{where}: malformed mLAMA row: missing {', '.join(missing)}")
            lineid = obj["lineid"]
            if isinstance(lineid, bool) or not isinstance(lineid, int):
                raise UserError(f"{where}: malformed mLAMA row: lineid {lineid!r} is not an integer")
            strings = [obj[k] for k in ("uuid", "sub_uri", "obj_uri", "sub_label", "obj_label")]
            if not all(isinstance(v, str) and v.strip() for v in strings):
                raise UserError(f"{where}: malformed mLAMA row: uuid, sub_uri, obj_uri, sub_label and obj_label "
                                f"must be non-empty strings")
            if lineid in seen:
                raise UserError(f"{where}: malformed mLAMA row: lineid {lineid} appears twice in the file")
            seen.add(lineid)
            rows.append((lineid, *strings))
        rows.sort()
        facts[rel] = rows
    return LanguageData(lang, {r: t for r, t in sorted(templates.items())}, facts)
