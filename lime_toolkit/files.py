"""Reading and writing files safely: atomic writes (a killed process never leaves half a file) and reads
that fail with one line naming the file and the fix."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from lime_toolkit.errors import UserError


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; on success rename it to ``final``.

    An interrupted build leaves only a ``.tmp-*`` directory, never a half-written ``final``.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        if final.exists():  # another process finished first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.chmod(0o755)  # mkdtemp makes it private; a cache entry is meant to be shared
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a private temporary file beside it, flushed to disk and
    renamed over ``path``: a reader (or a process killed mid-write) sees the old file or the new
    one, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to ``path`` atomically (:func:`write_bytes_atomic`), so readers never see half a file."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_text(path: Path, what: str, fix: str, *, damaged: bool = False) -> str:
    """The UTF-8 text of the file at ``path``; a missing, unreadable or non-UTF-8 file is one line
    naming it (``what``: what the file is; ``fix``: the way out; ``damaged``: word a non-UTF-8
    file as damaged, for files the toolkit wrote itself)."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} '{path}' does not exist; {fix}") from None
    except UnicodeDecodeError:
        problem = "is damaged (not UTF-8 text)" if damaged else "is not UTF-8 text"
        raise UserError(f"{what} '{path}' {problem}; {fix}") from None
    except IsADirectoryError:
        raise UserError(f"{what} '{path}' is a directory, not a file; {fix}") from None
    except OSError as exc:
        raise UserError(f"{what} '{path}' cannot be read ({exc.strerror}); {fix}") from None


def read_json(path: Path, what: str, fix: str):
    """The JSON document at ``path``; a missing, unreadable or damaged file is one line naming it
    (``what``: what the file is; ``fix``: the way out)."""
    text = read_text(path, what, fix, damaged=True)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} '{path}' is damaged (not valid JSON at line {exc.lineno}: {exc.msg}); {fix}") from None
