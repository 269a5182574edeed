"""Run directories that cannot be damaged silently: their configuration read back with one-line
errors that name the damaged file and the way out, and no write into a directory that is not a run.

Every file the toolkit writes into a run directory goes through :mod:`lime_toolkit.files`' atomic
writers (or, for checkpoints, :mod:`lime_toolkit.checkpoint`'s staged directories), so a process
killed at any moment leaves the old file or the new one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lime_toolkit.errors import UserError

CONFIG_FILE = "config.yaml"


def read_run_config(run_dir: Path, overrides: dict | None = None) -> dict:
    """A run directory's ``config.yaml``, completed with the defaults of keys added since and
    validated like any configuration."""
    from lime_toolkit.config import defaults, merge, read_yaml_mapping, validate

    run_dir = Path(run_dir)
    saved = run_dir / CONFIG_FILE
    if not saved.is_file():
        raise UserError(f"'{run_dir}' is not a run directory (no {CONFIG_FILE}); pass a directory written by "
                        f"`lime-toolkit train --out DIR`")
    fix = "restore it from a copy, or start afresh with another --out"
    loaded = read_yaml_mapping(saved, "run configuration", fix)
    try:
        config = validate(merge(defaults(), loaded))
    except UserError as exc:
        raise UserError(f"run configuration '{saved}' is damaged: {exc}; {fix}") from None
    if overrides:
        try:
            config = validate(merge(config, overrides))
        except UserError as exc:
            raise UserError(f"{exc} (from the command line)") from None
    return config


def check_out(out: Path, flag: str = "--out") -> None:
    """Refuse, before anything is loaded or written, an ``out`` that cannot become a run directory:
    a file, a directory of other things (never written into without asking), or a place that
    cannot be written. Changes nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} '{out}' is a file, not a directory; pass another {flag}")
    if out.is_dir():
        if not (out / CONFIG_FILE).exists():
            try:
                entries = sorted(p.name for p in out.iterdir())
            except OSError as exc:
                raise UserError(f"{flag} '{out}' cannot be read ({exc.strerror}); pass another {flag}") from None
            if entries:
                raise UserError(f"{flag} '{out}' already holds files that are not a lime-toolkit run "
                                f"({', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}); "
                                f"pass another {flag}, or an empty or new directory")
        if not os.access(out, os.W_OK | os.X_OK):
            raise UserError(f"{flag} '{out}' cannot be written (permission denied); pass another {flag}")
        return
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{flag} '{out}' cannot be created: '{ancestor}' is a file; pass another {flag}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{flag} '{out}' cannot be created in '{ancestor}' (permission denied); pass another {flag}")


def prepare_out(out: Path, flag: str = "--out") -> None:
    """:func:`check_out`, then create ``out`` and check that a file can really be written there."""
    out = Path(out)
    check_out(out, flag)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{flag} '{out}' cannot be written ({exc.strerror}); pass another {flag}") from None


def check_output_file(path, flag: str) -> None:
    """Refuse, before any work, an output file named by ``flag`` that cannot be written: a
    directory, or a place whose parent is a file or not writable. Changes nothing."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} '{path}' is a directory; pass a file path")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{flag} '{path}' cannot be created: '{ancestor}' is a file; pass another {flag}")
    target = path if path.exists() else ancestor
    if not os.access(target, os.W_OK):
        raise UserError(f"{flag} '{path}' cannot be written (permission denied); pass another {flag}")
