"""Run configuration: embedded defaults, then a YAML file, then command-line overrides, validated once.

Every key of ``defaults.yaml`` has a :class:`Spec` in :data:`SCHEMA` (its type and range).
:func:`load_config` checks the merged result once, so a value from the file, a flag or ``--set``
fails the same way: one line naming the key, the value and what is allowed, e.g.
``train.max_steps: -5 is not allowed; expected an integer >= 1``. Unknown keys are refused with the
nearest valid key. The plugins' option sections (``editor_options``, ``mask_options``,
``dataset_options``) are free-form here; a component that declares ``option_specs`` has its own
options checked the same way when the run is built (:func:`check_options`).
"""
from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass
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


class _Null:
    """An explicit ``null`` from the command line (``--set KEY=null``), unlike an unset flag (None)."""

    def __repr__(self):
        return "NULL"

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


#: ``--set KEY=null``: the key becomes null (where its spec allows); inside the plugins' option
#: sections the key is removed, so the component's own default applies.
NULL = _Null()


class ConfigValueError(UserError):
    """A value outside its spec; ``key`` is the dotted key."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def show(value) -> str:
    """A value as the user wrote it (YAML-like), shortened to one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Spec:
    """The type and range of one setting.

    ``kind``: ``int``, ``number`` (int or float), ``str``, ``bool``, ``choice`` (one of
    ``choices``), ``langs`` ('all', a language or a comma list, or a list of languages),
    ``str_list`` (a list of strings; one string is a list of one) or ``int_list``. ``low``/``high``
    bound numbers (``low_open``/``high_open``: the bound itself is excluded); ``nullable``: null
    is allowed; ``pattern``: a regular expression a string must match (``pattern_text`` says it in
    words).
    """

    kind: str
    nullable: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    pattern: str | None = None
    pattern_text: str = ""

    def expected(self) -> str:
        if self.kind in ("int", "number"):
            text = "an integer" if self.kind == "int" else "a number"
            if self.low is not None and self.high is not None:
                low, high = ">" if self.low_open else ">=", "<" if self.high_open else "<="
                text += f" {low} {_num(self.low)} and {high} {_num(self.high)}"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {_num(self.low)}"
            elif self.high is not None:
                text += f" {'<' if self.high_open else '<='} {_num(self.high)}"
        elif self.kind == "choice":
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "langs":
            text = "'all', a language or a comma list of languages (or a YAML list)"
        elif self.kind == "str_list":
            text = "a list of strings"
        elif self.kind == "int_list":
            text = "a list of integers"
        elif self.pattern_text:
            text = self.pattern_text
        else:
            text = "a non-empty string"
        return text + (" or null" if self.nullable else "")

    def check(self, value):
        """``value`` normalised (e.g. the string '1e-4' as a float), or ValueError."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError
        kind = self.kind
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError
            self._range(value)
            return value
        if kind == "number":
            if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
                try:
                    value = float(value)
                except ValueError:
                    raise ValueError from None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError
            self._range(value)
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if kind == "choice":
            if value not in self.choices:
                raise ValueError
            return value
        if kind == "str":
            if not isinstance(value, str) or not value.strip():
                raise ValueError
            if self.pattern and not re.fullmatch(self.pattern, value):
                raise ValueError
            return value
        if kind == "langs":
            if isinstance(value, str):
                if not [l for l in value.split(",") if l.strip()]:
                    raise ValueError
                return value
            if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
                return value
            raise ValueError
        if kind == "str_list":
            if isinstance(value, str) and value.strip():
                return [value]
            if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
                return value
            raise ValueError
        if kind == "int_list":
            if isinstance(value, int) and not isinstance(value, bool):
                return [value]
            if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                return value
            raise ValueError
        raise AssertionError(f"unknown spec kind {kind}")

    def _range(self, value) -> None:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise ValueError
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise ValueError


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def Int(low=None, high=None, nullable=False) -> Spec:  # noqa: N802 - reads like a type
    return Spec("int", nullable=nullable, low=low, high=high)


def Number(low=None, high=None, nullable=False, low_open=False, high_open=False) -> Spec:  # noqa: N802
    return Spec("number", nullable=nullable, low=low, high=high, low_open=low_open, high_open=high_open)


def Positive(nullable=False) -> Spec:  # noqa: N802
    return Number(0, nullable=nullable, low_open=True)


def Choice(*choices, nullable=False) -> Spec:  # noqa: N802
    return Spec("choice", nullable=nullable, choices=tuple(choices))


def Str(nullable=False, pattern=None, pattern_text="") -> Spec:  # noqa: N802
    return Spec("str", nullable=nullable, pattern=pattern, pattern_text=pattern_text)


BOOL = Spec("bool")
LANGS = Spec("langs")
#: A mapping whose keys belong to plugins (checked by the components that declare option_specs).
OPTIONS = "options"

DEVICE = Str(pattern=r"auto|cpu|mps|cuda(:\d+)?", pattern_text="auto, cpu, mps, cuda or cuda:N")

#: The type and range of every key of defaults.yaml (the test suite checks that both list the same keys).
SCHEMA: dict[str, Any] = {
    "editor": Str(),
    "masks": Str(nullable=True),
    "dataset": Str(),
    "model": Str(nullable=True),
    "data_dir": Str(nullable=True),
    "languages": Spec("langs", nullable=True),
    "limit": Int(1, nullable=True),
    "seed": Int(0, 2**63 - 1),
    "device": DEVICE,
    "out": Str(nullable=True),
    "edit": {
        "params": Spec("str_list", nullable=True),
        "layers": Spec("int_list", nullable=True),
        "last_n_layers": Int(1),
        "loss_power": Number(0),
    },
    "train": {
        "langs": LANGS,
        "max_steps": Int(1),
        "accumulate": Int(1),
        "lr": Positive(nullable=True),
        "mask_lr": Positive(nullable=True),
        "clip": Positive(),
        "rel_weight": Number(0),
        "loc_weight": Number(0),
        "mask_weight": Number(0),
        "retain_per_edit": Int(1),
        "update_per_edit": Int(0),
        "val_every": Int(1),
        "val_edits": Int(1),
        "patience": Int(0),
        "hard_targets": Int(1),
    },
    "eval": {
        "split": Choice("train", "dev", "test"),
        "edit_langs": LANGS,
        "eval_langs": LANGS,
        "n_update": Int(0),
        "n_retain": Int(0),
        "max_edits": Int(0, nullable=True),
        "edit_scale": Positive(),
    },
    "editor_options": OPTIONS,
    "mask_options": OPTIONS,
    "dataset_options": OPTIONS,
}


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
    from .rundir import read_text

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
    from .cache import write_text_atomic

    write_text_atomic(Path(path), dump_config(config))
