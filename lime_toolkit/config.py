"""Run configuration: embedded defaults, then a YAML file, then command-line overrides."""
from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


def defaults() -> dict[str, Any]:
    text = resources.files("lime_toolkit").joinpath("defaults.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


#: Sections whose keys belong to the chosen plugins, so any key is accepted there.
FREE_FORM = ("editor_options", "mask_options", "dataset_options")


def merge(base: dict, override: dict, path: str = "", strict: bool = True) -> dict:
    """Deep-merge ``override`` into a copy of ``base``; unknown keys are an error naming them
    (except inside the plugins' free-form option sections)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}{key}"
        if strict and key not in base:
            raise UserError(f"unknown config key '{where}'; known keys here: {', '.join(sorted(base))}")
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            out[key] = merge(base[key], value, where + ".", strict=strict and key not in FREE_FORM)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict[str, Any]:
    """Defaults <- YAML file at ``path`` <- ``overrides`` (dotted keys such as ``train.max_steps``;
    ``None`` values are ignored so unset CLI flags keep the file's value)."""
    config = defaults()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file '{path}' does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"config file '{path}' is not valid YAML: {yaml_error_line(exc)}") from None
        if not isinstance(loaded, dict):
            raise UserError(f"config file '{path}' must hold a mapping of settings")
        config = merge(config, loaded)
    nested: dict = {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return merge(config, nested)


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """A YAML error as one line: the problem and where (PyYAML's own message spans several lines
    and quotes the offending text with a caret)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def save_config(config: dict, path: Path) -> None:
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
