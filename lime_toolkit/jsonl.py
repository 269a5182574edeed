"""Reading JSON-lines data files with errors that name the file and line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from lime_toolkit.errors import UserError


def jsonl_rows(path: Path, what: str = "row") -> Iterator[tuple[str, dict]]:
    """Yield ``("path:line", object)`` for each non-blank line; a line that is not a JSON object is a
    :class:`UserError` saying where (``what`` names the kind of row, e.g. "XNLI row")."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(utf8_lines(fh, path), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}: malformed {what}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{where}: malformed {what}: expected a JSON object")
            yield where, obj


def utf8_lines(fh, path) -> Iterator[str]:
    """The lines of a text file opened as UTF-8; bytes that are not UTF-8 are a :class:`UserError`
    naming the file and the line."""
    number = 0
    while True:
        try:
            line = fh.readline()
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text (near line {number + 1}); re-save the file as UTF-8") from None
        if not line:
            return
        number += 1
        yield line
