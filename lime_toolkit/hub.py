"""Is the Hugging Face hub usable right now? Cheap checks made before a download is attempted, so
that offline use fails at once with one clear sentence instead of minutes of retries."""
from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

_TRUE = {"1", "true", "yes", "on"}


def hub_offline(*variables: str) -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or any of ``variables``, e.g. ``HF_DATASETS_OFFLINE``) is set."""
    return any(os.environ.get(k, "").lower() in _TRUE for k in ("HF_HUB_OFFLINE", *variables))


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub endpoint (``HF_ENDPOINT``) opens within ``timeout``."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout):
            return True
    except OSError:
        return False
