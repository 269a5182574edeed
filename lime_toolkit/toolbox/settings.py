"""A dataset's settings from its options (``DatasetOptions.extra``, the config's ``dataset_options``).

Contract: a dataset describes its settings as a frozen dataclass whose every field has a default;
the default's type is the option's type. :func:`settings_from_options` turns the options mapping
into an instance: unknown keys, and values that cannot be read as the option's type, raise
:class:`~lime_toolkit.errors.UserError` naming the option and the expected type, and the
instance's ``validate()`` (if it has one) runs last. :func:`coerce` reads one value; the same value
always gives the same setting whether it came from YAML or from a command-line string:

===================  ======================================================================
default              accepted values
===================  ======================================================================
``bool``             ``True``/``False``; strings ``1 true yes on`` / ``0 false no off`` (any case)
``int``              an int; a string of one
``float``            an int or a float (stored as ``float``); a string of one
``str``              a string
``tuple``            a list or tuple, or a comma list string; items read as the type of the
                     default's first item (strings when the default is empty)
``None``             anything, unchanged (an optional setting such as a model name)
===================  ======================================================================

No torch or transformers here: dataset modules import this at ``data describe`` time.
"""
from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Iterable, TypeVar

from lime_toolkit.errors import UserError

S = TypeVar("S")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_TYPE_NAMES = {bool: "boolean (true or false)", int: "integer", float: "number", str: "string"}
_LIST_NAMES = {bool: "comma list of booleans", int: "comma list of integers", float: "comma list of numbers",
               str: "comma list of strings"}


def coerce(default: Any, value: Any, option: str, *, owner: str = "dataset") -> Any:
    """``value`` read as the type of ``default`` (table in the module docstring).

    Raises :class:`UserError` "``owner`` setting ``option``=``value`` is not a valid ``type``"
    when it cannot be."""
    if default is None:
        return value
    if isinstance(default, tuple):
        kind = type(default[0]) if default else str
        if isinstance(value, str):
            items: Iterable[Any] = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (list, tuple)):
            items = value
        else:
            raise _invalid(owner, option, value, _LIST_NAMES[kind])
        try:
            return tuple(_scalar(kind, item) for item in items)
        except (TypeError, ValueError):
            raise _invalid(owner, option, value, _LIST_NAMES[kind]) from None
    try:
        return _scalar(type(default), value)
    except (TypeError, ValueError):
        raise _invalid(owner, option, value, _TYPE_NAMES.get(type(default), type(default).__name__)) from None


def _scalar(kind: type, value: Any) -> Any:
    """``value`` as ``kind`` (bool, int, float or str); ``TypeError``/``ValueError`` otherwise."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(value)
    if isinstance(value, bool):  # True is an int to Python, never a number to a user
        raise TypeError(value)
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            return int(value.strip())
        raise TypeError(value)
    if kind is float:
        if isinstance(value, (int, float, str)):
            return float(value)
        raise TypeError(value)
    if kind is str:
        if isinstance(value, str):
            return value
        raise TypeError(value)
    return kind(value)


def _invalid(owner: str, option: str, value: Any, expected: str) -> UserError:
    return UserError(f"{owner} setting {option}={value!r} is not a valid {expected}")


def settings_from_options(
    cls: type[S], options: dict[str, Any] | None, *, owner: str, base: S | None = None, also: Iterable[str] = ()
) -> S:
    """An instance of the settings dataclass ``cls``: ``base`` (default ``cls()``) with every key of
    ``options`` replaced by its :func:`coerce`-d value, then ``validate()``-d when ``cls`` has it.

    ``owner`` names the dataset in error messages. ``also`` lists option keys the caller handles
    itself (they must already be removed from ``options``); an error for an unknown key lists them
    first among the valid ones."""
    options = dict(options or {})
    base = cls() if base is None else base
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        valid = [*also, *sorted(known)]
        raise UserError(f"unknown {owner} setting(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    settings = replace(base, **{k: coerce(getattr(base, k), v, k, owner=owner) for k, v in options.items()})
    validate = getattr(settings, "validate", None)
    if callable(validate):
        validate()
    return settings
