"""Every module of the core and of the built-in plugins imports on its own, in a fresh interpreter:
no module works only because another was imported first (an import cycle or a missing import shows
up here, not in a user's script)."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def modules() -> list[str]:
    names = []
    for package, folder in (("lime_toolkit", ROOT / "lime_toolkit"), ("lime_toolkit_plugins", ROOT / "plugins")):
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            names.append(".".join((package, *parts[:-1])) if parts[-1] == "__init__" else ".".join((package, *parts)))
    return names


@pytest.mark.slow
def test_every_module_imports_on_its_own():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def load(name):
        done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, env=env,
                              cwd=ROOT.parent)
        return name, done.returncode, done.stderr.strip().splitlines()[-1:] if done.returncode else []

    names = modules()
    assert len(names) > 40 and "lime_toolkit.training" in names and "lime_toolkit_plugins.mend.editor" in names
    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = [(n, err) for n, rc, err in pool.map(load, names) if rc]
    assert not failed, failed
