"""Name -> component registries filled by the plugins' ``register_*`` hooks.

A component is registered either with the object itself (usually a class) or *lazily*, with a
``"package.module:attribute"`` string naming where it lives. A lazy component is imported the first
time its :attr:`Component.obj` is used, so that listing plugins, validating a configuration or
printing ``--help`` never imports an implementation (and with it torch or transformers).
"""
from __future__ import annotations

import importlib
import re
from typing import Any

from lime_toolkit.errors import PluginError, UserError

#: ``package.module:attribute`` (the attribute may be dotted, e.g. ``module:Class.factory``).
_TARGET = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")
_UNSET = object()


def check_target(target: str) -> str:
    """``target`` stripped, or ValueError when it is not of the form ``package.module:attribute``."""
    text = target.strip()
    if not _TARGET.fullmatch(text):
        raise ValueError(f"'{target}' is not an import path; write 'package.module:Attribute', e.g. "
                         f"'my_plugin.editor:MyEditor'")
    return text


class Component:
    """A registered component: its name, the object (usually a class), and who provided it.

    ``obj`` may be given as the object or as an import path ``"package.module:attribute"``; an import
    path is resolved (imported) on first access of :attr:`obj` and then kept. :attr:`target` is the
    import path (``None`` for an object registered directly), :attr:`loaded` whether the object is
    at hand. A lazy component that fails to import raises :class:`~lime_toolkit.errors.PluginError`,
    one line naming the component, its plugin and the import error.
    """

    __slots__ = ("name", "plugin", "description", "target", "kind", "_obj")

    def __init__(self, name: str, obj: Any, plugin: str, description: str = "", kind: str = "component"):
        self.name, self.plugin, self.description, self.kind = name, plugin, description, kind
        if isinstance(obj, str):
            self.target, self._obj = check_target(obj), _UNSET
        else:
            self.target, self._obj = None, obj

    @property
    def loaded(self) -> bool:
        return self._obj is not _UNSET

    @property
    def obj(self) -> Any:
        if self._obj is _UNSET:
            self._obj = self._resolve()
        return self._obj

    def _resolve(self) -> Any:
        module_name, _, attribute = self.target.partition(":")
        where = f"{self.kind} '{self.name}' of plugin '{self.plugin}'"
        try:
            obj = importlib.import_module(module_name)
        except Exception as exc:  # an ImportError, or anything the module raises while importing
            raise PluginError(f"{where} cannot be loaded: importing {module_name} failed with "
                              f"{type(exc).__name__}: {_one_line(exc)}; reinstall or fix the plugin, or "
                              f"block it with LIME_TOOLKIT_BLOCK_PLUGINS={self.plugin}") from exc
        for part in attribute.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise PluginError(f"{where} cannot be loaded: {module_name} has no attribute '{attribute}' "
                                  f"(registered as '{self.target}'); fix the plugin's registration") from None
        return obj

    def _key(self):
        return (self.name, self.target if self.target is not None else self._obj, self.plugin, self.description)

    def __eq__(self, other):
        return isinstance(other, Component) and self._key() == other._key()

    def __hash__(self):
        return hash((self.name, self.plugin))

    def __repr__(self):
        what = repr(self.target) if self.target is not None else repr(self._obj)
        return f"Component(name={self.name!r}, obj={what}, plugin={self.plugin!r})"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or "(no message)"


class Registry:
    """Components of one kind ("editor", "dataset", "mask strategy") by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Component] = {}

    def add(self, component: Component) -> None:
        if component.name in self._items:
            other = self._items[component.name].plugin
            raise UserError(
                f"{self.kind} '{component.name}' is registered twice (plugins '{other}' and "
                f"'{component.plugin}'); block one with LIME_TOOLKIT_BLOCK_PLUGINS"
            )
        self._items[component.name] = component

    def get(self, name: str) -> Component:
        try:
            return self._items[name]
        except KeyError:
            import difflib

            installed = ", ".join(self.names()) or "none"
            close = difflib.get_close_matches(str(name), self.names(), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"unknown {self.kind} '{name}'; installed: {installed}{hint}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def by_plugin(self, plugin: str) -> list[str]:
        return sorted(n for n, c in self._items.items() if c.plugin == plugin)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(self._items[n] for n in self.names())
