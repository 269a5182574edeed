"""Checkpoints: tensors as safetensors, everything else as JSON. Nothing is ever unpickled.

A checkpoint directory holds ``editor.safetensors`` (the editor's and masks' state dict),
optionally ``optimizer.safetensors``, ``rng.safetensors`` (torch's generator states as uint8
tensors) and ``state.json`` (the step, the Python and numpy random states, the optimiser's
parameter groups, and the SHA-256 of every other file, so a damaged file is recognised).

Writing is atomic: the new checkpoint is built in ``<name>.new`` and only then swapped in; the one
it replaces is kept as ``previous`` when asked (the training's ``last``), else removed. A process
killed at any moment leaves either the old or the new checkpoint, and :func:`recover` finishes an
interrupted swap.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lime_toolkit.errors import UserError
from lime_toolkit.files import atomic_directory

EDITOR_FILE = "editor.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
STATE_FILE = "state.json"
FORMAT = 2


def _tensors(state: dict) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- random states ------------------------------------------------------------------------------------

def capture_rng() -> tuple[dict[str, torch.Tensor], dict]:
    """Every random state training draws from: torch's CPU (and CUDA) generators as uint8 tensors;
    Python's ``random`` and numpy's global state as JSON (numpy's key as a tensor)."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    version, internal, gauss = random.getstate()
    meta: dict = {"python": [version, list(internal), gauss]}
    np = sys.modules.get("numpy")
    if np is not None:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        tensors["numpy_keys"] = torch.from_numpy(keys.astype("int64"))
        meta["numpy"] = {"name": name, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Undo :func:`capture_rng` (CUDA states only where as many devices are visible)."""
    torch.set_rng_state(tensors["torch_cpu"].to(torch.uint8))
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("torch_cuda_")), key=lambda k: int(k[11:]))]
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda])
    if "python" in meta:
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in meta and "numpy_keys" in tensors:
        import numpy as np

        n = meta["numpy"]
        np.random.set_state((n["name"], tensors["numpy_keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                             n["cached_gaussian"]))


# -- writing --------------------------------------------------------------------------------------------

def save_checkpoint(directory: Path, module: torch.nn.Module, state: dict, optimizer=None, rng: bool = False,
                    previous: str | None = None) -> None:
    """Write ``module``'s state dict, optionally the optimiser's and the random states, and
    ``state`` (JSON) atomically. The checkpoint it replaces is kept beside it as ``previous`` (a
    directory name) when given, else removed."""
    directory = Path(directory)
    staged = directory.with_name(directory.name + ".new")
    if staged.exists():  # a complete checkpoint that an interrupted save did not swap in: superseded
        shutil.rmtree(staged)
    state = dict(state)
    with atomic_directory(staged) as tmp:
        save_file(_tensors(module.state_dict()), str(tmp / EDITOR_FILE))
        if optimizer is not None:
            opt = optimizer.state_dict()
            flat = {f"{idx}.{key}": value for idx, entry in opt["state"].items()
                    for key, value in entry.items() if torch.is_tensor(value)}
            save_file(_tensors(flat), str(tmp / OPTIMIZER_FILE))
            state["optimizer_param_groups"] = opt["param_groups"]
        if rng:
            tensors, meta = capture_rng()
            save_file(_tensors(tensors), str(tmp / RNG_FILE))
            state["rng"] = meta
        state["files"] = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
        state["format"] = FORMAT
        with open(tmp / STATE_FILE, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(state, indent=2, default=str))
            fh.flush()
            os.fsync(fh.fileno())
    _swap_in(staged, directory, previous)


def _swap_in(staged: Path, directory: Path, previous: str | None) -> None:
    if directory.exists():
        keep = directory.with_name(previous) if previous else directory.with_name(directory.name + ".old")
        if keep.exists():
            shutil.rmtree(keep)
        os.replace(directory, keep)
    os.replace(staged, directory)
    old = directory.with_name(directory.name + ".old")
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def recover(root: Path, previous: dict[str, str] | None = None) -> None:
    """Finish any save that a killed process left half done under ``root`` (a ``checkpoints``
    directory): a complete ``<name>.new`` is swapped in; a checkpoint moved aside as ``<name>.old``
    comes back if nothing replaced it; temporary build directories are removed."""
    root = Path(root)
    if not root.is_dir():
        return
    previous = previous or {}
    for staged in sorted(root.glob("*.new")):
        name = staged.name[:-4]
        if (staged / STATE_FILE).is_file():
            _swap_in(staged, root / name, previous.get(name))
        else:
            shutil.rmtree(staged, ignore_errors=True)
    for old in sorted(root.glob("*.old")):
        target = root / old.name[:-4]
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, target)
    for tmp in root.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


# -- reading ----------------------------------------------------------------------------------------------

def way_out(directory: Path) -> str:
    """What to do about a damaged checkpoint, in words."""
    directory = Path(directory)
    prev = directory.with_name("previous")
    if directory.name == "last" and (prev / STATE_FILE).is_file():
        return (f"to resume from the previous checkpoint, replace it with '{prev}' (rm -r {directory} && "
                f"mv {prev} {directory}), or start afresh with another --out")
    if directory.name == "best":
        return "delete it to fall back to the last checkpoint, or start afresh with another --out"
    return "delete it to start that part afresh, or use another --out"


def damaged(directory: Path, why: str) -> UserError:
    return UserError(f"checkpoint '{directory}' is damaged ({why}); {way_out(directory)}")


def read_state(directory: Path) -> dict:
    directory = Path(directory)
    path = directory / STATE_FILE
    if not path.is_file():
        if directory.is_dir() and any(directory.iterdir()):
            raise damaged(directory, f"{STATE_FILE} is missing")
        raise UserError(f"'{directory}' is not a checkpoint (no {STATE_FILE}); pass a run directory made by train")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(directory, f"{STATE_FILE} is not valid JSON: {getattr(exc, 'msg', exc)}") from None
    if not isinstance(state, dict) or not isinstance(state.get("step", 0), int):
        raise damaged(directory, f"{STATE_FILE} does not hold a checkpoint state")
    return state


def verify(directory: Path, state: dict | None = None) -> dict:
    """The checkpoint's state after checking that every file it lists is there, whole and
    unchanged (SHA-256); a damaged checkpoint is a :class:`UserError` with the way out."""
    directory = Path(directory)
    state = read_state(directory) if state is None else state
    files = state.get("files")
    if files is None:  # written before checksums: at least the editor file must be there
        files = {EDITOR_FILE: None}
    if not isinstance(files, dict):
        raise damaged(directory, f"{STATE_FILE} lists no files")
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            raise damaged(directory, f"{name} is missing")
        if digest is not None and _sha256(path) != digest:
            raise damaged(directory, f"{name} does not match its checksum")
    return state


def _load_tensors(directory: Path, name: str) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(directory / name))
    except (SafetensorError, OSError, ValueError) as exc:
        raise damaged(directory, f"{name} cannot be read: {' '.join(str(exc).split())[:120]}") from None


def load_checkpoint(directory: Path, module: torch.nn.Module, optimizer=None, rng: bool = False) -> dict:
    """Load what :func:`save_checkpoint` wrote into ``module`` (and ``optimizer``; with ``rng`` also
    the random states); returns the state."""
    directory = Path(directory)
    state = verify(directory)
    tensors = _load_tensors(directory, EDITOR_FILE)
    try:
        missing, unexpected = module.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # shapes differ
        first = " ".join(str(exc).split("\n\t")[1:2]).strip() or "tensor shapes differ"
        raise UserError(f"checkpoint '{directory}' does not match this editor/mask configuration ({first[:160]}); "
                        f"use the run's own config.yaml") from None
    if missing or unexpected:
        raise UserError(
            f"checkpoint '{directory}' does not match this editor/mask configuration (missing: "
            f"{sorted(missing)[:3]}, unexpected: {sorted(unexpected)[:3]}); use the run's own config.yaml"
        )
    if optimizer is not None and (directory / OPTIMIZER_FILE).is_file():
        flat = _load_tensors(directory, OPTIMIZER_FILE)
        per_param: dict[int, dict] = {}
        try:
            for key, value in flat.items():
                idx, name = key.split(".", 1)
                per_param.setdefault(int(idx), {})[name] = value
            optimizer.load_state_dict({"state": per_param, "param_groups": state["optimizer_param_groups"]})
        except (KeyError, ValueError, TypeError) as exc:
            raise damaged(directory, f"the optimiser state does not fit: {exc}") from None
    if rng and state.get("format", 1) >= 2:  # older checkpoints hold no random states
        if not (directory / RNG_FILE).is_file() or "rng" not in state:
            raise damaged(directory, f"{RNG_FILE} is missing, so the run cannot continue exactly")
        try:
            restore_rng(_load_tensors(directory, RNG_FILE), state["rng"])
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise damaged(directory, f"the random states cannot be restored: {exc}") from None
    return state
