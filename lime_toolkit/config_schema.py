"""The configuration's schema: every key, its type and range (``Spec``), and the sentinel that resets a key."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from lime_toolkit.errors import UserError

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
#: ``train.schedule``: how the learning rates move over a run (lime_toolkit.training.lr_factor).
SCHEDULES = ("constant", "cosine")

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
        "batched": BOOL,
        "schedule": Choice(*SCHEDULES),
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
