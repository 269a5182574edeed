"""Where the toolkit caches what it builds, and how it writes there safely."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def cache_root() -> Path:
    """``$LIME_TOOLKIT_CACHE``, else ``$XDG_CACHE_HOME/lime-toolkit``, else ``~/.cache/lime-toolkit``."""
    if os.environ.get("LIME_TOOLKIT_CACHE"):
        return Path(os.environ["LIME_TOOLKIT_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "lime-toolkit"


def check_cache_writable() -> Path:
    """The cache root, after checking that it can be created and written (changes nothing)."""
    from .errors import UserError

    root = cache_root()
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        why = f"'{probe}' is a file" if not probe.is_dir() else f"'{probe}' is not writable"
        raise UserError(f"the cache '{root}' cannot be written ({why}); set LIME_TOOLKIT_CACHE to a writable directory")
    return root


def settings_key(settings: dict) -> str:
    """A short stable hash of JSON-serialisable settings, used to key cache entries."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


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
