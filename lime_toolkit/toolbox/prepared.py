"""Prepared base models in the cache: finding them, telling complete from partial, saving them.

Contract: a *prepared* model is a directory holding a transformers model and its tokenizer
(``save_pretrained``) and an *info file*, a JSON report of the build (recall, accuracy, ...) that
the dataset names (``recall.json``, ``accuracy.json``). The info file is written last, inside a
temporary directory that is renamed into place (:func:`save_prepared`), so a directory with the
info file and ``config.json`` is complete, and an interrupted build leaves nothing a later run
would load. A dataset caches its models as ``<cache>/<dataset>/<settings key>/model``; when the info
file records the settings as ``"key"``, :func:`find_prepared` can serve a run with a model built
for other but compatible settings (e.g. more languages).

:func:`read_report` reads the per-language figure back from a prepared model (``prepare-base
--json``): the info file's ``"recall"`` or ``"accuracy"`` (language -> share) and its
``"build_seconds"`` (or ``"train_seconds"``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from lime_toolkit.errors import UserError
from lime_toolkit.files import atomic_directory, write_json_atomic

#: The info files :func:`read_report` looks for, in this order.
REPORT_FILES = ("recall.json", "accuracy.json")
#: The keys of an info file holding the per-language figure, in the order looked for.
FIGURE_KEYS = ("recall", "accuracy")

#: Where a build reports progress, one line at a time (``print``, a progress bar's ``write`` ...).
Log = Callable[[str], None]


def is_prepared(path: Path, info_file: str) -> bool:
    """Whether ``path`` is a complete prepared model: it holds ``info_file`` and ``config.json``."""
    return (Path(path) / info_file).is_file() and (Path(path) / "config.json").is_file()


def prepared_models(root: Path, info_file: str) -> list[tuple[Path, dict]]:
    """Every complete prepared model ``root/*/model``, sorted by path, with the ``"key"`` its info
    file records (``{}`` when it records none). Unreadable info files are skipped."""
    out = []
    for info in sorted(Path(root).glob(f"*/model/{info_file}")):
        try:
            key = json.loads(info.read_text(encoding="utf-8")).get("key", {})
        except (OSError, ValueError, AttributeError):
            continue
        if is_prepared(info.parent, info_file):
            out.append((info.parent, key))
    return out


def find_prepared(root: Path, info_file: str, *, exact: Path | None = None,
                  accept: Callable[[dict], bool] | None = None) -> Path | None:
    """``exact`` if it is prepared; else the newest (by its info file's time) prepared model under
    ``root`` whose recorded key ``accept`` approves; else ``None``."""
    if exact is not None and is_prepared(exact, info_file):
        return Path(exact)
    if accept is None:
        return None
    found = [((path / info_file).stat().st_mtime, path) for path, key in prepared_models(root, info_file) if accept(key)]
    return max(found)[1] if found else None


def claim_target(final: Path, info_file: str, what: str, log: Log) -> bool:
    """Check the directory a build will write: ``True`` if a prepared model is already there
    (logged; nothing to build), ``False`` if the build may go ahead (an empty directory is removed).
    A non-empty directory that is not a prepared model is a :class:`UserError` naming ``what``."""
    final = Path(final)
    if is_prepared(final, info_file):
        log(f"{what} already prepared: {final}")
        return True
    if final.exists() and any(final.iterdir()):
        raise UserError(f"'{final}' exists and is not a prepared {what}; choose another --out or delete it")
    if final.exists():
        final.rmdir()
    return False


def save_prepared(final: Path, model, tokenizer, info_file: str, info: dict[str, Any]) -> Path:
    """Save ``model`` (moved to the CPU) and ``tokenizer`` with ``save_pretrained`` and ``info`` as
    ``info_file`` into ``final``, atomically: the directory appears complete or not at all (if
    another process saved it first, theirs is kept). Returns ``final``."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar between a build's log lines
    model.cpu()
    with atomic_directory(Path(final)) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / info_file, info)
    return Path(final)


def read_report(path: Path) -> tuple[dict[str, float], float | None] | None:
    """``(figure per language, build seconds or None)`` from the first of :data:`REPORT_FILES` in
    ``path`` that holds one of :data:`FIGURE_KEYS` as a language -> number mapping; ``None`` when
    there is none (a model not prepared by a dataset's build)."""
    for name in REPORT_FILES:
        try:
            info = json.loads((Path(path) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for key in FIGURE_KEYS:
            figure = info.get(key) if isinstance(info, dict) else None
            if isinstance(figure, dict) and all(isinstance(v, (int, float)) for v in figure.values()):
                seconds = info.get("build_seconds", info.get("train_seconds"))
                return {str(k): float(v) for k, v in figure.items()}, (
                    float(seconds) if isinstance(seconds, (int, float)) else None)
    return None
