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


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to ``path`` via a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
