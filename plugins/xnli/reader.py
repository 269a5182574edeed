"""Reading XNLI from the forms users have it in, into one parallel table.

Three sources, all read into :class:`XnliTable` (file split -> language -> pair id -> row):

* ``jsonl``: ``<data_dir>/<lang>/dev.jsonl`` and/or ``<lang>/test.jsonl``, one JSON object a line,
  ``{"idx", "premise", "hypothesis", "label"}``; the same ``idx`` is the same pair in every language
  (the XTREME preprocessing, as in ``../shared/data/xnli``).
* ``tsv``: the official XNLI-1.0 release, ``xnli.dev.tsv`` / ``xnli.test.tsv`` (in ``data_dir`` or
  ``data_dir/XNLI-1.0``), one row per language and pair, linked by ``pairID``.
* ``hf``: the Hugging Face dataset ``facebook/xnli`` (one configuration per language), used when no
  data directory is given; rows are parallel by position.

Labels become Hugging Face's integers: 0 entailment, 1 neutral, 2 contradiction. Parsed tables are
cached as JSON under ``<cache>/xnli/parsed/`` keyed by the files' paths, sizes and modification
times, so a changed file is read again.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from lime_toolkit.cache import settings_key
from lime_toolkit.errors import UserError
from lime_toolkit.files import write_json_atomic
from lime_toolkit.hub import hub_offline, hub_reachable
from lime_toolkit.jsonl import utf8_lines

#: The paper's language order; languages outside it (other data) follow alphabetically.
PAPER_ORDER = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
LABELS = ("entailment", "neutral", "contradiction")
LABEL_IDS = {"entailment": 0, "neutral": 1, "contradiction": 2, "contradictory": 2}
#: File splits in the order they are reported; the training split of XNLI (machine-translated
#: MultiNLI, 392,702 pairs per language) is not read: see docs/datasets.md.
FILE_SPLITS = ("dev", "test")
TSV_FILES = {"dev": "xnli.dev.tsv", "test": "xnli.test.tsv"}
HF_SPLITS = {"dev": "validation", "test": "test"}
PARSER_VERSION = 1

LAYOUT_HELP = (
    "pass --data-dir with per-language files <lang>/dev.jsonl and/or <lang>/test.jsonl (rows "
    '{"idx", "premise", "hypothesis", "label"}), or the XNLI-1.0 release folder holding xnli.dev.tsv '
    "and/or xnli.test.tsv"
)

Row = tuple[str, str, int]  # premise, hypothesis, label id


@dataclass
class XnliTable:
    """Parallel XNLI rows: ``rows[file_split][lang][pair_id]`` and, per file split, the pair ids in
    file order (the first language's order, then pairs only other languages have)."""

    source: str
    location: str
    rows: dict[str, dict[str, dict[str, Row]]] = field(default_factory=dict)
    order: dict[str, list[str]] = field(default_factory=dict)

    @property
    def languages(self) -> list[str]:
        found = {lang for per in self.rows.values() for lang, rows in per.items() if rows is not None}
        return order_languages(found)

    @property
    def file_splits(self) -> list[str]:
        return [s for s in FILE_SPLITS if s in self.rows]

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "location": self.location,
            "order": self.order,
            "rows": {s: {l: [[pid, *row] for pid, row in rows.items()] for l, rows in per.items()}
                     for s, per in self.rows.items()},
        }

    @classmethod
    def from_json(cls, obj: dict) -> "XnliTable":
        rows = {s: {l: {r[0]: (r[1], r[2], int(r[3])) for r in lst} for l, lst in per.items()}
                for s, per in obj["rows"].items()}
        return cls(obj["source"], obj["location"], rows, {s: list(v) for s, v in obj["order"].items()})


def order_languages(langs) -> list[str]:
    """The paper's order for its languages, then any others alphabetically."""
    langs = set(langs)
    return [l for l in PAPER_ORDER if l in langs] + sorted(langs - set(PAPER_ORDER))


