"""Where the toolkit caches what it builds (``$LIME_TOOLKIT_CACHE``) and the key of a cache entry.
Writes into the cache go through :mod:`lime_toolkit.files`."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def cache_root() -> Path:
    """``$LIME_TOOLKIT_CACHE``, else ``$XDG_CACHE_HOME/lime-toolkit``, else ``~/.cache/lime-toolkit``."""
    if os.environ.get("LIME_TOOLKIT_CACHE"):
        return Path(os.environ["LIME_TOOLKIT_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "lime-toolkit"


def check_cache_writable() -> Path:
    """The cache root, after checking that it can be created and written (changes nothing)."""
    from lime_toolkit.errors import UserError

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
