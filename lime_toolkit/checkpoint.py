"""Checkpoints: tensors as safetensors, everything else as JSON. Nothing is ever unpickled."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .cache import atomic_directory
from .errors import UserError

EDITOR_FILE = "editor.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"


def _tensors(state: dict) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def save_checkpoint(directory: Path, module: torch.nn.Module, state: dict, optimizer=None) -> None:
    """Write ``module``'s state dict, optionally the optimiser's, and ``state`` (JSON) atomically:
    the directory is replaced only once everything is written."""
    directory = Path(directory)
    staged = directory.with_name(directory.name + ".new")
    if staged.exists():  # left by an interrupted save
        shutil.rmtree(staged)
    with atomic_directory(staged) as tmp:
        save_file(_tensors(module.state_dict()), str(tmp / EDITOR_FILE))
        if optimizer is not None:
            opt = optimizer.state_dict()
            flat = {f"{idx}.{key}": value for idx, entry in opt["state"].items()
                    for key, value in entry.items() if torch.is_tensor(value)}
            save_file(_tensors(flat), str(tmp / OPTIMIZER_FILE))
            state = {**state, "optimizer_param_groups": opt["param_groups"]}
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(staged, directory)


def read_state(directory: Path) -> dict:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise UserError(f"'{directory}' is not a checkpoint (no {STATE_FILE}); pass a run directory made by train")
    return json.loads(path.read_text(encoding="utf-8"))


def load_checkpoint(directory: Path, module: torch.nn.Module, optimizer=None) -> dict:
    """Load what :func:`save_checkpoint` wrote into ``module`` (and ``optimizer``); returns the state."""
    directory = Path(directory)
    state = read_state(directory)
    tensors = load_file(str(directory / EDITOR_FILE))
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise UserError(
            f"checkpoint '{directory}' does not match this editor/mask configuration (missing: "
            f"{sorted(missing)[:3]}, unexpected: {sorted(unexpected)[:3]}); use the run's own config.yaml"
        )
    if optimizer is not None and (directory / OPTIMIZER_FILE).is_file():
        flat = load_file(str(directory / OPTIMIZER_FILE))
        per_param: dict[int, dict] = {}
        for key, value in flat.items():
            idx, name = key.split(".", 1)
            per_param.setdefault(int(idx), {})[name] = value
        optimizer.load_state_dict({"state": per_param, "param_groups": state["optimizer_param_groups"]})
    return state
