"""Run configuration: embedded defaults, then a YAML file, then command-line overrides, validated once.

Every key of ``defaults.yaml`` has a :class:`Spec` in :data:`SCHEMA` (its type and range).
:func:`load_config` checks the merged result once, so a value from the file, a flag or ``--set``
fails the same way: one line naming the key, the value and what is allowed, e.g.
``train.max_steps: -5 is not allowed; expected an integer >= 1``. Unknown keys are refused with the
nearest valid key. The plugins' option sections (``editor_options``, ``mask_options``,
``dataset_options``) are free-form here; a component that declares ``option_specs`` has its own
options checked the same way when the run is built (:func:`check_options`)."""
from __future__ import annotations

import copy
import difflib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lime_toolkit.config_schema import FREE_FORM, NULL, OPTIONS, SCHEMA, ConfigValueError, Spec, show
from lime_toolkit.errors import UserError


def defaults() -> dict[str, Any]:
    text = resources.files("lime_toolkit").joinpath("defaults.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _dotted(schema: dict, prefix: str = "") -> list[str]:
    out = []
    for key, spec in schema.items():
        out.append(prefix + key)
        if isinstance(spec, dict):
            out += _dotted(spec, f"{prefix}{key}.")
    return out


def suggest(key: str, known: list[str]) -> str:
    """'; did you mean 'x'?' for the nearest of ``known`` (by the whole key or its last part)."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:
        leaf = key.rsplit(".", 1)[-1]
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in known}
        close = [by_leaf[m] for m in difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.75)]
    return f"; did you mean '{close[0]}'?" if close else ""


def merge(base: dict, override: dict, path: str = "", strict: bool = True) -> dict:
    """Deep-merge ``override`` into a copy of ``base``; unknown keys are an error naming them and the
    nearest valid key (except inside the plugins' free-form option sections). :data:`NULL` sets a
    key to None, or removes it inside a free-form section."""
    out = copy.deepcopy(base)
    if not isinstance(override, dict):
        raise UserError(f"{path.rstrip('.') or 'the configuration'}: {show(override)} is not allowed; "
                        f"expected a mapping of settings")
    for key, value in override.items():
        where = f"{path}{key}"
        if strict and key not in base:
            known = _dotted(SCHEMA)
            hint = suggest(where, known)
            level = sorted(map(str, base))
            raise UserError(f"unknown config key '{where}'" + (hint or f"; valid keys here: {', '.join(level)}"))
        if value is NULL:
            if strict:
                out[key] = None
            else:
                out.pop(key, None)
        elif isinstance(base.get(key), dict) and isinstance(value, dict):
            out[key] = merge(base[key], value, where + ".", strict=strict and key not in FREE_FORM)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _strip_null(value):
    """Inside option sections nested under a fresh key, NULL removes the key."""
    if isinstance(value, dict):
        return {k: _strip_null(v) for k, v in value.items() if v is not NULL}
    return value


def validate(config: dict, schema: dict | None = None, prefix: str = "") -> dict:
    """``config`` with every value checked against :data:`SCHEMA` (normalised where a spec says so);
    raises :class:`ConfigValueError` naming the first bad key."""
    schema = SCHEMA if schema is None else schema
    out = dict(config)
    for key, spec in schema.items():
        where = prefix + key
        if key not in config:
            raise ConfigValueError(where, f"{where}: missing; every run configuration needs it (see defaults.yaml)")
        value = config[key]
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise ConfigValueError(where, f"{where}: {show(value)} is not allowed; expected a mapping of "
                                              f"{', '.join(spec)}")
            out[key] = validate(value, spec, where + ".")
        elif spec == OPTIONS:
            if value is None:
                out[key] = {}
            elif not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise ConfigValueError(where, f"{where}: {show(value)} is not allowed; expected a mapping of "
                                              f"option names to values")
            else:
                out[key] = _strip_null(value)
        else:
            try:
                out[key] = spec.check(value)
            except ValueError:
                raise ConfigValueError(where, f"{where}: {show(value)} is not allowed; expected "
                                              f"{spec.expected()}") from None
    unknown = [k for k in config if k not in schema]
    if unknown:
        where = prefix + str(unknown[0])
        raise ConfigValueError(where, f"unknown config key '{where}'" + (suggest(where, _dotted(SCHEMA)) or
                                      f"; valid keys here: {', '.join(schema)}"))
    return out


def check_options(options: dict, specs: dict[str, Spec], section: str, component: str,
                  strict: bool = False) -> None:
    """Check a component's options against its declared ``option_specs``: a known key with a bad
    value is an error naming ``section.key``; with ``strict`` (the component's own sub-mapping) an
    unknown key is one too, with the nearest known one."""
    for key, value in options.items():
        where = f"{section}.{component}.{key}" if strict else f"{section}.{key}"
        spec = specs.get(key)
        if spec is None:
            if strict:
                hint = suggest(key, list(specs))
                raise UserError(f"unknown option '{where}' of {component}" + (
                    hint.replace("'", f"'{section}.{component}.", 1) if hint else
                    f"; its options are: {', '.join(sorted(specs))}"))
            continue
        try:
            spec.check(value)
        except ValueError:
            raise UserError(f"{where}: {show(value)} is not allowed; expected {spec.expected()}") from None


def read_yaml_mapping(path: Path, what: str, fix: str) -> dict:
    """A YAML file that must hold a mapping; any problem is one line naming the file and ``fix``."""
    from lime_toolkit.files import read_text

    text = read_text(path, what, fix)
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise UserError(f"{what} '{path}' is not valid YAML{where} ({problem}); {fix}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UserError(f"{what} '{path}' must hold a mapping of settings (it holds a {type(loaded).__name__}); {fix}")
    return loaded


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict[str, Any]:
    """Defaults <- YAML file at ``path`` <- ``overrides`` (dotted keys such as ``train.max_steps``;
    ``None`` values are ignored so unset CLI flags keep the file's value; :data:`NULL` sets null).
    The result is validated once; an error names the key and where its value came from."""
    config = defaults()
    loaded: dict = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise UserError(f"config file '{path}' does not exist; pass --config with a YAML file")
        loaded = read_yaml_mapping(path, "config file", "fix it or pass another --config")
        try:
            config = merge(config, loaded)
        except UserError as exc:
            raise UserError(f"{exc} (in config file '{path}')") from None
    nested: dict = {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        parts = dotted.split(".")
        if not all(p.strip() for p in parts):
            raise UserError(f"'{dotted}' is not a config key; keys look like train.max_steps")
        *parents, leaf = parts
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise UserError(f"'{dotted}' conflicts with another setting of '{p}'")
        node[leaf] = value
    config = merge(config, nested)
    try:
        return validate(config)
    except ConfigValueError as exc:
        flat = {k for k, v in (overrides or {}).items() if v is not None}
        if exc.key in flat or any(k.startswith(exc.key + ".") for k in flat):
            raise UserError(f"{exc} (from the command line)") from None
        if path is not None:
            raise UserError(f"{exc} (in config file '{path}')") from None
        raise


def dump_config(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def save_config(config: dict, path: Path) -> None:
    from lime_toolkit.files import write_text_atomic

    write_text_atomic(Path(path), dump_config(config))