def parse_label(value, where: str) -> int:
    """A label as Hugging Face's integer; ``where`` (file:line) names the row in the error."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int) and 0 <= value < len(LABELS):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in LABEL_IDS:
            return LABEL_IDS[text]
        if text.isdigit() and int(text) < len(LABELS):
            return int(text)
    raise UserError(f"{where}: malformed XNLI row: label {value!r} is not one of {', '.join(LABELS)} (or 0-2)")


# -- locating the data ----------------------------------------------------------------------------


def _tsv_dir(path: Path) -> Path | None:
    for folder in (path, path / "XNLI-1.0"):
        if any((folder / name).is_file() for name in TSV_FILES.values()):
            return folder
    return None


def _jsonl_dir(path: Path) -> Path | None:
    for folder in (path, path / "xnli"):
        if folder.is_dir() and any((sub / f"{s}.jsonl").is_file() for sub in folder.iterdir() if sub.is_dir()
                                   for s in FILE_SPLITS):
            return folder
    return None


def locate(data_dir: Path | None, source: str = "auto", hf_name: str = "facebook/xnli") -> tuple[str, str]:
    """``(source, location)`` for the user's data. ``source`` "auto" picks by what ``data_dir`` holds
    (the Hugging Face hub when there is no ``data_dir``); "jsonl", "tsv" or "hf" force one."""
    if source not in ("auto", "jsonl", "tsv", "hf"):
        raise UserError(f"unknown XNLI source {source!r}; choose auto, jsonl, tsv or hf")
    if source == "hf" or (source == "auto" and data_dir is None):
        return "hf", hf_name
    if data_dir is None:
        raise UserError(f"XNLI source '{source}' reads files: {LAYOUT_HELP}")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise UserError(f"XNLI data directory '{data_dir}' does not exist; {LAYOUT_HELP}")
    tsv, jsonl = _tsv_dir(path), _jsonl_dir(path)
    if source in ("auto", "tsv") and tsv is not None:
        return "tsv", str(tsv.resolve())
    if source in ("auto", "jsonl") and jsonl is not None:
        return "jsonl", str(jsonl.resolve())
    what = {"auto": "XNLI data", "tsv": "xnli.dev.tsv or xnli.test.tsv", "jsonl": "<lang>/dev.jsonl files"}[source]
    raise UserError(f"no {what} found in '{data_dir}'; {LAYOUT_HELP}")


def _files(source: str, location: str) -> list[Path]:
    if source == "tsv":
        return [Path(location) / name for name in TSV_FILES.values() if (Path(location) / name).is_file()]
    root = Path(location)
    return sorted(sub / f"{s}.jsonl" for sub in root.iterdir() if sub.is_dir() for s in FILE_SPLITS
                  if (sub / f"{s}.jsonl").is_file())


def fingerprint(source: str, location: str, languages: list[str] | None = None) -> str:
    """A key that changes whenever the data read would change."""
    if source == "hf":
        return settings_key({"v": PARSER_VERSION, "hf": location, "languages": sorted(languages or [])})
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in _files(source, location)]
    return settings_key({"v": PARSER_VERSION, "source": source, "files": stats})


# -- reading --------------------------------------------------------------------------------------


def read_table(source: str, location: str, cache_dir: Path, languages: list[str] | None = None) -> XnliTable:
    """The parsed table (from the JSON cache when the files are unchanged). ``languages`` matters
    only for the hub, whose languages are loaded one configuration at a time."""
    key = fingerprint(source, location, languages)
    path = Path(cache_dir) / "xnli" / "parsed" / f"{source}-{key}.json"
    if path.is_file():
        try:
            return XnliTable.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, IndexError, TypeError):
            pass  # a damaged cache entry is rebuilt
    if source == "jsonl":
        table = read_jsonl_dir(Path(location))
    elif source == "tsv":
        table = read_tsv_dir(Path(location))
    else:
        table = read_hub(location, languages or list(PAPER_ORDER))
    write_json_atomic(path, table.to_json())
    return table


def _finish(table: XnliTable) -> XnliTable:
    for split, per in table.rows.items():
        seen: dict[str, None] = {}
        for lang in order_languages(per):
            for pid in per[lang]:
                seen.setdefault(pid, None)
        table.order[split] = list(seen)
    return table


def read_jsonl_dir(root: Path) -> XnliTable:
    """Per-language jsonl files under ``root``."""
    table = XnliTable("jsonl", str(root))
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for split in FILE_SPLITS:
            path = sub / f"{split}.jsonl"
            if path.is_file():
                rows = read_jsonl_file(path)
                if not rows:
                    raise UserError(f"'{path}' holds no rows; language '{sub.name}' has no XNLI pairs")
                table.rows.setdefault(split, {})[sub.name] = rows
    return _finish(table)


def read_jsonl_file(path: Path) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(utf8_lines(fh, path), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}: malformed XNLI row: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{where}: malformed XNLI row: expected a JSON object")
            missing = [k for k in ("premise", "hypothesis", "label") if k not in obj]
            if missing:
                raise UserError(f"{where}: malformed XNLI row: missing {', '.join(missing)}")
            if not isinstance(obj["premise"], str) or not isinstance(obj["hypothesis"], str):
                raise UserError(f"{where}: malformed XNLI row: premise and hypothesis must be strings")
            pid = str(obj["idx"]) if "idx" in obj else str(number - 1)
            if pid in rows:
                raise UserError(f"{where}: malformed XNLI row: pair id {pid} appears twice in the file")
            rows[pid] = (obj["premise"], obj["hypothesis"], parse_label(obj["label"], where))
    return rows


TSV_COLUMNS = ("language", "gold_label", "sentence1", "sentence2", "pairID")


def read_tsv_dir(root: Path) -> XnliTable:
    """The XNLI-1.0 release: tab-separated, no quoting (texts contain quote characters)."""
    table = XnliTable("tsv", str(root))
    for split, name in TSV_FILES.items():
        path = root / name
        if path.is_file():
            table.rows[split] = read_tsv_file(path)
    return _finish(table)


def read_tsv_file(path: Path) -> dict[str, dict[str, Row]]:
    per_lang: dict[str, dict[str, Row]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(utf8_lines(fh, path), delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise UserError(f"'{path}' is empty; expected the XNLI-1.0 header with columns {', '.join(TSV_COLUMNS)}")
        missing = [c for c in TSV_COLUMNS if c not in header]
        if missing:
            raise UserError(f"{path}:1: the header lacks column(s) {', '.join(missing)}; is this the XNLI-1.0 release?")
        col = {c: header.index(c) for c in TSV_COLUMNS}
        for fields in reader:
            where = f"{path}:{reader.line_num}"
            if not fields or fields == [""]:
                continue
            if len(fields) != len(header):
                raise UserError(f"{where}: malformed XNLI row: {len(fields)} tab-separated fields, the header has "
                                f"{len(header)}")
            lang, pid = fields[col["language"]].strip(), fields[col["pairID"]].strip()
            if not lang or not pid:
                raise UserError(f"{where}: malformed XNLI row: empty language or pairID")
            rows = per_lang.setdefault(lang, {})
            if pid in rows:
                raise UserError(f"{where}: malformed XNLI row: pairID {pid} appears twice for language {lang}")
            rows[pid] = (fields[col["sentence1"]], fields[col["sentence2"]],
                         parse_label(fields[col["gold_label"]], where))
    if not per_lang:
        raise UserError(f"'{path}' holds no rows")
    return per_lang


def _hub_cached(name: str) -> bool:
    """Whether some copy of dataset ``name`` is in the local Hugging Face caches (a cheap check made
    before importing ``datasets``, so that offline use without a copy fails at once)."""
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser()
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets")).expanduser()
    hub_cache = Path(os.environ.get("HF_HUB_CACHE", os.environ.get("HUGGINGFACE_HUB_CACHE", home / "hub"))).expanduser()
    return ((datasets_cache / name.replace("/", "___")).exists()
            or (hub_cache / ("datasets--" + name.replace("/", "--"))).exists())


def read_hub(name: str, languages: list[str]) -> XnliTable:
    """``facebook/xnli`` per-language configurations (validation -> dev, test -> test)."""
    if hub_offline("HF_DATASETS_OFFLINE"):
        why = "HF_HUB_OFFLINE is set and it is not in the local cache"
        if not _hub_cached(name):
            raise UserError(f"no --data-dir was given and the Hugging Face dataset '{name}' cannot be loaded: "
                            f"{why}; {LAYOUT_HELP}")
    elif not hub_reachable():
        why = "the Hugging Face hub cannot be reached (set HF_HUB_OFFLINE=1 to use a cached copy)"
    else:
        why = None
    if why and not hub_offline("HF_DATASETS_OFFLINE"):
        raise UserError(f"no --data-dir was given and the Hugging Face dataset '{name}' cannot be loaded: {why}; "
                        f"{LAYOUT_HELP}")
    try:
        from datasets import load_dataset
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise UserError(f"the 'datasets' package is needed to read '{name}'; {LAYOUT_HELP}") from None
    table = XnliTable("hf", name)
    for lang in languages:
        try:
            loaded = load_dataset(name, lang)
        except Exception as exc:  # offline, unknown config, network: one clear sentence
            reason = why or f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            raise UserError(f"no --data-dir was given and the Hugging Face dataset '{name}' ({lang}) could not be "
                            f"loaded ({reason}); {LAYOUT_HELP}") from None
        for split, hf_split in HF_SPLITS.items():
            if hf_split in loaded:
                part = loaded[hf_split]
                table.rows.setdefault(split, {})[lang] = {
                    str(i): (p, h, parse_label(int(y), f"{name}/{lang}/{hf_split} row {i}"))
                    for i, (p, h, y) in enumerate(zip(part["premise"], part["hypothesis"], part["label"]))
                }
    return _finish(table)
